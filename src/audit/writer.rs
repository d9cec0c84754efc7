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
//! channels. Such a message is committed in a batch of its own ahead of them
//! unless a chunk queued before it belongs to its channel (or, for a
//! session-wide message, to its session; or its session's end is queued
//! before it): within a channel, and within a session for session-wide rows,
//! rows keep the order they were sent in. Across channels, rows are in commit
//! order; each row's time is when it was sent.
//!
//! Adjacent chunks of the same channel and stream in a batch become one row
//! (up to [`MAX_ROW_BYTES`], spanning at most [`JOIN_WINDOW_US`]): the bytes
//! and their order are unchanged, the row carries the first chunk's time.
//! A bulk stream then costs a few rows per MiB instead of one per packet,
//! and the parts are written into the row without being joined first.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::chain::{self, ChainHead};
use super::checkpoint::Checkpointer;
use super::event::{NewSession, Stream};
use super::ops::{self, OpError};
use super::txn::{self, QueuedOp};
use super::{SessionId, StoreError};

/// Most messages in one transaction.
const MAX_BATCH: usize = 512;
/// Most stream bytes in one transaction. It bounds how long a decision
/// waits for the batch being written when it arrives (about 2 ms at the
/// writer's bulk speed); larger batches save little (a commit rewrites a
/// few pages of index and head).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Largest stream row made by joining adjacent chunks.
const MAX_ROW_BYTES: usize = 256 << 10;
/// Chunks join a row only if they came within this long of its first chunk,
/// so a row's time stays the time of all of its bytes for replay.
const JOIN_WINDOW_US: i64 = 20_000;
/// Most messages taken from the queue ahead of the batch being written.
const MAX_PENDING: usize = 8 * MAX_BATCH;
/// Pause between retries while the store is failing and nothing new comes.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// Retries of held chunks after the last `Store` handle is gone.
const FINAL_RETRIES: u32 = 5;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request to the writer.
pub(crate) enum Msg {
    Begin {
        at_us: i64,
        session: NewSession,
        detail: String,
        reply: Reply<SessionId>,
    },
    Record {
        at_us: i64,
        session: Option<SessionId>,
        channel: Option<u32>,
        kind: &'static str,
        detail: String,
        reply: Reply<()>,
    },
    Chunk {
        at_us: i64,
        session: SessionId,
        channel: u32,
        stream: Stream,
        /// The bytes, in order: one part as queued, several once joined.
        parts: Vec<Bytes>,
        /// The chunk's share of the store's budget of queued stream bytes,
        /// given back when the message is dropped (committed or refused).
        budget: OwnedSemaphorePermit,
    },
    End {
        at_us: i64,
        session: SessionId,
        reason: String,
        reply: Reply<()>,
    },
    Flush {
        reply: Reply<()>,
    },
    /// An operation of several writes (see txn.rs), run under a savepoint.
    Transact {
        at_us: i64,
        op: Box<dyn QueuedOp>,
    },
}

impl Msg {
    /// Whether a caller waits for this message's commit (chunks only queue).
    fn awaited(&self) -> bool {
        !matches!(self, Msg::Chunk { .. })
    }

    fn data_len(&self) -> usize {
        match self {
            Msg::Chunk { parts, .. } => parts.iter().map(Bytes::len).sum(),
            _ => 0,
        }
    }
}

/// What the chunks and session ends queued so far hold back: a later
/// message of one of these channels or sessions must not pass them.
#[derive(Default)]
struct QueuedAhead {
    channels: HashSet<(SessionId, u32)>,
    sessions: HashSet<SessionId>,
    ended: HashSet<SessionId>,
}

impl QueuedAhead {
    /// Notes `msg`, queued before everything looked at later.
    fn note(&mut self, msg: &Msg) {
        match msg {
            Msg::Chunk {
                session, channel, ..
            } => {
                self.channels.insert((*session, *channel));
                self.sessions.insert(*session);
            }
            Msg::End { session, .. } => {
                self.ended.insert(*session);
            }
            _ => {}
        }
    }

    /// Whether `msg` (someone waits for its commit) may be committed before
    /// everything noted so far.
    fn lets_pass(&self, msg: &Msg) -> bool {
        match msg {
            // Session starts and multi-write operations belong to no
            // queued stream: they never wait behind one.
            Msg::Begin { .. } | Msg::Transact { .. } => true,
            Msg::Record { session: None, .. } => true,
            Msg::Record {
                session: Some(s),
                channel: Some(c),
                ..
            } => !self.channels.contains(&(*s, *c)) && !self.ended.contains(s),
            Msg::Record {
                session: Some(s),
                channel: None,
                ..
            }
            | Msg::End { session: s, .. } => !self.sessions.contains(s) && !self.ended.contains(s),
            // A flush is a barrier; chunks never wait for anyone.
            Msg::Flush { .. } | Msg::Chunk { .. } => false,
        }
    }
}

/// The next batch from `pending`, and whether it is one of passers: with
/// `replies_first`, the waiting messages that may pass the chunks queued
/// before them (see the module doc), if any, alone; otherwise the oldest
/// messages, up to [`MAX_BATCH`] and [`MAX_BATCH_BYTES`]. The writer
/// alternates (never two batches of passers in a row), so that callers
/// arriving without pause cannot starve a stream: it moves at least every
/// other batch, and a caller still waits for at most one row of it.
pub(super) fn take_batch(pending: &mut VecDeque<Msg>, replies_first: bool) -> (Vec<Msg>, bool) {
    let mut ahead = QueuedAhead::default();
    let mut passing = Vec::new();
    let mut index = 0;
    while replies_first && index < pending.len() && passing.len() < MAX_BATCH {
        let msg = &pending[index];
        if matches!(msg, Msg::Flush { .. }) {
            break;
        }
        if ahead.lets_pass(msg) {
            if let Some(msg) = pending.remove(index) {
                passing.push(msg);
            }
            continue;
        }
        ahead.note(msg);
        index += 1;
    }
    if !passing.is_empty() {
        return (passing, true);
    }
    let mut batch = Vec::new();
    let mut bytes = 0;
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        match pending.pop_front() {
            Some(msg) => {
                bytes += msg.data_len();
                batch.push(msg);
            }
            None => break,
        }
    }
    (batch, false)
}

/// What one message produced, delivered after the commit.
type Outcome = Result<Option<SessionId>, StoreError>;

pub(crate) struct Writer {
    conn: Connection,
    head: ChainHead,
    healthy: Arc<AtomicBool>,
    /// Taken from the queue, not yet committed, in queue order (chunks of a
    /// failed batch back in front).
    pending: VecDeque<Msg>,
    /// The last batch was one of passers: the next takes the oldest.
    passed_last: bool,
    checkpointer: Checkpointer,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        head: ChainHead,
        healthy: Arc<AtomicBool>,
        checkpointer: Checkpointer,
    ) -> Writer {
        Writer {
            conn,
            head,
            healthy,
            pending: VecDeque::new(),
            passed_last: false,
            checkpointer,
        }
    }

    /// Runs until every `Store` handle is dropped and the queue is empty.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
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
                let bytes: usize = batch.iter().map(Msg::data_len).sum();
                self.healthy.store(true, Ordering::SeqCst);
                for (msg, outcome) in batch.into_iter().zip(outcomes) {
                    deliver(msg, outcome);
                }
                let waiting = self.pending.iter().any(Msg::awaited);
                self.checkpointer.committed(&self.conn, bytes, waiting);
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
    /// in `pending`: `waiting`, or just arrived), the rows applied so far
    /// are committed and the rest of the batch is put back first in line,
    /// so that the caller waits for one row, not for a whole batch. Returns
    /// the outcomes of the applied prefix.
    fn apply_batch(
        &mut self,
        batch: &mut Vec<Msg>,
        rx: &mut mpsc::Receiver<Msg>,
        waiting: bool,
    ) -> rusqlite::Result<Vec<Outcome>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process (an operator's CLI) may have appended since.
        chain::refresh_head(&tx, &mut self.head)?;
        let total = batch.len();
        let mut outcomes = Vec::with_capacity(total);
        for msg in batch.iter_mut() {
            let result = apply(&tx, &mut self.head, msg);
            outcomes.push(match result {
                Ok(id) => Ok(id),
                Err(OpError::Rejected(e)) => Err(e),
                Err(OpError::Store(e)) => return Err(e),
            });
            let more = outcomes.len() < total;
            if more
                && matches!(msg, Msg::Chunk { .. })
                && (caller_arrived(&mut self.pending, rx) || waiting)
            {
                break;
            }
        }
        chain::store_head(&tx, &self.head)?;
        tx.commit()?;
        for msg in batch.drain(outcomes.len()..).rev() {
            self.pending.push_front(msg);
        }
        Ok(outcomes)
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

/// Joins runs of adjacent chunks of one channel and stream into single
/// messages (see the module doc); every other message keeps its place.
fn coalesce(batch: Vec<Msg>) -> Vec<Msg> {
    let mut out = Vec::with_capacity(batch.len());
    let mut run: Option<Run> = None;
    for msg in batch {
        match msg {
            Msg::Chunk {
                at_us,
                session,
                channel,
                stream,
                parts,
                budget,
            } => {
                let len = parts.iter().map(Bytes::len).sum();
                match &mut run {
                    Some(r) if r.admits(at_us, session, channel, stream, len) => {
                        r.push(parts, len, budget)
                    }
                    _ => {
                        let next = Run {
                            at_us,
                            session,
                            channel,
                            stream,
                            bytes: len,
                            parts,
                            budget,
                        };
                        if let Some(done) = run.replace(next) {
                            out.push(done.finish());
                        }
                    }
                }
            }
            other => {
                if let Some(done) = run.take() {
                    out.push(done.finish());
                }
                out.push(other);
            }
        }
    }
    if let Some(done) = run {
        out.push(done.finish());
    }
    out
}

/// Adjacent chunks of one channel and stream, becoming one row.
struct Run {
    at_us: i64,
    session: SessionId,
    channel: u32,
    stream: Stream,
    bytes: usize,
    parts: Vec<Bytes>,
    budget: OwnedSemaphorePermit,
}

impl Run {
    fn admits(
        &self,
        at_us: i64,
        session: SessionId,
        channel: u32,
        stream: Stream,
        len: usize,
    ) -> bool {
        (self.session, self.channel, self.stream) == (session, channel, stream)
            && self.bytes + len <= MAX_ROW_BYTES
            && at_us - self.at_us <= JOIN_WINDOW_US
    }

    fn push(&mut self, parts: Vec<Bytes>, len: usize, budget: OwnedSemaphorePermit) {
        self.bytes += len;
        self.parts.extend(parts);
        self.budget.merge(budget);
    }

    fn finish(self) -> Msg {
        Msg::Chunk {
            at_us: self.at_us,
            session: self.session,
            channel: self.channel,
            stream: self.stream,
            parts: self.parts,
            budget: self.budget,
        }
    }
}

fn apply(
    tx: &Connection,
    head: &mut ChainHead,
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
            ops::chunk(
                tx,
                head,
                *at_us,
                *session,
                *channel,
                stream.as_str(),
                &parts,
            )
            .map(|()| None)
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
