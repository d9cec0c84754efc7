//! A live, admitted session: its scope, its store handle, its one upstream
//! connection shared by all of its channels, and the signal that ends it.
//!
//! Invariants: a session holds at most one upstream connection, dialled only
//! for the [`AuthorizedSession`] this value holds (again only when the target
//! dropped the last one); a session never
//! outlives its certificate's `valid_before`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use russh::ChannelId;
use tokio::sync::{watch, Mutex, OwnedSemaphorePermit, Semaphore};

use super::auth::AuthorizedSession;
use super::handler::refused_request;
use super::ServerContext;
use crate::audit::{Event, SessionId, Store};
use crate::clock;
use crate::grants::CertFacts;
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
    /// The last dial's outcome; redialled when it failed or was dropped.
    upstream: Mutex<Option<UpstreamResult>>,
    /// `Some(reason)` once the session must end (expiry, revocation, idle).
    ending: watch::Sender<Option<String>>,
    /// Unix micros of the last channel traffic, for the idle timeout.
    last_activity: AtomicI64,
    /// One permit per running channel task that still has to record its end.
    channel_tasks: Arc<Semaphore>,
}

/// Why a session is cut when its cert's window closes.
pub const EXPIRED: &str = "the grant expired";

impl LiveSession {
    /// Wraps an admitted session, registers it for revocation, arms its
    /// expiry, and starts dialling its target at once so the upstream
    /// handshake overlaps the client's channel setup.
    pub fn start(authorized: AuthorizedSession, ctx: Arc<ServerContext>) -> Arc<LiveSession> {
        let (ending, _) = watch::channel(None);
        let live = Arc::new(LiveSession {
            authorized,
            ctx,
            upstream: Mutex::new(None),
            ending,
            last_activity: AtomicI64::new(clock::now_us()),
            channel_tasks: Arc::new(Semaphore::new(MAX_CHANNEL_TASKS as usize)),
        });
        live.ctx.live.register(&live);
        let dialling = live.clone();
        tokio::spawn(async move {
            let _ = dialling.upstream().await;
        });
        tokio::spawn(watch_lifetime(Arc::downgrade(&live)));
        live
    }

    pub fn id(&self) -> SessionId {
        self.authorized.id()
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    pub fn cert_facts(&self) -> CertFacts {
        let cert = self.authorized.cert();
        CertFacts {
            ca_fingerprint: cert.ca_fingerprint.clone(),
            serial: cert.serial,
            key_id: cert.key_id.clone(),
            task: cert.scope.task.clone(),
            valid_after: cert.valid_after,
        }
    }

    /// The session's connection to its target: the live one, or a new dial
    /// (channels asking at once share it: the lock is held while dialling).
    pub async fn upstream(&self) -> UpstreamResult {
        let mut slot = self.upstream.lock().await;
        if let Some(Ok(upstream)) = slot.as_ref() {
            if !upstream.is_closed() {
                return Ok(upstream.clone());
            }
        }
        let dialled = Upstream::dial(&self.authorized, &self.ctx.upstream)
            .await
            .map(Arc::new)
            .map_err(Arc::new);
        *slot = Some(dialled.clone());
        dialled
    }

    /// Notes channel traffic (the idle timeout counts from the last).
    pub fn touch(&self) {
        self.last_activity.store(clock::now_us(), Ordering::Relaxed);
    }

    /// Asks every channel and the connection to end, saying `reason`.
    pub fn terminate(&self, reason: &str) {
        self.ending.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason.to_string());
            true
        });
    }

    /// Resolves with the reason once [`terminate`](Self::terminate) is called.
    pub async fn terminated(&self) -> String {
        let mut rx = self.ending.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "session closed".to_string();
            }
        }
    }

    /// Records an event of this session, committed when it returns.
    pub async fn record(
        &self,
        channel: Option<ChannelId>,
        event: Event,
    ) -> Result<(), crate::audit::StoreError> {
        let channel = channel.map(channel_number);
        self.store().record(Some(self.id()), channel, event).await
    }

    /// Queues stream bytes of `channel` for the store (write-ahead for what
    /// is forwarded after it: see `Store::chunk`).
    pub async fn record_chunk(
        &self,
        channel: ChannelId,
        stream: crate::audit::Stream,
        data: bytes::Bytes,
    ) -> Result<(), crate::audit::StoreError> {
        self.store()
            .chunk(self.id(), channel_number(channel), stream, data)
            .await
    }

    pub async fn record_refused_request(
        &self,
        channel: Option<ChannelId>,
        request: &str,
        reason: &str,
    ) {
        tracing::info!(session = %self.id(), request, reason, "request refused");
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
    /// then the session's record, then single use, then upstream.
    pub async fn end(&self, reason: &str) {
        self.ctx.live.unregister(self.id());
        let all_closed = self.channel_tasks.acquire_many(MAX_CHANNEL_TASKS);
        if tokio::time::timeout(CLOSE_GRACE, all_closed).await.is_err() {
            tracing::warn!(session = %self.authorized.id(), "channels still open at the end of the session");
        }
        if let Err(e) = self
            .store()
            .end_session(self.id(), reason.to_string())
            .await
        {
            tracing::error!(error = %e, "could not record the end of a session");
        }
        if self.authorized.single_use() {
            let facts = self.cert_facts();
            let consumed = self
                .ctx
                .grants
                .run(move |db| db.consume_single_use(&facts.ca_fingerprint, facts.serial))
                .await;
            if let Err(e) = consumed {
                tracing::error!(error = %e, "could not mark a single-session grant consumed");
            }
        }
        let upstream = self.upstream.lock().await.take();
        if let Some(Ok(upstream)) = upstream {
            upstream.close().await;
        }
    }
}

/// Ends the session when its cert expires or it has been idle too long.
async fn watch_lifetime(live: Weak<LiveSession>) {
    loop {
        let Some(session) = live.upgrade() else {
            return;
        };
        let now = clock::now_us();
        let expires = i64::try_from(session.authorized.cert().valid_before)
            .unwrap_or(i64::MAX / 1_000_000)
            .saturating_mul(1_000_000);
        let idle = i64::try_from(session.ctx.limits.idle_timeout.as_micros()).unwrap_or(i64::MAX);
        let idle_end = session
            .last_activity
            .load(Ordering::Relaxed)
            .saturating_add(idle);
        if now >= expires {
            session.terminate(EXPIRED);
            return;
        }
        if now >= idle_end {
            let limit = crate::policy::format_duration(session.ctx.limits.idle_timeout);
            session.terminate(&format!("idle for {limit} (idle_timeout)"));
            return;
        }
        let next = expires.min(idle_end).saturating_sub(now);
        drop(session);
        tokio::time::sleep(Duration::from_micros(u64::try_from(next).unwrap_or(0))).await;
    }
}

/// The channel number as the store keeps it.
pub fn channel_number(id: ChannelId) -> u32 {
    let raw: u32 = id.into();
    raw
}
