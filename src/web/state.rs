//! The store as the viewer uses it: reads on a fresh read-only
//! connection per request, writes (sign-in, views, sign-out) through one
//! `DirectWriter`, all off the async threads; with `[cluster]`, the
//! cluster's session index and the archive too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::archive::Remote;
use crate::audit::{Abort, DirectWriter, Event, Reader, StoreError, Txn};
use crate::policy::{Policy, Review};

#[derive(Clone)]
pub struct State {
    inner: Arc<Inner>,
}

struct Inner {
    store: PathBuf,
    policy_dir: PathBuf,
    writer: Mutex<DirectWriter>,
    /// `[limits] request_expiry`: approvals refuse what is past it.
    request_expiry: std::time::Duration,
    /// `[cluster]`: every replica's sessions (the index, the archive).
    remote: Option<Remote>,
}

/// The store failed; the peer gets a 500 and no detail.
#[derive(Debug)]
pub struct Unavailable;

impl State {
    pub fn open(
        store: &Path,
        policy_dir: &Path,
        request_expiry: std::time::Duration,
        remote: Option<Remote>,
    ) -> anyhow::Result<State> {
        let writer = DirectWriter::open(store)?;
        Ok(State {
            inner: Arc::new(Inner {
                store: store.to_path_buf(),
                policy_dir: policy_dir.to_path_buf(),
                writer: Mutex::new(writer),
                request_expiry,
                remote,
            }),
        })
    }

    /// With `[cluster]`: the cluster's sessions; `None`: this store only.
    pub fn remote(&self) -> Option<&Remote> {
        self.inner.remote.as_ref()
    }

    /// Approves or denies request `id` (a grant request or a held
    /// command) through the same path as `portcullis approve`/`deny`:
    /// `Ok(Err(reason))` when it is not decidable (unknown, decided,
    /// expired), in one line.
    pub async fn decide(
        &self,
        id: i64,
        approve: bool,
        by: String,
        reason: Option<String>,
    ) -> Result<Result<(), String>, Unavailable> {
        let expiry = self.inner.request_expiry;
        if let Some(remote) = self.remote() {
            let cluster = remote.cluster();
            return match cluster
                .decide(id, approve, &by, reason.as_deref(), expiry)
                .await
            {
                Ok(decided) => Ok(decided.map_err(|e| e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "web: the cluster database failed");
                    Err(Unavailable)
                }
            };
        }
        let inner = self.inner.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut writer = inner.writer.lock().map_err(|_| Unavailable)?;
            let decided = writer.transact(|txn| {
                crate::grants::db::decide(txn, id, approve, &by, reason.as_deref(), expiry)
            });
            match decided {
                Ok(()) => Ok(Ok(())),
                Err(Abort::Refused(e)) => Ok(Err(e.to_string())),
                Err(Abort::Failed(e)) => {
                    tracing::warn!(error = %e, "web: store write failed");
                    Err(Unavailable)
                }
            }
        })
        .await;
        done.unwrap_or(Err(Unavailable))
    }

    /// Whether `identity` may approve now: a reviewer now, with
    /// `approve = true` in the policy on disk.
    pub async fn may_approve(&self, identity: &str) -> bool {
        if !self.may_review(identity).await {
            return false;
        }
        let dir = self.inner.policy_dir.clone();
        let identity = identity.to_owned();
        tokio::task::spawn_blocking(move || {
            Policy::load(&dir).is_ok_and(|policy| {
                policy
                    .identities
                    .get(&identity)
                    .is_some_and(|i| i.approve == crate::policy::Approver::Allowed)
            })
        })
        .await
        .unwrap_or(false)
    }

    /// Pending grant requests and held commands, oldest first.
    pub async fn pending(
        &self,
    ) -> Result<
        (
            Vec<crate::grants::RequestRecord>,
            Vec<crate::grants::db::HoldRecord>,
        ),
        Unavailable,
    > {
        if let Some(remote) = self.remote() {
            let cluster = remote.cluster();
            return match tokio::try_join!(cluster.requests(true), cluster.holds(true)) {
                Ok(pending) => Ok(pending),
                Err(e) => {
                    tracing::warn!(error = %e, "web: the cluster database failed");
                    Err(Unavailable)
                }
            };
        }
        let store = self.inner.store.clone();
        let done = tokio::task::spawn_blocking(move || {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let conn = rusqlite::Connection::open_with_flags(&store, flags).ok()?;
            let requests = crate::grants::db::requests(&conn, true).ok()?;
            let holds = crate::grants::db::holds(&conn, true).ok()?;
            Some((requests, holds))
        })
        .await;
        match done {
            Ok(Some(pending)) => Ok(pending),
            _ => Err(Unavailable),
        }
    }

    /// Runs `read` on a read-only connection, off the async threads.
    pub async fn read<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Reader) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, Unavailable> {
        let store = self.inner.store.clone();
        let done = tokio::task::spawn_blocking(move || {
            let reader = Reader::open(&store)?;
            read(&reader)
        })
        .await;
        match done {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "web: store read failed");
                Err(Unavailable)
            }
            Err(_) => Err(Unavailable),
        }
    }

    /// Runs `op` in one write transaction, off the async threads.
    pub async fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Txn<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, Unavailable> {
        let inner = self.inner.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut writer = inner.writer.lock().map_err(|_| Unavailable)?;
            writer
                .transact(|txn| op(txn).map_err(Abort::<()>::Failed))
                .map_err(|e| {
                    if let Abort::Failed(e) = e {
                        tracing::warn!(error = %e, "web: store write failed");
                    }
                    Unavailable
                })
        })
        .await;
        done.unwrap_or(Err(Unavailable))
    }

    /// Whether `identity` may review now (see [`may_review_now`]).
    pub async fn may_review(&self, identity: &str) -> bool {
        let dir = self.inner.policy_dir.clone();
        let store = self.inner.store.clone();
        let identity = identity.to_owned();
        tokio::task::spawn_blocking(move || {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            match rusqlite::Connection::open_with_flags(&store, flags) {
                Ok(conn) => may_review_now(&dir, &conn, &identity),
                Err(_) => false,
            }
        })
        .await
        .unwrap_or(false)
    }

    pub fn policy_dir(&self) -> PathBuf {
        self.inner.policy_dir.clone()
    }

    /// Records one chained event outside any session.
    pub async fn record(&self, event: Event) -> Result<(), Unavailable> {
        self.write(move |txn| txn.record(None, None, &event)).await
    }
}

/// Whether `identity` may review under the policy as it is on disk now,
/// and is not suspended (`revoke --identity`). Read per request: taking
/// `review = true` away or suspending the identity shuts its browser
/// sessions out at once, and a policy that does not load, or a store that
/// cannot say, shuts out all.
pub fn may_review_now(policy_dir: &Path, conn: &rusqlite::Connection, identity: &str) -> bool {
    if !matches!(crate::grants::db::is_suspended(conn, identity), Ok(false)) {
        return false;
    }
    match Policy::load(policy_dir) {
        Ok(policy) => policy
            .identities
            .get(identity)
            .is_some_and(|i| i.review == Review::Allowed),
        Err(_) => {
            tracing::warn!("web: the policy does not load; refusing every reviewer");
            false
        }
    }
}
