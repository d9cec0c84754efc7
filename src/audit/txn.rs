//! Operations that change several things at once: the grants tables and
//! the chain together (a single-use claim and the session it opens, a grant
//! and its `grant.issued` event, a revocation and its event).
//!
//! Invariant: an operation runs inside one transaction (the server's writer
//! batch, under a savepoint of its own, or the CLI's [`DirectWriter`]), so
//! its rows commit together or not at all, and its result reaches the
//! caller only after the commit. An operation that refuses
//! ([`Abort::Refused`]) leaves nothing behind. Every transaction extends
//! the chain from the head it reads under SQLite's write lock, so the
//! server and an operator's CLI can both append to one chain.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::chain::{self, ChainHead};
use super::event::{Event, NewSession};
use super::ops::{self, OpError};
use super::{now_us, schema, SessionId, StoreError};

/// The writes an operation may make.
pub struct Txn<'a> {
    conn: &'a Connection,
    head: &'a mut ChainHead,
    at_us: i64,
}

/// Why an operation wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum Abort<E> {
    /// The operation said no (its own reason); nothing was written.
    #[error(transparent)]
    Refused(E),
    /// The store failed, or was asked for something invalid.
    #[error(transparent)]
    Failed(StoreError),
}

impl<E> From<StoreError> for Abort<E> {
    fn from(e: StoreError) -> Self {
        Abort::Failed(e)
    }
}

impl<E> From<rusqlite::Error> for Abort<E> {
    fn from(e: rusqlite::Error) -> Self {
        Abort::Failed(StoreError::Sqlite(e))
    }
}

impl<'a> Txn<'a> {
    pub(crate) fn new(conn: &'a Connection, head: &'a mut ChainHead, at_us: i64) -> Txn<'a> {
        Txn { conn, head, at_us }
    }

    /// The connection, for the operation's own tables.
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// The operation's time (unix micros): every row it writes carries it.
    pub fn at_us(&self) -> i64 {
        self.at_us
    }

    /// Appends a chained event.
    pub fn record(
        &mut self,
        session: Option<SessionId>,
        channel: Option<u32>,
        event: &Event,
    ) -> Result<(), StoreError> {
        if matches!(event, Event::SessionStart(_) | Event::SessionEnd { .. }) {
            return Err(StoreError::ReservedKind(event.kind()));
        }
        let (kind, detail) = event.encode()?;
        ops::record(
            self.conn, self.head, self.at_us, session, channel, kind, &detail,
        )
        .map_err(op_error)
    }

    /// Inserts a session and its chained `session.start`.
    pub fn begin_session(&mut self, session: &NewSession) -> Result<SessionId, StoreError> {
        let (_, detail) = Event::SessionStart(session.clone()).encode()?;
        ops::begin(self.conn, self.head, self.at_us, session, &detail).map_err(op_error)
    }
}

fn op_error(e: OpError) -> StoreError {
    match e {
        OpError::Rejected(e) => e,
        OpError::Store(e) => StoreError::Sqlite(e),
        OpError::Payload(e) => StoreError::Unavailable(e),
    }
}

/// An operation queued for the writer thread, type-erased: it runs inside
/// the batch's transaction and answers its caller after the commit.
pub(crate) trait QueuedOp: Send {
    /// Runs the operation; `Ok(false)` when it refused (the writer rolls
    /// its savepoint back), `Err` when the store failed (the batch fails).
    fn run(&mut self, txn: &mut Txn<'_>) -> Result<bool, rusqlite::Error>;
    /// Answers the caller: `Ok` once the batch committed.
    fn deliver(self: Box<Self>, committed: Result<(), StoreError>);
}

pub(crate) struct Op<F, R, E> {
    pub(crate) f: Option<F>,
    pub(crate) result: Option<Result<R, Abort<E>>>,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<R, Abort<E>>>,
}

impl<F, R, E> QueuedOp for Op<F, R, E>
where
    F: FnOnce(&mut Txn<'_>) -> Result<R, Abort<E>> + Send,
    R: Send,
    E: Send,
{
    fn run(&mut self, txn: &mut Txn<'_>) -> Result<bool, rusqlite::Error> {
        let Some(f) = self.f.take() else {
            return Ok(false);
        };
        match f(txn) {
            Ok(value) => {
                self.result = Some(Ok(value));
                Ok(true)
            }
            Err(Abort::Failed(StoreError::Sqlite(e))) => Err(e),
            Err(other) => {
                self.result = Some(Err(other));
                Ok(false)
            }
        }
    }

    fn deliver(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(e), _) => Err(Abort::Failed(e)),
            (Ok(()), None) => Err(Abort::Failed(StoreError::WriterStopped)),
        };
        let _ = self.reply.send(answer);
    }
}

/// Runs `op` under a savepoint of the open transaction `conn`: kept when it
/// succeeds, rolled back (with the chain head) when it refuses.
pub(crate) fn run_queued(
    conn: &Connection,
    head: &mut ChainHead,
    at_us: i64,
    op: &mut dyn QueuedOp,
) -> Result<(), rusqlite::Error> {
    conn.execute_batch("SAVEPOINT portcullis_op")?;
    let before = *head;
    let kept = op.run(&mut Txn::new(conn, head, at_us))?;
    if !kept {
        *head = before;
        conn.execute_batch("ROLLBACK TO portcullis_op")?;
    }
    conn.execute_batch("RELEASE portcullis_op")
}

/// The write path of a process that is not the server (the operator's
/// CLI): one transaction per operation, on its own connection, serialized
/// with the server's writer by SQLite's write lock. It never recovers
/// interrupted sessions: that is the server's start, not an operator's.
pub struct DirectWriter {
    conn: Connection,
}

impl DirectWriter {
    /// Opens (creating and migrating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<DirectWriter, StoreError> {
        Ok(DirectWriter {
            conn: schema::open_writer(path, Duration::from_secs(5))?,
        })
    }

    /// Runs `op` in one transaction and commits what it wrote.
    pub fn transact<R, E>(
        &mut self,
        op: impl FnOnce(&mut Txn<'_>) -> Result<R, Abort<E>>,
    ) -> Result<R, Abort<E>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut head = chain::load_head(&tx)?;
        let value = op(&mut Txn::new(&tx, &mut head, now_us()))?;
        chain::store_head(&tx, &head)?;
        tx.commit()?;
        Ok(value)
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}
