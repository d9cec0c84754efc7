//! The SSH front: accepts agents' connections, authenticates them by task
//! certificate (or identity key, on the `grant` login), and routes their
//! channels.
//!
//! Invariant: every accepted connection runs in its own task, and every
//! session that was admitted is ended in the store when its connection ends.

pub mod admission;
pub mod channel;
pub mod connection;
mod expiry;
pub mod grant_login;
pub mod handler;
pub mod limits;
pub mod metrics_http;
pub mod notify;
pub mod pidfile;
pub mod prepared;
pub mod proxy_header;
pub mod registry;
pub mod reload;
mod replicas;
pub mod review_login;
pub mod stop;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::Config as SshConfig;
use russh::MethodKind;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::archive::{self, Archive};
use crate::audit::Store;
use crate::book::Book;
use crate::cert::krl::RevokedKeys;
use crate::cert::{keyfile, TrustedCas};
use crate::cluster::Cluster;
use crate::config::{Config, Limits};
use crate::grants::GrantsReader;
use crate::policy::Policy;
use crate::upstream::UpstreamAuthority;
pub use connection::{Admitted, ConnectionSlot, SessionSlot};
use limits::SourceGuard;
use registry::LiveRegistry;
use stop::Stop;

/// What every connection shares.
pub struct ServerContext {
    /// The operator's KRL (`[ca] revoked_keys`), checked at authentication.
    pub revoked_keys: Option<RevokedKeys>,
    /// Every CA whose certs are accepted (for the KRL of revocations).
    pub ca_keys: Vec<PublicKey>,
    /// The policy in force and its generation (one more per reload).
    policy: RwLock<(u64, Arc<Policy>)>,
    /// The config the server started with (a reload compares against it).
    pub config: Config,
    pub trusted: TrustedCas,
    pub store: Store,
    /// `[cluster]`: the shared control state; `None` on one machine.
    pub cluster: Option<Arc<Cluster>>,
    /// Reads of the grants tables (writes go through `store`).
    pub grants: GrantsReader,
    pub upstream: Arc<UpstreamAuthority>,
    /// Signs the task certs the `grant` login hands out; `None` when
    /// `[ca] task_key` names only the public key (a replica that verifies
    /// certs but keeps the CA's private key off its disk).
    pub task_ca: Option<PrivateKey>,
    /// Grant requests, held commands and their rate limits: in `store`,
    /// or in the cluster's database.
    pub book: Arc<Book>,
    pub live: LiveRegistry,
    pub limits: Limits,
    pub sources: SourceGuard,
    pub stop: Stop,
}

impl ServerContext {
    /// Loads everything the config names; fails on the first problem.
    pub fn load(config: &Config) -> anyhow::Result<ServerContext> {
        let policy = Policy::load(&config.policy_dir)
            .map_err(|e| anyhow::anyhow!("policy {}:\n{e}", config.policy_dir.display()))?;
        let task_ca = match config.task_ca_key.extension() {
            Some(ext) if ext == "pub" => None,
            _ => Some(keyfile::read_private(&config.task_ca_key)?),
        };
        let task_ca_public = match &task_ca {
            Some(key) => key.public_key().clone(),
            None => keyfile::read_public(&config.task_ca_key)?,
        };
        let mut ca_keys = vec![task_ca_public];
        for file in &config.trusted_ca_files {
            ca_keys.push(keyfile::read_public(file)?);
        }
        let upstream_ca = keyfile::read_private(&config.upstream_ca_key)?;
        let store = Store::open(&config.store)
            .with_context(|| format!("opening the store {}", config.store.display()))?;
        let grants = GrantsReader::open(&config.store)
            .with_context(|| format!("reading the grants tables in {}", config.store.display()))?;
        let cluster = match &config.cluster {
            Some(settings) => Some(Arc::new(Cluster::new(settings)?)),
            None => None,
        };
        let book = Book::new(
            store.clone(),
            grants.clone(),
            cluster.clone(),
            &config.limits,
        );
        let book = Arc::new(book);
        Ok(ServerContext {
            cluster,
            revoked_keys: config.revoked_keys.clone().map(RevokedKeys::new),
            ca_keys: ca_keys.clone(),
            policy: RwLock::new((0, Arc::new(policy))),
            config: config.clone(),
            trusted: TrustedCas::new(&ca_keys),
            store,
            grants,
            upstream: Arc::new(UpstreamAuthority::new(upstream_ca)),
            task_ca,
            book,
            live: LiveRegistry::default(),
            limits: config.limits.clone(),
            sources: SourceGuard::new(config.limits.clone()),
            stop: Stop::default(),
        })
    }
}

impl ServerContext {
    /// The policy in force now. A decision takes it once and decides with
    /// that one, so a reload never mixes two policies in one decision.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy_now().1
    }

    /// The policy in force and its generation.
    pub fn policy_now(&self) -> (u64, Arc<Policy>) {
        match self.policy.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `policy` in force for every decision from now on.
    pub fn replace_policy(&self, policy: Policy) {
        let mut current = match self.policy.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = (current.0.wrapping_add(1), Arc::new(policy));
    }
}

/// Runs the bastion until SIGTERM or SIGINT, then stops gracefully
/// (`stop`); returns once every session it admitted is ended on record.
pub async fn serve(config: &Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    // A [notify] secret others can read refuses the start, before anything runs.
    let notifier = config
        .notify
        .as_ref()
        .map(notify::Notifier::prepare)
        .transpose()?;
    let ctx = Arc::new(ServerContext::load(config)?);
    let host_keys = config
        .host_keys
        .iter()
        .map(|p| keyfile::read_private(p))
        .collect::<Result<Vec<_>, _>>()?;
    let ssh_config = Arc::new(ssh_config(host_keys, &ctx.limits));
    let addr = listen.unwrap_or(config.listen);
    // Notices cover what the first connection does; targets may read the
    // KRL, and `portcullis reload` find the server, as soon as anyone can
    // connect.
    if let Some(notifier) = notifier {
        notifier.start(ctx.clone()).await?;
    }
    registry::refresh_krl(&ctx).await;
    if let Some(cluster) = &ctx.cluster {
        replicas::join(cluster)
            .await
            .with_context(|| format!("joining the cluster as replica {:?}", cluster.replica()))?;
        tokio::spawn(replicas::heartbeat(ctx.clone()));
        if let Some(settings) = &config.archive {
            let archive = Archive::open(settings).context("[archive]")?;
            let shipping =
                archive::ship::run(config.store.clone(), cluster.clone(), Arc::new(archive));
            tokio::spawn(shipping);
        }
    }
    let _pid_file = pidfile::PidFile::write(&config.store)
        .with_context(|| format!("writing {}", pidfile::path(&config.store).display()))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    if let Some(addr) = config.metrics_listen {
        let metrics = metrics_http::bind(addr)
            .await
            .with_context(|| format!("metrics: listening on {addr}"))?;
        eprintln!(
            "portcullis: metrics on http://{}/metrics",
            metrics.local_addr()?
        );
        tokio::spawn(metrics_http::serve(ctx.clone(), metrics));
    }
    tokio::spawn(registry::watch_revocations(ctx.clone()));
    tokio::spawn(watch_store_health(ctx.clone()));
    tokio::spawn(expiry::sweep(ctx.clone()));
    eprintln!("portcullis: listening on {}", listener.local_addr()?);
    let mut hangups = signal(SignalKind::hangup()).context("watching SIGHUP")?;
    let signalled = stop::signalled();
    tokio::pin!(signalled);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = hangups.recv() => {
                tokio::spawn(reload::reload_serially(ctx.clone()));
                continue;
            }
            signal = &mut signalled => {
                eprintln!("portcullis: {signal}: stopping");
                break;
            }
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        // A v4 client on a dual-stack listener is itself, not ::ffff:a.b.c.d.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        tokio::spawn(connection::run(
            ctx.clone(),
            ssh_config.clone(),
            socket,
            peer,
        ));
    }
    drop(listener);
    stop::drain_and_stop(&ctx, config.shutdown_drain).await;
    if let Some(cluster) = &ctx.cluster {
        if let Err(e) = cluster.leave().await {
            tracing::warn!(error = %e, "could not give the replica's name back to the cluster");
        }
    }
    Ok(())
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
