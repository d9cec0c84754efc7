//! A live, admitted session: its scope, its store handle, and its one
//! upstream connection, shared by all of its channels.
//!
//! Invariant: the upstream connection is dialled at most once per session,
//! and only for the [`AuthorizedSession`] this value holds.

use std::sync::Arc;
use std::time::Duration;

use russh::ChannelId;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::auth::AuthorizedSession;
use super::handler::refused_request;
use super::ServerContext;
use crate::audit::{Event, Store};
use crate::upstream::{Upstream, UpstreamError};

pub type UpstreamResult = Result<Arc<Upstream>, Arc<UpstreamError>>;

/// Channel tasks a session may have in flight (a bound, not a quota that
/// is ever reached in practice).
const MAX_CHANNEL_TASKS: u32 = 1 << 20;
/// How long the end of a session waits for its channels' closing records.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Held by a channel task until it has recorded its end; see
/// [`LiveSession::hold`].
pub struct ChannelGuard {
    _permit: Option<OwnedSemaphorePermit>,
}

pub struct LiveSession {
    pub authorized: AuthorizedSession,
    ctx: Arc<ServerContext>,
    upstream: OnceCell<UpstreamResult>,
    /// One permit per running channel task that still has to record its end.
    channel_tasks: Arc<Semaphore>,
}

impl LiveSession {
    /// Wraps an admitted session and starts dialling its target at once, so
    /// the upstream handshake overlaps the client's channel setup.
    pub fn start(authorized: AuthorizedSession, ctx: Arc<ServerContext>) -> Arc<LiveSession> {
        let live = Arc::new(LiveSession {
            authorized,
            ctx,
            upstream: OnceCell::new(),
            channel_tasks: Arc::new(Semaphore::new(MAX_CHANNEL_TASKS as usize)),
        });
        let dialling = live.clone();
        tokio::spawn(async move {
            let _ = dialling.upstream().await;
        });
        live
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    pub async fn upstream(&self) -> UpstreamResult {
        self.upstream
            .get_or_init(|| async {
                Upstream::dial(&self.authorized, &self.ctx.upstream)
                    .await
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .await
            .clone()
    }

    /// Records an event of this session, committed when it returns.
    pub async fn record(
        &self,
        channel: Option<ChannelId>,
        event: Event,
    ) -> Result<(), crate::audit::StoreError> {
        let channel = channel.map(channel_number);
        self.store()
            .record(Some(self.authorized.id()), channel, event)
            .await
    }

    pub async fn record_refused_request(
        &self,
        channel: Option<ChannelId>,
        request: &str,
        reason: &str,
    ) {
        tracing::info!(session = %self.authorized.id(), request, reason, "request refused");
        if let Err(e) = self.record(channel, refused_request(request, reason)).await {
            tracing::error!(error = %e, "could not record a refused request");
        }
    }

    /// Marks a channel task (a forward, an sftp channel) that records its
    /// own end: [`LiveSession::end`] waits for it, so a connection that
    /// drops does not end the session before those records are in.
    pub fn hold(&self) -> ChannelGuard {
        ChannelGuard {
            _permit: self.channel_tasks.clone().try_acquire_owned().ok(),
        }
    }

    /// Ends the session: the channels' closing records (a bounded wait),
    /// then the session's record, then the upstream connection.
    pub async fn end(&self, reason: &str) {
        let all_closed = self.channel_tasks.acquire_many(MAX_CHANNEL_TASKS);
        if tokio::time::timeout(CLOSE_GRACE, all_closed).await.is_err() {
            tracing::warn!(session = %self.authorized.id(), "channels still open at the end of the session");
        }
        if let Err(e) = self
            .store()
            .end_session(self.authorized.id(), reason.to_string())
            .await
        {
            tracing::error!(error = %e, "could not record the end of a session");
        }
        if let Some(Ok(upstream)) = self.upstream.get() {
            upstream.close().await;
        }
    }
}

/// The channel number as the store keeps it.
pub fn channel_number(id: ChannelId) -> u32 {
    let raw: u32 = id.into();
    raw
}
