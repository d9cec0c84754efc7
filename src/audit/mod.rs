//! The audit store: an append-only, hash-chained SQLite transcript of every
//! session, event and stream byte the bastion handles.
//!
//! Invariants this module keeps:
//! - **Write-ahead** (SPEC guarantee 2): [`Store::record`], [`Store::begin_session`]
//!   and [`Store::end_session`] return `Ok` only after their row is committed
//!   (`synchronous=FULL`), so a caller that forwards an action only after `Ok`
//!   never proxies anything unrecorded. After a failed commit the store reports
//!   itself unhealthy ([`Store::is_healthy`]) and callers refuse new actions.
//! - **One writer**: every write goes through one thread that owns the only
//!   read-write connection; nothing on the async runtime blocks on SQLite.
//! - **Tamper evidence** (SPEC guarantee 5): every row of `events` carries
//!   `hash = H(prev_hash ‖ row)` in one global chain (`H` is BLAKE3, or
//!   SHA-256 for a chain begun by schema 1; see `chain_format`), and a one-row
//!   `chain_head` (updated in the same transaction) records the last seq and
//!   hash so that a removed tail is detected too. Session start and end are
//!   chained events; the `sessions` table is only an index that
//!   [`Reader::verify`] cross-checks against the chain.
//! - **Nothing lost** (SPEC guarantee 4): an interrupted session keeps all its
//!   committed rows and is closed with reason `interrupted` on the next open.
//!
//! The chain proves integrity relative to its head: someone able to rewrite
//! the whole file can recompute every hash. Recording the head that
//! `portcullis verify` prints somewhere else anchors it.

mod chain;
mod checkpoint;
mod event;
mod ops;
mod payload;
mod query;
mod recover;
mod schema;
mod store;
mod txn;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use event::{Event, NewSession, Stream, ViewForm};
pub use query::{
    Entry, EventFilter, EventRecord, Outcome, Reader, SessionFilter, SessionRecord, Transcript,
};
pub use recover::INTERRUPTED;

/// The end reasons of a session its client ended (the web list's
/// `outcome=closed` matches on them, so they are named once, here).
pub const CLIENT_DISCONNECTED: &str = "client disconnected";
pub const SESSION_CLOSED: &str = "session closed";
pub use schema::probe_writable;
pub use store::{Store, StoreOptions};
pub use txn::{Abort, DirectWriter, Txn};
pub use verify::{Problem, ProblemKind, VerifyReport};

/// The id of a recorded session (`sessions.id`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SessionId(pub i64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Everything that can go wrong between the bastion and its audit store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the audit store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the audit store has schema version {found}; this portcullis knows up to {supported}")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("the audit store at {0} has no portcullis schema")]
    NotAStore(PathBuf),
    #[error("audit store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the audit store cannot write ({0}); refusing unrecorded actions")]
    Unavailable(String),
    #[error("the audit store is unhealthy; refusing unrecorded actions")]
    Unhealthy,
    #[error("the audit writer has stopped")]
    WriterStopped,
    #[error("cannot start the audit writer: {0}")]
    Spawn(std::io::Error),
    #[error("no session {0} in the audit store")]
    UnknownSession(SessionId),
    #[error("session {0} has already ended")]
    SessionEnded(SessionId),
    #[error("{0} rows are written only by begin_session / end_session")]
    ReservedKind(&'static str),
    #[error("cannot encode an audit event: {0}")]
    Encode(#[from] serde_json::Error),
}

pub use crate::clock::now_us;
