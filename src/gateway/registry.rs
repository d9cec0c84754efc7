//! The live sessions of this server, so a revocation made by another
//! process reaches the sessions it covers.
//!
//! Invariant: the registry holds no session alive (weak references), and a
//! revocation seen here ends every registered session its selector covers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::live::LiveSession;
use super::ServerContext;
use crate::audit::{Event, SessionId};
use crate::grants::Revocation;

/// How often the store is checked for new revocations; the SPEC bound is
/// one second from `portcullis revoke` to the session's end.
pub const REVOCATION_POLL: Duration = Duration::from_millis(250);

pub const REVOKED: &str = "the grant was revoked";

#[derive(Default)]
pub struct LiveRegistry {
    sessions: Mutex<HashMap<SessionId, Weak<LiveSession>>>,
}

impl LiveRegistry {
    pub fn register(&self, live: &Arc<LiveSession>) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(live.id(), Arc::downgrade(live));
        }
    }

    pub fn unregister(&self, id: SessionId) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&id);
        }
    }

    /// Live sessions of `identity` on this server.
    pub fn count_identity(&self, identity: &str) -> usize {
        match self.sessions.lock() {
            Ok(sessions) => sessions
                .values()
                .filter_map(Weak::upgrade)
                .filter(|s| s.authorized.identity() == identity)
                .count(),
            Err(_) => 0,
        }
    }

    /// Ends the sessions `revocation` covers; returns their ids.
    fn apply(&self, revocation: &Revocation) -> Vec<i64> {
        let live: Vec<Arc<LiveSession>> = match self.sessions.lock() {
            Ok(sessions) => sessions.values().filter_map(Weak::upgrade).collect(),
            Err(_) => Vec::new(),
        };
        let mut ended = Vec::new();
        for session in live {
            if revocation
                .selector
                .covers(&session.cert_facts(), revocation.at_us)
            {
                session.terminate(REVOKED);
                ended.push(session.id().0);
            }
        }
        ended
    }
}

/// Watches the grants tables for revocations (from any process) for as long
/// as the server runs.
pub async fn watch_revocations(ctx: Arc<ServerContext>) {
    let mut last = match ctx.grants.run(|db| db.last_revocation_id()).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "cannot read revocations; watching from the start");
            0
        }
    };
    loop {
        tokio::time::sleep(REVOCATION_POLL).await;
        let after = last;
        let fresh = match ctx.grants.run(move |db| db.revocations_after(after)).await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::error!(error = %e, "cannot read revocations");
                continue;
            }
        };
        for revocation in fresh {
            last = last.max(revocation.id);
            let ended = ctx.live.apply(&revocation);
            tracing::info!(revocation = %revocation.selector, sessions = ?ended, "revocation applied");
            let event = Event::GrantRevoked {
                revocation_id: revocation.id,
                selector: revocation.selector.to_string(),
                by: revocation.by.clone(),
                reason: revocation.reason.clone(),
                sessions_ended: ended,
            };
            if let Err(e) = ctx.store.record(None, None, event).await {
                tracing::error!(error = %e, "could not record a revocation");
            }
        }
    }
}
