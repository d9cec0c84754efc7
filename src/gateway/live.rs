//! A live, admitted session: its scope, its store handle, and its one
//! upstream connection, shared by all of its channels.
//!
//! Invariant: the upstream connection is dialled at most once per session,
//! and only for the [`AuthorizedSession`] this value holds.

use std::sync::Arc;

use russh::ChannelId;
use tokio::sync::OnceCell;

use super::auth::AuthorizedSession;
use super::handler::refused_request;
use super::ServerContext;
use crate::audit::{Event, Store};
use crate::upstream::{Upstream, UpstreamError};

pub type UpstreamResult = Result<Arc<Upstream>, Arc<UpstreamError>>;

pub struct LiveSession {
    pub authorized: AuthorizedSession,
    ctx: Arc<ServerContext>,
    upstream: OnceCell<UpstreamResult>,
}

impl LiveSession {
    /// Wraps an admitted session and starts dialling its target at once, so
    /// the upstream handshake overlaps the client's channel setup.
    pub fn start(authorized: AuthorizedSession, ctx: Arc<ServerContext>) -> Arc<LiveSession> {
        let live = Arc::new(LiveSession {
            authorized,
            ctx,
            upstream: OnceCell::new(),
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

    /// Ends the session: the record first, then the upstream connection.
    pub async fn end(&self, reason: &str) {
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
