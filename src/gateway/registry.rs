//! The live sessions of this server, so a revocation made by another
//! process reaches the sessions it covers.
//!
//! Invariant: the registry holds no session alive (weak references), and
//! every revocation reaches every session it covers: those registered when
//! the watch applies it, and those that register later but were admitted
//! before they could see it (their admission transaction reports the last
//! revocation it saw; [`LiveRegistry::register`] checks the ones applied
//! since).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::ServerContext;
use crate::audit::{Event, SessionId};
use crate::clock;
use crate::grants::{db, krl, GrantError, Revocation};
use crate::session::LiveSession;

/// How often the store is checked for new revocations; the contract's
/// bound is one second from `portcullis revoke` to the session's end.
pub const REVOCATION_POLL: Duration = Duration::from_millis(250);

pub const REVOKED: &str = "the grant was revoked";

#[derive(Default)]
pub struct LiveRegistry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionId, Weak<LiveSession>>,
    /// Revocations the watch applied since the server started (rare; a
    /// session admitted before seeing one is checked against it).
    applied: Vec<Revocation>,
    /// Set when the server stops: a session registering after that (its
    /// handshake was under way) is ended at once, with this reason.
    closed: Option<String>,
}

impl LiveRegistry {
    /// Registers a session whose admission saw revocations up to id
    /// `revocations_seen`; ends it at once if one applied since covers it.
    pub fn register(&self, live: &Arc<LiveSession>, revocations_seen: i64) {
        let Ok(mut inner) = self.inner.lock() else {
            live.terminate(REVOKED);
            return;
        };
        if let Some(reason) = &inner.closed {
            live.terminate(reason);
            return;
        }
        inner.sessions.insert(live.id(), Arc::downgrade(live));
        let facts = live.cert_facts();
        let missed = inner
            .applied
            .iter()
            .any(|r| r.id > revocations_seen && r.selector.covers(facts, r.at_us));
        if missed {
            live.terminate(REVOKED);
        }
    }

    pub fn unregister(&self, id: SessionId) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.sessions.remove(&id);
        }
    }

    /// Live sessions of `identity` on this server.
    pub fn count_identity(&self, identity: &str) -> usize {
        match self.inner.lock() {
            Ok(inner) => inner
                .sessions
                .values()
                .filter_map(Weak::upgrade)
                .filter(|s| s.identity() == identity)
                .count(),
            Err(_) => 0,
        }
    }

    /// The live sessions, now.
    pub fn snapshot(&self) -> Vec<Arc<LiveSession>> {
        match self.inner.lock() {
            Ok(inner) => inner.sessions.values().filter_map(Weak::upgrade).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Live sessions on this server.
    pub fn live_count(&self) -> usize {
        match self.inner.lock() {
            Ok(inner) => inner.sessions.values().filter_map(Weak::upgrade).count(),
            Err(_) => 0,
        }
    }

    /// Ends every live session with `reason`, and every session that
    /// registers from now on; returns how many were live.
    pub fn close(&self, reason: &str) -> usize {
        let live: Vec<Arc<LiveSession>> = match self.inner.lock() {
            Ok(mut inner) => {
                inner.closed = Some(reason.to_string());
                inner.sessions.values().filter_map(Weak::upgrade).collect()
            }
            Err(_) => Vec::new(),
        };
        for session in &live {
            session.terminate(reason);
        }
        live.len()
    }

    /// Ends the sessions `revocation` covers; returns their ids.
    fn apply(&self, revocation: Revocation) -> Vec<i64> {
        let live: Vec<Arc<LiveSession>> = match self.inner.lock() {
            Ok(mut inner) => {
                let live = inner.sessions.values().filter_map(Weak::upgrade).collect();
                inner.applied.push(revocation.clone());
                live
            }
            Err(_) => Vec::new(),
        };
        let mut ended = Vec::new();
        for session in live {
            if revocation
                .selector
                .covers(session.cert_facts(), revocation.at_us)
            {
                session.terminate(REVOKED);
                ended.push(session.id().0);
            }
        }
        ended
    }
}

/// Watches for revocations (from any process; with `[cluster]`, from any
/// replica or operator, woken by their notices) for as long as the server
/// runs.
pub async fn watch_revocations(ctx: Arc<ServerContext>) {
    let wake = ctx
        .cluster
        .as_ref()
        .map(|cluster| cluster.listen_for_revocations());
    // A reinstatement adds no revocation but takes an identity off the
    // KRL: with the cluster, the suspended set is watched too.
    let mut suspended = Vec::new();
    let mut last = match last_revocation_id(&ctx).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "cannot read revocations; watching from the start");
            0
        }
    };
    loop {
        match &wake {
            Some(wake) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(REVOCATION_POLL) => {}
                }
            }
            None => tokio::time::sleep(REVOCATION_POLL).await,
        }
        let fresh = match revocations_after(&ctx, last).await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::error!(error = %e, "cannot read revocations");
                continue;
            }
        };
        let any = !fresh.is_empty();
        for revocation in fresh {
            last = last.max(revocation.id);
            let id = revocation.id;
            let selector = revocation.selector.to_string();
            let ended = ctx.live.apply(revocation);
            tracing::info!(revocation = %selector, sessions = ?ended, "revocation applied");
            let event = Event::RevocationApplied {
                revocation_id: id,
                sessions_ended: ended,
            };
            if let Err(e) = ctx.store.record(None, None, event).await {
                tracing::error!(error = %e, "could not record a revocation");
            }
        }
        // Asked every round, so `suspended` tracks the set even when a
        // revocation alone already calls for a new KRL.
        let changed = suspensions_changed(&ctx, &mut suspended).await;
        if any || changed {
            refresh_krl(&ctx).await;
        }
    }
}

/// Whether the cluster's suspended identities changed since `seen` (only
/// asked when a KRL is kept); `seen` becomes the set now.
async fn suspensions_changed(ctx: &ServerContext, seen: &mut Vec<String>) -> bool {
    let (Some(cluster), Some(_)) = (&ctx.cluster, &ctx.config.write_krl) else {
        return false;
    };
    match cluster.suspended_identities().await {
        Ok(now) if now != *seen => {
            *seen = now;
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::error!(error = %e, "cannot read suspensions");
            false
        }
    }
}

/// Where revocations are kept: the cluster's database, else the store.
async fn last_revocation_id(ctx: &ServerContext) -> Result<i64, String> {
    match &ctx.cluster {
        Some(cluster) => cluster
            .last_revocation_id()
            .await
            .map_err(|e| e.to_string()),
        None => ctx
            .grants
            .run(|conn| Ok(db::last_revocation_id(conn)?))
            .await
            .map_err(|e| e.to_string()),
    }
}

async fn revocations_after(ctx: &ServerContext, after: i64) -> Result<Vec<Revocation>, String> {
    match &ctx.cluster {
        Some(cluster) => cluster
            .revocations_after(after)
            .await
            .map_err(|e| e.to_string()),
        None => ctx
            .grants
            .run(move |conn| db::revocations_after(conn, after))
            .await
            .map_err(|e| e.to_string()),
    }
}

/// Rewrites `[ca] write_krl`, when configured, from the store's
/// revocations, or the cluster's naming the certs the store knows (at
/// start, and after revocations from any process).
pub async fn refresh_krl(ctx: &Arc<ServerContext>) {
    let Some(path) = ctx.config.write_krl.clone() else {
        return;
    };
    let revoked = match &ctx.cluster {
        Some(cluster) => match cluster.revoked().await {
            Ok(revoked) => Some(revoked),
            Err(e) => {
                tracing::error!(error = %e, "could not read the cluster's revocations for the KRL");
                return;
            }
        },
        None => None,
    };
    let cas = ctx.ca_keys.clone();
    let written = ctx
        .grants
        .run(move |conn| {
            let now = clock::now_unix();
            let krl = match &revoked {
                Some(revoked) => krl::build_with(conn, &cas, now, revoked)?,
                None => krl::build(conn, &cas, now)?,
            };
            krl::write_atomically(&path, &krl.bytes).map_err(|e| GrantError::Io(e.to_string()))?;
            Ok(krl)
        })
        .await;
    match written {
        Ok(krl) if krl.unnamed > 0 => tracing::warn!(
            certs = krl.unnamed,
            "revoked certs with serial 0 and no known key cannot be listed in the KRL"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not write the KRL (write_krl)"),
    }
}
