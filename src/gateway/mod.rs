//! The SSH front: accepts agents' connections, authenticates them by task
//! certificate, and routes their channels.
//!
//! Invariant: every accepted connection runs in its own task, and every
//! session that was admitted is ended in the store when its connection ends.

pub mod auth;
pub mod channel;
pub mod handler;
pub mod live;
pub mod registry;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use russh::server::Config as SshConfig;
use russh::MethodKind;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::audit::Store;
use crate::cert::{keyfile, TrustedCas};
use crate::config::Config;
use crate::grants::ratelimit::RateLimiter;
use crate::grants::service::Requester;
use crate::grants::{GrantsDb, SharedGrants};
use crate::policy::Policy;
use crate::upstream::UpstreamAuthority;
use handler::ConnectionHandler;
use live::LiveSession;
use registry::LiveRegistry;
use russh::keys::PrivateKey;

/// Flow-control window per channel: bounds what one channel can have in
/// flight, and so the memory a slow reader can pin.
pub const WINDOW_SIZE: u32 = 2 * 1024 * 1024;
pub const MAX_PACKET_SIZE: u32 = 32 * 1024;

/// What every connection shares.
pub struct ServerContext {
    pub policy: Policy,
    pub trusted: TrustedCas,
    pub store: Store,
    pub grants: SharedGrants,
    pub upstream: UpstreamAuthority,
    /// Signs the task certs the `grant` login hands out.
    pub task_ca: PrivateKey,
    pub request_limiter: RateLimiter,
    pub live: LiveRegistry,
}

/// What a connection authenticated as.
pub enum Admitted {
    /// A task cert for a target.
    Target(Arc<LiveSession>),
    /// An identity key on the `grant` login.
    Grant(Arc<Requester>),
}

/// Where a connection's handler puts what it admitted, so the accept loop
/// can end the session when the connection ends (or must be cut).
#[derive(Default)]
pub struct ConnectionSlot {
    admitted: OnceLock<Admitted>,
    set: Notify,
}

pub type SessionSlot = Arc<ConnectionSlot>;

impl ConnectionSlot {
    pub fn get(&self) -> Option<&Admitted> {
        self.admitted.get()
    }

    /// Stores what the connection authenticated as; only the first wins.
    pub fn set(&self, admitted: Admitted) -> Result<(), Admitted> {
        self.admitted.set(admitted)?;
        self.set.notify_one();
        Ok(())
    }

    /// Resolves when the connection's target session must end; never for a
    /// connection that is not (or not yet) a target session.
    async fn terminated(&self) -> String {
        loop {
            match self.admitted.get() {
                Some(Admitted::Target(live)) => return live.terminated().await,
                Some(Admitted::Grant(_)) => std::future::pending::<()>().await,
                None => self.set.notified().await,
            }
        }
    }
}

/// How long channels get to tell the client why before the connection is cut.
const TERMINATION_GRACE: Duration = Duration::from_millis(300);

/// Runs the bastion until the process is stopped.
pub async fn serve(config: &Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
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
    let host_keys = config
        .host_keys
        .iter()
        .map(|p| keyfile::read_private(p))
        .collect::<Result<Vec<_>, _>>()?;
    let grants = GrantsDb::open(&config.store)
        .with_context(|| format!("opening the grants tables in {}", config.store.display()))?;
    let ctx = Arc::new(ServerContext {
        policy,
        trusted: TrustedCas::new(&ca_keys),
        store,
        grants: SharedGrants::new(grants),
        upstream: UpstreamAuthority::new(upstream_ca),
        task_ca,
        request_limiter: RateLimiter::default(),
        live: LiveRegistry::default(),
    });
    tokio::spawn(registry::watch_revocations(ctx.clone()));
    let ssh_config = Arc::new(ssh_config(host_keys));
    let addr = listen.unwrap_or(config.listen);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
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
        tokio::spawn(run_connection(
            ctx.clone(),
            ssh_config.clone(),
            socket,
            peer,
        ));
    }
}

fn ssh_config(host_keys: Vec<russh::keys::PrivateKey>) -> SshConfig {
    SshConfig {
        methods: (&[MethodKind::PublicKey][..]).into(),
        keys: host_keys,
        // OpenSSH probes with "none" first: no need to make that wait.
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET_SIZE,
        nodelay: true,
        ..Default::default()
    }
}

async fn run_connection(
    ctx: Arc<ServerContext>,
    config: Arc<SshConfig>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let slot: SessionSlot = Arc::new(ConnectionSlot::default());
    let handler = ConnectionHandler::new(ctx, Some(peer), slot.clone());
    let mut running = match russh::server::run_stream(config, socket, handler).await {
        Ok(running) => running,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let handle = running.handle();
    let reason = tokio::select! {
        ended = &mut running => match ended {
            Ok(()) => "client disconnected".to_string(),
            Err(e) => format!("connection ended: {e}"),
        },
        reason = slot.terminated() => {
            // Channels write their last line; then the connection goes.
            tokio::time::sleep(TERMINATION_GRACE).await;
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, format!("portcullis: {reason}"), "en".into())
                .await;
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut running).await;
            reason
        }
    };
    if let Some(Admitted::Target(live)) = slot.get() {
        live.end(&reason).await;
    }
}
