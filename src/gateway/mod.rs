//! The SSH front: accepts agents' connections, authenticates them by task
//! certificate (or identity key, on the `grant` login), and routes their
//! channels.
//!
//! Invariant: every accepted connection runs in its own task, and every
//! session that was admitted is ended in the store when its connection ends.

pub mod admission;
pub mod channel;
pub mod connection;
pub mod grant_login;
pub mod handler;
pub mod limits;
pub mod prepared;
pub mod registry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use russh::keys::PrivateKey;
use russh::server::Config as SshConfig;
use russh::MethodKind;
use tokio::net::TcpListener;

use crate::audit::Store;
use crate::cert::{keyfile, TrustedCas};
use crate::config::{Config, Limits};
use crate::grants::ratelimit::RateLimiter;
use crate::grants::GrantsReader;
use crate::policy::Policy;
use crate::upstream::UpstreamAuthority;
pub use connection::{Admitted, ConnectionSlot, SessionSlot};
use limits::SourceGuard;
use registry::LiveRegistry;

/// What every connection shares.
pub struct ServerContext {
    pub policy: Policy,
    pub trusted: TrustedCas,
    pub store: Store,
    /// Reads of the grants tables (writes go through `store`).
    pub grants: GrantsReader,
    pub upstream: Arc<UpstreamAuthority>,
    /// Signs the task certs the `grant` login hands out.
    pub task_ca: PrivateKey,
    pub request_limiter: RateLimiter,
    pub live: LiveRegistry,
    pub limits: Limits,
    pub sources: SourceGuard,
}

impl ServerContext {
    /// Loads everything the config names; fails on the first problem.
    pub fn load(config: &Config) -> anyhow::Result<ServerContext> {
        let policy = Policy::load(&config.policy_dir)
            .map_err(|e| anyhow::anyhow!("policy {}:\n{e}", config.policy_dir.display()))?;
        let task_ca = keyfile::read_private(&config.task_ca_key)?;
        let mut ca_keys = vec![task_ca.public_key().clone()];
        for file in &config.trusted_ca_files {
            ca_keys.push(keyfile::read_public(file)?);
        }
        let upstream_ca = keyfile::read_private(&config.upstream_ca_key)?;
        let store = Store::open(&config.store)
            .with_context(|| format!("opening the store {}", config.store.display()))?;
        let grants = GrantsReader::open(&config.store)
            .with_context(|| format!("reading the grants tables in {}", config.store.display()))?;
        Ok(ServerContext {
            policy,
            trusted: TrustedCas::new(&ca_keys),
            store,
            grants,
            upstream: Arc::new(UpstreamAuthority::new(upstream_ca)),
            task_ca,
            request_limiter: RateLimiter::default(),
            live: LiveRegistry::default(),
            limits: config.limits.clone(),
            sources: SourceGuard::new(config.limits.clone()),
        })
    }
}

/// Runs the bastion until the process is stopped.
pub async fn serve(config: &Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let ctx = Arc::new(ServerContext::load(config)?);
    let host_keys = config
        .host_keys
        .iter()
        .map(|p| keyfile::read_private(p))
        .collect::<Result<Vec<_>, _>>()?;
    let ssh_config = Arc::new(ssh_config(host_keys, &ctx.limits));
    let addr = listen.unwrap_or(config.listen);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tokio::spawn(registry::watch_revocations(ctx.clone()));
    tokio::spawn(watch_store_health(ctx.clone()));
    eprintln!("portcullis: listening on {}", listener.local_addr()?);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(connection::run(
            ctx.clone(),
            ssh_config.clone(),
            socket,
            peer,
        ));
    }
}

fn ssh_config(host_keys: Vec<PrivateKey>, limits: &Limits) -> SshConfig {
    SshConfig {
        methods: (&[MethodKind::PublicKey][..]).into(),
        keys: host_keys,
        // OpenSSH probes with "none" first: no need to make that wait.
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        // Our own idle timeout ends sessions; this only reaps dead peers
        // (keepalive replies count as traffic for russh).
        inactivity_timeout: Some(limits.idle_timeout + limits.keepalive_interval * 4),
        keepalive_interval: Some(limits.keepalive_interval),
        keepalive_max: 3,
        window_size: crate::transport::WINDOW_SIZE,
        maximum_packet_size: crate::transport::MAX_PACKET_SIZE,
        nodelay: true,
        preferred: crate::transport::preferred_algorithms(),
        ..Default::default()
    }
}

/// Logs one line whenever the store turns unwritable or writable again, so
/// an operator sees why actions are refused (fail closed).
async fn watch_store_health(ctx: Arc<ServerContext>) {
    let mut healthy = true;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = ctx.store.is_healthy();
        if now != healthy {
            if now {
                tracing::warn!("audit store writable again: accepting new actions");
            } else {
                tracing::error!(
                    "audit store cannot write: refusing new sessions and actions (fail closed)"
                );
            }
            healthy = now;
        }
    }
}
