//! The single writer thread.
//!
//! Invariant: one thread owns the only read-write connection. It takes a
//! message, drains what else is queued (bounded), applies the batch in one
//! transaction, commits, and only then answers each message: a reply of `Ok`
//! means the row is durable. If the transaction fails, every waiting caller
//! gets `Err`, the store is flagged unhealthy, and the batch's stream chunks
//! (already forwarded by the proxy, so they must not be lost) are kept and
//! retried first until a commit succeeds, which flags the store healthy again
//! (while unhealthy the writer probes with an empty transaction on its own).
//!
//! Adjacent chunks of the same channel and stream in a batch become one row
//! (up to [`MAX_ROW_BYTES`], spanning at most [`JOIN_WINDOW_US`]): the bytes
//! and their order are unchanged, the row carries the first chunk's time.
//! A bulk stream then costs a few rows per MiB instead of one per packet,
//! and the parts are written into the row without being joined first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::chain::{self, ChainHead};
use super::event::{NewSession, Stream};
use super::ops::{self, OpError};
use super::{SessionId, StoreError};

/// Most messages taken from the queue into one transaction.
const MAX_BATCH: usize = 512;
/// Stop draining the queue into a batch past this many stream bytes. With
/// the store's chunk budget (twice this by default) the proxy fills the next
/// batch while this one commits.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Largest stream row made by joining adjacent chunks.
const MAX_ROW_BYTES: usize = 1 << 20;
/// Chunks join a row only if they came within this long of its first chunk,
/// so a row's time stays the time of all of its bytes for replay.
const JOIN_WINDOW_US: i64 = 20_000;
/// Most chunks kept for retry after failed commits; past it the newest are
/// dropped (and logged), keeping the transcript a gap-free prefix.
const HELD_LIMIT: usize = 4 * MAX_BATCH;
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
}

impl Msg {
    fn data_len(&self) -> usize {
        match self {
            Msg::Chunk { parts, .. } => parts.iter().map(Bytes::len).sum(),
            _ => 0,
        }
    }
}

/// What one message produced, delivered after the commit.
type Outcome = Result<Option<SessionId>, StoreError>;

pub(crate) struct Writer {
    conn: Connection,
    head: ChainHead,
    healthy: Arc<AtomicBool>,
    held: VecDeque<Msg>,
}

impl Writer {
    pub(crate) fn new(conn: Connection, head: ChainHead, healthy: Arc<AtomicBool>) -> Writer {
        Writer {
            conn,
            head,
            healthy,
            held: VecDeque::new(),
        }
    }

    /// Runs until every `Store` handle is dropped and the queue is empty.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut final_retries = 0;
        loop {
            // While failing, poll instead of blocking so that held chunks are
            // retried, and an empty probe transaction finds out when the
            // store can write again, even if no caller sends anything.
            let retrying = !self.held.is_empty() || !self.healthy.load(Ordering::SeqCst);
            let mut batch: Vec<Msg> = self.held.drain(..).collect();
            let mut closed = false;
            if !retrying {
                match rx.blocking_recv() {
                    Some(msg) => batch.push(msg),
                    None => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(TryRecvError::Empty) => std::thread::sleep(RETRY_DELAY),
                    Err(TryRecvError::Disconnected) if batch.is_empty() => return,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        std::thread::sleep(RETRY_DELAY);
                    }
                }
            }
            let mut bytes: usize = batch.iter().map(Msg::data_len).sum();
            let mut taken = 1;
            while !closed && taken < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(msg) => {
                        bytes += msg.data_len();
                        taken += 1;
                        batch.push(msg);
                    }
                    Err(_) => break,
                }
            }
            self.run_batch(coalesce(batch));
            if closed && !self.held.is_empty() {
                final_retries += 1;
                if final_retries > FINAL_RETRIES {
                    tracing::error!(
                        chunks = self.held.len(),
                        "audit: store still failing at shutdown; held stream chunks are lost"
                    );
                    return;
                }
            }
        }
    }

    /// Applies and commits one batch, then answers its callers.
    fn run_batch(&mut self, batch: Vec<Msg>) {
        let start = self.head;
        match self.apply_batch(&batch) {
            Ok(outcomes) => {
                self.healthy.store(true, Ordering::SeqCst);
                for (msg, outcome) in batch.into_iter().zip(outcomes) {
                    deliver(msg, outcome);
                }
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
                let mut dropped = 0usize;
                for msg in batch {
                    match msg {
                        Msg::Chunk { .. } if self.held.len() < HELD_LIMIT => {
                            self.held.push_back(msg)
                        }
                        Msg::Chunk { .. } => dropped += 1,
                        other => deliver(other, Err(StoreError::Unavailable(cause.clone()))),
                    }
                }
                if dropped > 0 {
                    tracing::error!(dropped, "audit: retry buffer full; stream chunks lost");
                }
            }
        }
    }

    fn apply_batch(&mut self, batch: &[Msg]) -> rusqlite::Result<Vec<Outcome>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for msg in batch {
            let result = apply(&tx, &mut self.head, msg);
            outcomes.push(match result {
                Ok(id) => Ok(id),
                Err(OpError::Rejected(e)) => Err(e),
                Err(OpError::Store(e)) => return Err(e),
            });
        }
        chain::store_head(&tx, &self.head)?;
        tx.commit()?;
        Ok(outcomes)
    }
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

fn apply(tx: &Connection, head: &mut ChainHead, msg: &Msg) -> Result<Option<SessionId>, OpError> {
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
    }
}
