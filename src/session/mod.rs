//! A live, admitted session: its certificate, its effective scope, the
//! store it records to, and the signal that ends it. The SSH front, the
//! upstream side and the proxying all stand on this layer; it imports none
//! of them.
//!
//! Invariants: a [`LiveSession`] exists only for a certificate admitted by
//! [`admit::open`], whose `session.start` (and single-use claim) is
//! committed; every action on its behalf goes through one of its
//! `authorize_*` / `record_*` methods, which decide with the session's own
//! scope and commit the decision (or record the refusal) before returning
//! the [`Recorded`] permit the upstream and proxy code require; a session
//! never outlives its certificate's `valid_before`.

pub mod admit;
mod authorize;
pub mod hold;
pub mod recorded;
pub mod scope;
pub mod setup;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use russh::ChannelId;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::audit::{Event, SessionId, Store};
use crate::cert::VerifiedCert;
use crate::clock;
use crate::cluster::Cluster;
use crate::grants::CertFacts;
pub use recorded::{Denied, Exit, Recorded, RefusedRequest, Unrecorded};
pub use scope::Scope;

/// Channel tasks a session may have in flight (a bound, not a quota that
/// is ever reached in practice).
const MAX_CHANNEL_TASKS: u32 = 1 << 20;
/// How long the end of a session waits for its channels' closing records.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why a session is cut when its cert's window closes.
pub const EXPIRED: &str = "the grant expired";

/// The limits a session keeps by itself.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// A session with no channel traffic for this long is ended.
    pub idle_timeout: Duration,
    /// Longest command accepted, in bytes.
    pub max_command_bytes: usize,
    pub holds: hold::HoldSettings,
}

/// Held by a channel task until it has recorded its end; see
/// [`LiveSession::hold`].
pub struct ChannelGuard {
    _permit: Option<OwnedSemaphorePermit>,
}

pub struct LiveSession {
    id: SessionId,
    cert: VerifiedCert,
    /// What revocations are judged on, as admission found them.
    facts: CertFacts,
    scope: Scope,
    store: Store,
    /// The cluster whose session index has this session (`[cluster]`).
    cluster: Option<Arc<Cluster>>,
    limits: SessionLimits,
    /// `Some(reason)` once the session must end (expiry, revocation, idle).
    ending: watch::Sender<Option<String>>,
    /// Unix micros of the last channel traffic, for the idle timeout.
    last_activity: AtomicI64,
    /// One permit per running channel task that still has to record its end.
    channel_tasks: Arc<Semaphore>,
}

impl LiveSession {
    fn start(
        id: SessionId,
        cert: VerifiedCert,
        facts: CertFacts,
        scope: Scope,
        store: Store,
        cluster: Option<Arc<Cluster>>,
        limits: SessionLimits,
    ) -> Arc<LiveSession> {
        let (ending, _) = watch::channel(None);
        let live = Arc::new(LiveSession {
            id,
            cert,
            facts,
            scope,
            store,
            cluster,
            limits,
            ending,
            last_activity: AtomicI64::new(clock::now_us()),
            channel_tasks: Arc::new(Semaphore::new(MAX_CHANNEL_TASKS as usize)),
        });
        tokio::spawn(watch_lifetime(Arc::downgrade(&live)));
        live
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The identity, as the cert's key id names it.
    pub fn identity(&self) -> &str {
        self.cert.key_id()
    }

    pub fn cert(&self) -> &VerifiedCert {
        &self.cert
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// What revocations and single use are judged on.
    pub fn cert_facts(&self) -> &CertFacts {
        &self.facts
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
                return crate::audit::SESSION_CLOSED.to_string();
            }
        }
    }

    /// Commits `event`; the caller must not go on when this fails (the
    /// action it records does not happen unrecorded).
    pub async fn record_or_stop(
        &self,
        channel: Option<ChannelId>,
        event: Event,
    ) -> Result<(), Unrecorded> {
        self.store
            .record(Some(self.id), channel.map(channel_number), event)
            .await
            .map_err(|e| Unrecorded(e.to_string()))
    }

    /// Commits `event` where a failure changes nothing the session does
    /// (a refusal stands either way; a closing record): logged only.
    pub async fn record_best_effort(&self, channel: Option<ChannelId>, event: Event) {
        let kind = event.kind();
        if let Err(e) = self.record_or_stop(channel, event).await {
            tracing::error!(session = %self.id, kind, error = %e, "could not record");
        }
    }

    /// Queues stream bytes of `channel` for the store (write-ahead for what
    /// is forwarded after it: see `Store::chunk`).
    pub async fn record_chunk(
        &self,
        channel: ChannelId,
        stream: crate::audit::Stream,
        data: bytes::Bytes,
    ) -> Result<(), Unrecorded> {
        self.store
            .chunk(self.id, channel_number(channel), stream, data)
            .await
            .map_err(|e| Unrecorded(e.to_string()))
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
    /// then the session's record (which spends a single-use claim).
    pub async fn end(&self, reason: &str) {
        // Channel tasks still waiting (a held command) stop now.
        self.terminate(reason);
        let all_closed = self.channel_tasks.acquire_many(MAX_CHANNEL_TASKS);
        if tokio::time::timeout(CLOSE_GRACE, all_closed).await.is_err() {
            tracing::warn!(session = %self.id, "channels still open at the end of the session");
        }
        if let Err(e) = self.store.end_session(self.id, reason.to_string()).await {
            tracing::error!(error = %e, "could not record the end of a session");
        }
        if let Some(cluster) = &self.cluster {
            if let Err(e) = cluster.end_session(self.id, clock::now_us(), reason).await {
                tracing::error!(error = %e, "could not end a session in the cluster's index");
            }
        }
    }
}

/// What revocations and single use are judged on, for a verified cert
/// (its issue time is filled in from the grants table at admission).
fn cert_facts(cert: &VerifiedCert) -> CertFacts {
    CertFacts {
        ca_fingerprint: cert.ca_fingerprint().to_owned(),
        serial: cert.serial(),
        key_id: cert.key_id().to_owned(),
        task: cert.scope().task.clone(),
        valid_after: cert.valid_after(),
        fingerprint: cert.fingerprint().to_owned(),
        key_fingerprint: cert.key_fingerprint().to_owned(),
        issued_at_us: None,
    }
}

/// Ends the session when its cert expires or it has been idle too long.
async fn watch_lifetime(live: Weak<LiveSession>) {
    loop {
        let Some(session) = live.upgrade() else {
            return;
        };
        let now = clock::now_us();
        let expires = i64::try_from(session.cert.valid_before())
            .unwrap_or(i64::MAX / 1_000_000)
            .saturating_mul(1_000_000);
        let idle = i64::try_from(session.limits.idle_timeout.as_micros()).unwrap_or(i64::MAX);
        let idle_end = session
            .last_activity
            .load(Ordering::Relaxed)
            .saturating_add(idle);
        if now >= expires {
            session.terminate(EXPIRED);
            return;
        }
        if now >= idle_end {
            let limit = crate::policy::format_duration(session.limits.idle_timeout);
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
