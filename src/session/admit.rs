//! Admission: the transaction that turns a verified certificate and its
//! ceiling into a live session.
//!
//! Invariant: the grant-state checks (revoked, identity suspended, single
//! use spent), the single-use claim, the session row with its chained
//! `session.start`, and `auth.accepted` happen in ONE transaction of the
//! store's one writer: a claim is never spent without its session on
//! record, and a revocation committed before the transaction always
//! refuses it. What the transaction cannot see (a revocation committed
//! after it) the caller checks against [`Opened::revocations_seen`].
//!
//! With `[cluster]`, the shared state is checked (and a single use claimed)
//! first, in one PostgreSQL transaction, then the session is recorded
//! locally as above, then put in the cluster's session index. A claim whose
//! session cannot be recorded is given back; a session the index cannot
//! take is ended at once (the cluster would not see it).

use std::sync::Arc;

use super::scope::Scope;
use super::{cert_facts, LiveSession, SessionLimits};
use crate::audit::{Abort, Event, NewSession, SessionId, SessionRecord, Store};
use crate::cert::VerifiedCert;
use crate::cluster::Cluster;
use crate::grants::db::{self, CertState};
use crate::policy::Ceiling;

/// Why a verified certificate with a ceiling still opens no session.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitRefusal {
    #[error(transparent)]
    State(#[from] CertState),
    #[error("the audit store cannot record the session, so none is opened")]
    StoreUnavailable,
    #[error("the cluster database cannot be reached, so no session is opened")]
    ClusterUnavailable,
}

/// Why a session the cluster's index could not take is ended.
pub const NOT_INDEXED: &str = "the cluster's session index could not record the session";

/// A session that was opened, and the last revocation its transaction saw.
pub struct Opened {
    pub session: Arc<LiveSession>,
    pub revocations_seen: i64,
}

/// Where a connection comes from and which login it used.
pub struct Arrival {
    pub login: String,
    pub client_addr: String,
}

/// Opens a session for `cert` under `ceiling` (see the module doc).
pub async fn open(
    store: &Store,
    cluster: Option<&Arc<Cluster>>,
    cert: VerifiedCert,
    ceiling: Ceiling,
    arrival: Arrival,
    limits: SessionLimits,
) -> Result<Opened, AdmitRefusal> {
    let scope = Scope::new(&cert, ceiling, limits.max_command_bytes);
    let facts = cert_facts(&cert);
    let single_use = scope.single_session();
    let start = NewSession {
        identity: cert.key_id().to_owned(),
        key_id: cert.key_id().to_owned(),
        task: cert.scope().task.clone(),
        cert_serial: cert.serial(),
        ca_fingerprint: cert.ca_fingerprint().to_owned(),
        cert_fingerprint: Some(cert.fingerprint().to_owned()),
        role: scope.role().map(str::to_owned),
        client_addr: arrival.client_addr,
        target: scope.target().name.clone(),
        login: arrival.login.clone(),
    };
    let accepted = Event::AuthAccepted {
        key_id: cert.key_id().to_owned(),
        serial: cert.serial(),
        ca_fingerprint: cert.ca_fingerprint().to_owned(),
        cert_fingerprint: Some(cert.fingerprint().to_owned()),
        role: scope.role().map(str::to_owned),
        principals: cert.principals().to_vec(),
        login: arrival.login,
        valid_after: Some(cert.valid_after()),
        valid_before: Some(cert.valid_before()),
        critical_options: Some(cert.critical_options().clone()),
        extensions: Some(cert.extensions().clone()),
    };
    let shared = match cluster {
        Some(cluster) => match cluster.admit(&facts, single_use).await {
            Ok(Ok(admitted)) => Some((cluster, admitted)),
            Ok(Err(state)) => return Err(AdmitRefusal::State(state)),
            Err(e) => {
                tracing::error!(error = %e, "could not check the cluster's grant state");
                return Err(AdmitRefusal::ClusterUnavailable);
            }
        },
        None => None,
    };
    let fingerprint = facts.fingerprint.clone();
    let record_start = start.clone();
    let issued_per_cluster = shared.as_ref().and_then(|(_, a)| a.issued_at_us);
    let opened = store
        .transact(move |txn| {
            let mut facts = facts;
            // A replica that did not sign the cert knows when from the cluster.
            facts.issued_at_us =
                db::issued_at(txn.conn(), &facts.fingerprint)?.or(issued_per_cluster);
            if let Err(state) = db::cert_state(txn.conn(), &facts, single_use)? {
                return Err(Abort::Refused(state));
            }
            let seen = db::last_revocation_id(txn.conn())?;
            let id = txn.begin_session(&start)?;
            if single_use {
                db::claim(txn, &facts, id)?;
            }
            txn.record(Some(id), None, &accepted)?;
            Ok((id, txn.at_us(), seen, facts))
        })
        .await;
    let (id, started_at_us, local_seen, facts) = match opened {
        Ok(opened) => opened,
        Err(refusal) => {
            if let Some((cluster, admitted)) = shared {
                if admitted.claimed {
                    if let Err(e) = cluster.release_claim(&fingerprint).await {
                        tracing::error!(error = %e, "could not give back a single use");
                    }
                }
            }
            return Err(match refusal {
                Abort::Refused(state) => AdmitRefusal::State(state),
                Abort::Failed(e) => {
                    tracing::error!(error = %e, "could not open a session");
                    AdmitRefusal::StoreUnavailable
                }
            });
        }
    };
    let revocations_seen = match shared {
        None => local_seen,
        Some((cluster, admitted)) => {
            let record = session_record(id, started_at_us, record_start);
            if let Err(e) = cluster.index_session(&record, admitted.claimed).await {
                tracing::error!(error = %e, "could not put a session in the cluster's index");
                if let Err(e) = store.end_session(id, NOT_INDEXED.to_owned()).await {
                    tracing::error!(error = %e, "could not record the end of a session");
                }
                return Err(AdmitRefusal::ClusterUnavailable);
            }
            admitted.revocations_seen
        }
    };
    let cluster = cluster.cloned();
    Ok(Opened {
        session: LiveSession::start(id, cert, facts, scope, store.clone(), cluster, limits),
        revocations_seen,
    })
}

fn session_record(id: SessionId, started_at_us: i64, start: NewSession) -> SessionRecord {
    SessionRecord {
        id,
        started_at_us,
        ended_at_us: None,
        end_reason: None,
        identity: start.identity,
        key_id: start.key_id,
        task: start.task,
        cert_serial: start.cert_serial,
        ca_fingerprint: start.ca_fingerprint,
        cert_fingerprint: start.cert_fingerprint,
        role: start.role,
        client_addr: start.client_addr,
        target: start.target,
        login: start.login,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::{DirectWriter, Reader};
    use crate::grants::{db, RevokeSelector};
    use crate::session::scope::testing::cert_and_ceiling;

    const SINGLE: &str = "[roles.ops]\ntargets = [\"web1\"]\nexec = [\"uptime\"]\nmax_ttl = \"15m\"\napproval = \"auto\"\nsingle_session = true\n";

    fn limits(store: &Store) -> SessionLimits {
        let reader = crate::grants::GrantsReader::open(store.path()).unwrap();
        let book = crate::book::Book::new(store.clone(), reader, None, &Default::default());
        SessionLimits {
            idle_timeout: Duration::from_secs(60),
            max_command_bytes: 1024,
            holds: crate::session::hold::HoldSettings {
                wait: Duration::from_secs(1),
                expiry: Duration::from_secs(60),
                book: std::sync::Arc::new(book),
            },
        }
    }

    fn arrival() -> Arrival {
        Arrival {
            login: "web1".into(),
            client_addr: "127.0.0.1:1".into(),
        }
    }

    #[tokio::test]
    async fn of_two_simultaneous_first_uses_exactly_one_opens_a_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.db");
        let store = Store::open(&path).unwrap();
        let (cert, ceiling) = cert_and_ceiling(SINGLE, &[], &[]);
        let (a, b) = tokio::join!(
            open(
                &store,
                None,
                cert.clone(),
                ceiling.clone(),
                arrival(),
                limits(&store)
            ),
            open(&store, None, cert, ceiling, arrival(), limits(&store)),
        );
        let refused = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(AdmitRefusal::State(CertState::Spent(_)))))
            .count();
        assert_eq!((a.is_ok() as u8 + b.is_ok() as u8, refused), (1, 1));
        let sessions = Reader::open(&path)
            .unwrap()
            .list_sessions(&Default::default())
            .unwrap();
        assert_eq!(
            sessions.len(),
            1,
            "a claim is never spent without its session"
        );
    }

    #[tokio::test]
    async fn a_revocation_committed_before_admission_refuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.db");
        let store = Store::open(&path).unwrap();
        let (cert, ceiling) = cert_and_ceiling(SINGLE, &[], &[]);
        let selector = RevokeSelector::Fingerprint(cert.fingerprint().to_owned());
        DirectWriter::open(&path)
            .unwrap()
            .transact(|txn| db::revoke(txn, &selector, "test", None))
            .unwrap();
        let refused = open(&store, None, cert, ceiling, arrival(), limits(&store)).await;
        assert!(matches!(
            refused,
            Err(AdmitRefusal::State(CertState::Revoked { .. }))
        ));
    }
}
