//! The single writer thread.
//!
//! Invariant: one thread owns the only read-write connection. It takes what
//! is queued, applies a batch in one transaction, commits, and only then
//! answers each message: a reply of `Ok` means the row is durable. If the
//! transaction fails, every waiting caller gets `Err`, the store is flagged
//! unhealthy, and the batch's stream chunks (already forwarded by the proxy,
//! so they must not be lost) are put back first in line and retried until a
//! commit succeeds, which flags the store healthy again (while unhealthy the
//! writer probes with an empty transaction on its own).
//!
//! Replies first: a caller waiting on a commit (a write-ahead decision) is
//! not kept behind megabytes of stream chunks queued earlier by other
//! channels. Such a message is committed ahead of them (in a batch of its
//! own, or right after the row being written when it arrives) unless a
//! chunk queued before it belongs to its channel (or, for a session-wide
//! message, to its session; or its session's end is queued before it):
//! within a channel, and within a session for session-wide rows, rows keep
//! the order they were sent in. Across channels, rows are in commit order;
//! each row's time is when it was sent.
//!
//! Adjacent chunks of the same channel and stream in a batch become one row
//! (up to [`MAX_ROW_BYTES`], spanning at most [`JOIN_WINDOW_US`]): the bytes
//! and their order are unchanged, the row carries the first chunk's time.
//! A bulk stream then costs a few rows per MiB instead of one per packet,
//! and the parts are written into the row without being joined first.

mod coalesce;
mod linger;
mod msg;
mod order;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use super::chain::{self, ChainHead};
use super::checkpoint::Checkpointer;
use super::ops::{self, OpError};
use super::payload::Appender;
use super::txn;
use super::{SessionId, StoreError};
use crate::metrics::{metrics, KindLabel};

use coalesce::coalesce;
use linger::Linger;
pub(crate) use msg::{Msg, Reply};
pub(crate) use order::{take_batch, take_passers};

/// Most messages in one transaction.
const MAX_BATCH: usize = 512;
/// Most stream bytes in one transaction. It bounds how long a decision
/// waits for the batch being written when it arrives (about 2 ms at the
/// writer's bulk speed); larger batches save little (a commit rewrites a
/// few pages of index and head).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Most messages taken from the queue ahead of the batch being written.
const MAX_PENDING: usize = 8 * MAX_BATCH;
/// Pause between retries while the store is failing and nothing new comes.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// Retries of held chunks after the last `Store` handle is gone.
const FINAL_RETRIES: u32 = 5;

/// What one message produced, delivered after the commit.
type Outcome = Result<Option<SessionId>, StoreError>;

pub(crate) struct Writer {
    conn: Connection,
    head: ChainHead,
    /// Where stream rows' bytes go, written once (payload.rs).
    payload: Appender,
    healthy: Arc<AtomicBool>,
    /// Taken from the queue, not yet committed, in queue order (chunks of a
    /// failed batch back in front).
    pending: VecDeque<Msg>,
    /// The last batch was one of passers: the next takes the oldest.
    passed_last: bool,
    /// The chain's last row before the batch being written (for the metrics).
    batch_after: i64,
    checkpointer: Checkpointer,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        head: ChainHead,
        payload: Appender,
        healthy: Arc<AtomicBool>,
        checkpointer: Checkpointer,
    ) -> Writer {
        Writer {
            conn,
            head,
            payload,
            healthy,
            pending: VecDeque::new(),
            passed_last: false,
            batch_after: head.seq,
            checkpointer,
        }
    }

    /// Runs until every `Store` handle is dropped and the queue is empty.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // Made here, on the writer's own thread, which is not a runtime's.
        let linger = Linger::new();
        let mut final_retries = 0;
        let mut closed = false;
        loop {
            let healthy = self.healthy.load(Ordering::SeqCst);
            if healthy && self.pending.is_empty() {
                match rx.blocking_recv() {
                    Some(msg) => self.pending.push_back(msg),
                    None => return,
                }
            } else if !healthy {
                // While failing, poll instead of blocking so that held chunks
                // are retried, and an empty probe transaction finds out when
                // the store can write again, even if no caller sends anything.
                match rx.try_recv() {
                    Ok(msg) => self.pending.push_back(msg),
                    Err(TryRecvError::Empty) => std::thread::sleep(RETRY_DELAY),
                    Err(TryRecvError::Disconnected) if self.pending.is_empty() => return,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        std::thread::sleep(RETRY_DELAY);
                    }
                }
            }
            // Everything queued now, so that a waiting caller can pass the
            // chunks ahead of it; bounded, the queue's own bound holds the
            // rest (empty chunks take no share of the byte budget).
            caller_arrived(&mut self.pending, &mut rx);
            if healthy {
                linger.wait_for_more(&mut self.pending, &mut rx);
            }
            let (batch, passed) = take_batch(&mut self.pending, !self.passed_last);
            self.passed_last = passed;
            // A caller left waiting by this batch of the oldest is served
            // after its first row, like one arriving while it is written.
            let waiting = self.pending.iter().any(Msg::awaited);
            self.run_batch(coalesce(batch), &mut rx, waiting);
            if closed && !self.pending.is_empty() {
                final_retries += 1;
                if final_retries > FINAL_RETRIES {
                    tracing::error!(
                        messages = self.pending.len(),
                        "audit: store still failing at shutdown; held stream chunks are lost"
                    );
                    return;
                }
            }
        }
    }

    /// Applies and commits one batch, then answers its callers.
    fn run_batch(&mut self, mut batch: Vec<Msg>, rx: &mut mpsc::Receiver<Msg>, waiting: bool) {
        let start = self.head;
        match self.apply_batch(&mut batch, rx, waiting) {
            Ok(outcomes) => {
                let rows = outcomes.len();
                self.healthy.store(true, Ordering::SeqCst);
                let bytes: usize = batch.iter().map(Msg::data_len).sum();
                metrics().recorded_bytes.inc_by(bytes as u64);
                count_committed(&self.conn, self.batch_after, self.head.seq);
                for (msg, outcome) in batch.into_iter().zip(outcomes) {
                    deliver(msg, outcome);
                }
                let waiting = self.pending.iter().any(Msg::awaited);
                self.checkpointer.committed(&self.conn, rows, waiting);
            }
            Err(e) => {
                self.head = start;
                if !self.conn.is_autocommit() {
                    // The implicit rollback failed; don't stay inside the
                    // dead transaction, or no later batch could begin.
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.healthy.store(false, Ordering::SeqCst);
                let cause = e.to_string();
                tracing::error!(error = %cause, "audit: commit failed; store is unhealthy");
                // The chunks go back first in line, in order; while the store
                // is unhealthy `Store::chunk` refuses new ones, so what waits
                // here stays bounded by the byte budget they hold.
                let mut held = Vec::new();
                for msg in batch {
                    match msg {
                        Msg::Chunk { .. } => held.push(msg),
                        other => deliver(other, Err(StoreError::Unavailable(cause.clone()))),
                    }
                }
                for msg in held.into_iter().rev() {
                    self.pending.push_front(msg);
                }
            }
        }
    }

    /// Applies `batch` in one transaction and commits it. Between stream
    /// rows it looks at the queue: when a caller waits on a commit (already
    /// in `pending`: `waiting`, or just arrived), the rest of the batch is
    /// put back first in line and the callers that may pass it (order.rs)
    /// join this transaction, so that a caller waits for one row and one
    /// commit, not for a whole batch and then a commit of its own. Returns
    /// the outcomes of what was applied, which is then what `batch` holds.
    fn apply_batch(
        &mut self,
        batch: &mut Vec<Msg>,
        rx: &mut mpsc::Receiver<Msg>,
        waiting: bool,
    ) -> Result<Vec<Outcome>, BatchFailure> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process (an operator's CLI) may have appended since.
        chain::refresh_head(&tx, &mut self.head)?;
        self.batch_after = self.head.seq;
        let total = batch.len();
        let mut outcomes = Vec::with_capacity(total);
        let mut cut = false;
        for msg in batch.iter_mut() {
            outcomes.push(apply_one(&tx, &mut self.head, &mut self.payload, msg)?);
            let more = outcomes.len() < total;
            if more
                && matches!(msg, Msg::Chunk { .. })
                && (caller_arrived(&mut self.pending, rx) || waiting)
            {
                cut = true;
                break;
            }
        }
        if cut {
            for msg in batch.drain(outcomes.len()..).rev() {
                self.pending.push_front(msg);
            }
            let passers = take_passers(&mut self.pending);
            if !passers.is_empty() {
                // The stream moved in this batch: the next takes the oldest.
                self.passed_last = true;
            }
            for mut msg in passers {
                let outcome = apply_one(&tx, &mut self.head, &mut self.payload, &mut msg);
                // Held by `batch` before `?`, so a failure answers it.
                batch.push(msg);
                outcomes.push(outcome?);
            }
        }
        chain::store_head(&tx, &self.head)?;
        // The rows' bytes are on disk before the commit that names them.
        self.payload
            .sync()
            .map_err(|e| BatchFailure::Payload(e.to_string()))?;
        tx.commit()?;
        Ok(outcomes)
    }
}

/// Applies one message; `Err` only when the transaction must be abandoned.
fn apply_one(
    tx: &Connection,
    head: &mut ChainHead,
    payload: &mut Appender,
    msg: &mut Msg,
) -> Result<Outcome, BatchFailure> {
    match apply(tx, head, payload, msg) {
        Ok(id) => Ok(Ok(id)),
        Err(OpError::Rejected(e)) => Ok(Err(e)),
        Err(OpError::Store(e)) => Err(BatchFailure::Sqlite(e)),
        Err(OpError::Payload(e)) => Err(BatchFailure::Payload(e)),
    }
}

/// Counts the events this batch committed (rows after `after` up to
/// `last`), by kind, for the metrics; stream rows are counted as bytes.
fn count_committed(conn: &Connection, after: i64, last: i64) {
    if last <= after {
        return;
    }
    let counted = conn
        .prepare_cached(
            "SELECT kind, COUNT(*) FROM events WHERE seq > ?1 AND seq <= ?2 AND kind <> 'data'
             GROUP BY kind",
        )
        .and_then(|mut stmt| {
            let rows = stmt.query_map([after, last], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        });
    // Metrics are best effort: a failed count leaves them behind, not the store.
    for (kind, n) in counted.unwrap_or_default() {
        let label = KindLabel { kind };
        metrics()
            .events
            .get_or_create(&label)
            .inc_by(n.max(0) as u64);
    }
}

/// Moves what is queued into `pending`; true if that brought a message
/// someone waits for.
fn caller_arrived(pending: &mut VecDeque<Msg>, rx: &mut mpsc::Receiver<Msg>) -> bool {
    let mut arrived = false;
    while pending.len() < MAX_PENDING {
        match rx.try_recv() {
            Ok(msg) => {
                arrived |= msg.awaited();
                pending.push_back(msg);
            }
            Err(_) => break,
        }
    }
    arrived
}

/// Why a batch was not committed: the store failed (nothing of the batch
/// is on record).
enum BatchFailure {
    Sqlite(rusqlite::Error),
    Payload(String),
}

impl From<rusqlite::Error> for BatchFailure {
    fn from(e: rusqlite::Error) -> Self {
        BatchFailure::Sqlite(e)
    }
}

impl std::fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchFailure::Sqlite(e) => e.fmt(f),
            BatchFailure::Payload(e) => f.write_str(e),
        }
    }
}

fn apply(
    tx: &Connection,
    head: &mut ChainHead,
    payload: &mut Appender,
    msg: &mut Msg,
) -> Result<Option<SessionId>, OpError> {
    match msg {
        Msg::Begin {
            at_us,
            session,
            detail,
            ..
        } => ops::begin(tx, head, *at_us, session, detail).map(Some),
        Msg::Record {
            at_us,
            session,
            channel,
            kind,
            detail,
            ..
        } => ops::record(tx, head, *at_us, *session, *channel, kind, detail).map(|()| None),
        Msg::Chunk {
            at_us,
            session,
            channel,
            stream,
            parts,
            ..
        } => {
            let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
            let row = (*session, *channel, stream.as_str());
            ops::chunk(tx, head, *at_us, row, &parts, payload).map(|()| None)
        }
        Msg::End {
            at_us,
            session,
            reason,
            ..
        } => ops::end(tx, head, *at_us, *session, reason).map(|()| None),
        Msg::Flush { .. } => Ok(None),
        Msg::Transact { at_us, op } => txn::run_queued(tx, head, *at_us, op.as_mut())
            .map(|()| None)
            .map_err(OpError::Store),
    }
}

/// Answers a caller; one that stopped waiting is not an error.
fn deliver(msg: Msg, outcome: Outcome) {
    match msg {
        Msg::Begin { reply, .. } => {
            let answer = outcome.and_then(|id| id.ok_or(StoreError::WriterStopped));
            let _ = reply.send(answer);
        }
        Msg::Record { reply, .. } | Msg::End { reply, .. } | Msg::Flush { reply } => {
            let _ = reply.send(outcome.map(|_| ()));
        }
        Msg::Chunk {
            session, channel, ..
        } => {
            if let Err(e) = outcome {
                tracing::warn!(session = session.0, channel, error = %e, "audit: stream chunk refused");
            }
        }
        Msg::Transact { op, .. } => op.deliver(outcome.map(|_| ())),
    }
}
