//! One client connection from accept to close: the source limits, the SSH
//! session, the pre-auth deadline, and cutting it when its session must end.
//!
//! Invariant: the pre-auth deadline counts from the TCP accept and covers
//! the whole unauthenticated phase (the version line, key exchange,
//! authentication): a connection not admitted by then is closed, whatever
//! it sent or did not send. A connection that tried to authenticate, or ran
//! out of the deadline, and was not admitted costs its source one failure.
//! An admitted session is ended in the store (with its reason) whenever and
//! however its connection ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use russh::server::Config as SshConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::grant_login::Requester;
use super::handler::ConnectionHandler;
use super::limits::{ConnectionRefusal, Limit};
use super::proxy_header::{self, Header, HeaderError, Inbound};
use super::stop::{Stop, SHUTTING_DOWN};
use super::ServerContext;
use crate::audit::Event;
use crate::metrics::{metrics, LimitLabel};
use crate::proxy::SessionLink;

/// How long channels get to tell the client why before the connection is cut.
const TERMINATION_GRACE: Duration = Duration::from_millis(300);

/// What a connection authenticated as.
pub enum Admitted {
    /// A task cert for a target.
    Target(SessionLink),
    /// An identity key on the `grant` login.
    Grant(Arc<Requester>),
    /// An identity key on the `review` login.
    Review(Arc<Requester>),
}

/// Where a connection's handler puts what it admitted, so this task can end
/// the session when the connection ends (or must be cut).
#[derive(Default)]
pub struct ConnectionSlot {
    admitted: OnceLock<Admitted>,
    set: Notify,
    /// The client tried to authenticate at least once.
    tried: AtomicBool,
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

    /// Notes an authentication attempt (one failed connection, however many
    /// keys it offered).
    pub fn note_attempt(&self) {
        self.tried.store(true, Ordering::Relaxed);
    }

    /// Resolves when the connection's target session must end; never for a
    /// connection that is not (or not yet) a target session.
    async fn terminated(&self) -> String {
        loop {
            match self.admitted.get() {
                Some(Admitted::Target(link)) => return link.live.terminated().await,
                Some(Admitted::Grant(_) | Admitted::Review(_)) => {
                    std::future::pending::<()>().await
                }
                None => self.set.notified().await,
            }
        }
    }

    /// Resolves when the server stops, for a connection that is not a
    /// target session (those end through their session, with its reason,
    /// and one admitted late is ended at registration).
    async fn cut_by_stop(&self, stop: &Stop) {
        stop.cutting().await;
        if let Some(Admitted::Target(_)) = self.admitted.get() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves at `deadline` if nothing was admitted by then.
    async fn unauthenticated_at(&self, deadline: Instant) {
        tokio::time::sleep_until(deadline).await;
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
    let _open = Stop::enter(&ctx);
    let deadline = Instant::now() + ctx.limits.pre_auth_timeout;
    let (socket, peer, read_past) = match client_of(&ctx, socket, peer, deadline).await {
        Some(client) => client,
        None => return,
    };
    let permit = match ctx.sources.admit(peer.ip()) {
        Ok(permit) => permit,
        Err(refusal) => return refuse_connection(&ctx, socket, peer, &refusal).await,
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
    let socket = match read_past {
        Some(rest) => Inbound::after_header(socket, rest),
        None => Inbound::untrusted(socket),
    };
    let sent_header = socket.refused_flag();
    let force_close = || {
        let _ = killer.shutdown(std::net::Shutdown::Both);
    };
    let slot: SessionSlot = Arc::new(ConnectionSlot::default());
    let handler = ConnectionHandler::new(ctx.clone(), Some(peer), slot.clone(), permit);
    // The version line is read inside `run_stream`: the deadline covers it.
    let started =
        tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler));
    let mut running = match started.await {
        Ok(Ok(running)) => running,
        Ok(Err(e)) => {
            if sent_header.load(Ordering::Relaxed) {
                let reason = HeaderError::Untrusted.to_string();
                tracing::info!(%peer, reason, "connection refused");
                record_limit(&ctx, Limit::TrustedProxies, peer, None, &reason).await;
            } else {
                tracing::debug!(error = %e, "handshake failed");
            }
            return;
        }
        Err(_) => {
            force_close();
            pre_auth_timeout(&ctx, peer).await;
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
    let reason = tokio::select! {
        ended = &mut running => match ended {
            Ok(()) => crate::audit::CLIENT_DISCONNECTED.to_string(),
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
        () = slot.cut_by_stop(&ctx.stop) => {
            cut(SHUTTING_DOWN.to_string()).await;
            if tokio::time::timeout(Duration::from_millis(200), &mut running).await.is_err() {
                force_close();
            }
            return;
        }
        () = slot.unauthenticated_at(deadline) => {
            cut(pre_auth_timeout(&ctx, peer).await).await;
            // Before the handshake ends a disconnect may never go out.
            if tokio::time::timeout(Duration::from_millis(200), &mut running).await.is_err() {
                force_close();
            }
            return;
        }
    };
    match slot.get() {
        Some(Admitted::Target(link)) => {
            ctx.live.unregister(link.live.id());
            link.live.end(&reason).await;
            link.target.close().await;
        }
        Some(Admitted::Grant(_) | Admitted::Review(_)) => {}
        None if slot.tried.load(Ordering::Relaxed) => ctx.sources.failed_connection(peer.ip()),
        None => {}
    }
}

/// The client behind `socket`: from a trusted proxy, the one its PROXY
/// header names (with the bytes read past the header); from anyone else,
/// the peer itself. `None`: refused (said and recorded).
async fn client_of(
    ctx: &ServerContext,
    mut socket: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
) -> Option<(TcpStream, SocketAddr, Option<Vec<u8>>)> {
    if !ctx
        .config
        .trusted_proxies
        .iter()
        .any(|c| c.contains(peer.ip()))
    {
        return Some((socket, peer, None));
    }
    let header = tokio::time::timeout_at(deadline, proxy_header::read_header(&mut socket)).await;
    match header.unwrap_or(Err(HeaderError::Missing)) {
        Ok((Header::Relayed(client), rest)) => {
            let client = SocketAddr::new(client.ip().to_canonical(), client.port());
            Some((socket, client, Some(rest)))
        }
        Ok((Header::Local, rest)) => Some((socket, peer, Some(rest))),
        Err(e) => {
            refuse_connection(ctx, socket, peer, &ConnectionRefusal::ProxyHeader(e)).await;
            None
        }
    }
}

/// A connection that was not admitted in time: recorded, and charged to
/// its source. Returns the reason.
async fn pre_auth_timeout(ctx: &ServerContext, peer: SocketAddr) -> String {
    let limit = crate::policy::format_duration(ctx.limits.pre_auth_timeout);
    let reason = format!("refused: no authentication within {limit} (pre_auth_timeout)");
    ctx.sources.failed_connection(peer.ip());
    record_limit(ctx, Limit::PreAuthTimeout, peer, None, &reason).await;
    reason
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
    refusal: &ConnectionRefusal,
) {
    let reason = refusal.to_string();
    tracing::info!(%peer, reason, "connection refused");
    let _ = socket
        .write_all(format!("portcullis: refused: {reason}\r\n").as_bytes())
        .await;
    let _ = socket.shutdown().await;
    match ctx.sources.record_refusal() {
        Some(0) => record_limit(ctx, refusal.limit(), peer, None, &reason).await,
        Some(folded) => {
            let reason =
                format!("{reason} (and {folded} more refused connections not recorded one by one)");
            record_limit(ctx, refusal.limit(), peer, None, &reason).await
        }
        // Not recorded one by one, but counted.
        None => count_limit(refusal.limit()),
    }
}

fn count_limit(limit: Limit) {
    let label = LimitLabel {
        limit: limit.name(),
    };
    metrics().limit_hits.get_or_create(&label).inc();
}

pub async fn record_limit(
    ctx: &ServerContext,
    limit: Limit,
    peer: SocketAddr,
    identity: Option<&str>,
    reason: &str,
) {
    count_limit(limit);
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
