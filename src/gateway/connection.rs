//! One client connection from accept to close: the source limits, the SSH
//! session, the pre-auth deadline, and cutting it when its session must end.
//!
//! Invariant: a connection that has not authenticated within the pre-auth
//! deadline is closed, and an admitted session is ended in the store (with
//! its reason) whenever and however its connection ends.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use russh::server::Config as SshConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::handler::ConnectionHandler;
use super::live::LiveSession;
use super::ServerContext;
use crate::audit::Event;
use crate::grants::service::Requester;

/// How long channels get to tell the client why before the connection is cut.
const TERMINATION_GRACE: Duration = Duration::from_millis(300);

/// What a connection authenticated as.
pub enum Admitted {
    /// A task cert for a target.
    Target(Arc<LiveSession>),
    /// An identity key on the `grant` login.
    Grant(Arc<Requester>),
}

/// Where a connection's handler puts what it admitted, so this task can end
/// the session when the connection ends (or must be cut).
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

    /// Resolves if nothing was admitted within `deadline`.
    async fn unauthenticated_after(&self, deadline: Duration) {
        tokio::time::sleep(deadline).await;
        if self.admitted.get().is_some() {
            std::future::pending::<()>().await;
        }
    }
}

pub async fn run(
    ctx: Arc<ServerContext>,
    config: Arc<SshConfig>,
    socket: TcpStream,
    peer: SocketAddr,
) {
    let permit = match ctx.sources.admit(peer.ip()) {
        Ok(permit) => permit,
        Err(reason) => return refuse_connection(&ctx, socket, peer, &reason).await,
    };
    // A second handle on the socket, so the connection can be cut even when
    // the peer ignores the disconnect (or has not finished the handshake).
    let (socket, killer) = match split_killer(socket) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "cannot take a handle on the socket");
            return;
        }
    };
    let slot: SessionSlot = Arc::new(ConnectionSlot::default());
    let handler = ConnectionHandler::new(ctx.clone(), Some(peer), slot.clone(), permit);
    let mut running = match russh::server::run_stream(config, socket, handler).await {
        Ok(running) => running,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let handle = running.handle();
    let cut = |reason: String| async {
        let _ = handle
            .disconnect(
                russh::Disconnect::ByApplication,
                format!("portcullis: {reason}"),
                "en".into(),
            )
            .await;
        reason
    };
    let force_close = || {
        let _ = killer.shutdown(std::net::Shutdown::Both);
    };
    let reason = tokio::select! {
        ended = &mut running => match ended {
            Ok(()) => "client disconnected".to_string(),
            Err(e) => format!("connection ended: {e}"),
        },
        reason = slot.terminated() => {
            // Channels write their last line; then the connection goes.
            tokio::time::sleep(TERMINATION_GRACE).await;
            let reason = cut(reason).await;
            if tokio::time::timeout(Duration::from_secs(2), &mut running).await.is_err() {
                force_close();
            }
            reason
        }
        () = slot.unauthenticated_after(ctx.limits.pre_auth_timeout) => {
            let limit = crate::policy::format_duration(ctx.limits.pre_auth_timeout);
            let reason = format!("refused: no authentication within {limit} (pre_auth_timeout)");
            record_limit(&ctx, "pre_auth_timeout", peer, None, &reason).await;
            let reason = cut(reason).await;
            // Before the handshake ends a disconnect may never go out.
            if tokio::time::timeout(Duration::from_millis(200), &mut running).await.is_err() {
                force_close();
            }
            reason
        }
    };
    if let Some(Admitted::Target(live)) = slot.get() {
        live.end(&reason).await;
    }
}

/// The socket for russh, and a std handle on the same socket to shut it.
fn split_killer(socket: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std_socket = socket.into_std()?;
    let killer = std_socket.try_clone()?;
    Ok((TcpStream::from_std(std_socket)?, killer))
}

/// Says why in one line (before any SSH exchange) and closes.
async fn refuse_connection(
    ctx: &ServerContext,
    mut socket: TcpStream,
    peer: SocketAddr,
    reason: &str,
) {
    tracing::info!(%peer, reason, "connection refused");
    let limit = if reason.contains("unauthenticated") {
        "max_unauthenticated"
    } else {
        "auth_failures_per_source"
    };
    let _ = socket
        .write_all(format!("portcullis: refused: {reason}\r\n").as_bytes())
        .await;
    let _ = socket.shutdown().await;
    match ctx.sources.record_refusal() {
        Some(0) => record_limit(ctx, limit, peer, None, reason).await,
        Some(folded) => {
            let reason =
                format!("{reason} (and {folded} more refused connections not recorded one by one)");
            record_limit(ctx, limit, peer, None, &reason).await
        }
        None => {}
    }
}

pub async fn record_limit(
    ctx: &ServerContext,
    limit: &str,
    peer: SocketAddr,
    identity: Option<&str>,
    reason: &str,
) {
    let event = Event::LimitHit {
        limit: limit.to_string(),
        client_addr: peer.to_string(),
        identity: identity.map(str::to_string),
        reason: reason.to_string(),
    };
    if let Err(e) = ctx.store.record(None, None, event).await {
        tracing::error!(error = %e, "could not record a limit hit");
    }
}
