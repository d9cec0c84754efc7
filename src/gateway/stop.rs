//! Stopping the server gracefully (SIGTERM, SIGINT): no new connections,
//! a drain during which live sessions may finish, then every session still
//! live is ended with [`SHUTTING_DOWN`] (its channels say so in one line),
//! every other connection is cut, and the writer has committed it all.
//!
//! Invariant: when [`drain_and_stop`] returns, every session this server
//! admitted has its end on record (none left `open` for the next start to
//! mark interrupted), unless a connection outlived the last grace period,
//! which is logged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::ServerContext;

pub const SHUTTING_DOWN: &str = "server shutting down";

/// How long connections get, after being told to end, to end their
/// sessions in the store (channels' last lines, the disconnect, the commit).
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Whether the server is cutting its connections (the drain is over).
pub struct Stop {
    cutting: watch::Sender<bool>,
    open: AtomicUsize,
    closed: Notify,
}

impl Default for Stop {
    fn default() -> Stop {
        Stop {
            cutting: watch::Sender::new(false),
            open: AtomicUsize::new(0),
            closed: Notify::new(),
        }
    }
}

/// Held by a connection's task for as long as it runs.
pub struct OpenConnection {
    ctx: Arc<ServerContext>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let stop = &self.ctx.stop;
        if stop.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            stop.closed.notify_waiters();
        }
    }
}

impl Stop {
    /// Counts a connection until the returned guard drops.
    pub fn enter(ctx: &Arc<ServerContext>) -> OpenConnection {
        ctx.stop.open.fetch_add(1, Ordering::AcqRel);
        OpenConnection { ctx: ctx.clone() }
    }

    /// Resolves once the server cuts its connections.
    pub async fn cutting(&self) {
        let mut rx = self.cutting.subscribe();
        // Err: the sender is gone with the server; nothing will cut.
        if rx.wait_for(|cutting| *cutting).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Resolves on SIGTERM or SIGINT, with the signal's name.
pub async fn signalled() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot watch SIGTERM/SIGINT: stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Called once the listener is closed: waits up to `drain` for live
/// sessions to finish, ends the rest, cuts every other connection, waits
/// for the connections to close and the writer to commit.
pub async fn drain_and_stop(ctx: &ServerContext, drain: Duration) {
    let live = ctx.live.live_count();
    tracing::info!(
        sessions = live,
        drain = %crate::policy::format_duration(drain),
        "stopping: no new connections; live sessions may finish during the drain"
    );
    let deadline = Instant::now() + drain;
    while ctx.live.live_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = ctx.live.close(SHUTTING_DOWN);
    ctx.stop.cutting.send_replace(true);
    if tokio::time::timeout(CLOSE_GRACE, ctx.stop.all_closed())
        .await
        .is_err()
    {
        let open = ctx.stop.open.load(Ordering::Acquire);
        tracing::warn!(
            connections = open,
            "connections still open after the grace period"
        );
    }
    if let Err(e) = ctx.store.flush().await {
        tracing::error!(error = %e, "could not flush the audit store");
    }
    tracing::info!(sessions_ended = ended, "stopped");
}
