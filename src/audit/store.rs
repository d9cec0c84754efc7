//! `Store`: the async handle the bastion writes through.
//!
//! Invariant: the methods that return a committed result (`begin_session`,
//! `record`, `end_session`, `flush`) resolve only after the writer thread has
//! committed their batch; `chunk` only queues, but refuses at once when the
//! store is unhealthy, and pushes back on a fast stream: the bytes of queued,
//! uncommitted chunks never exceed the chunk budget, so a stream faster than
//! the disk waits instead of growing the bastion's memory.

use crate::metrics::metrics;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::checkpoint::Checkpointer;
use super::event::{Event, NewSession, Stream};
use super::payload::Appender;
use super::txn::{Abort, Op, Txn};
use super::writer::{Msg, Reply, Writer};
use super::{chain, now_us, recover, schema, SessionId, StoreError};

/// Tuning of [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Messages the writer's queue holds before senders wait.
    pub queue_capacity: usize,
    /// How long a write waits for a lock held by another connection before
    /// the batch fails (and the store turns unhealthy).
    pub busy_timeout: Duration,
    /// Bytes of stream chunks queued and not yet committed, over all
    /// sessions, before `chunk` waits.
    pub chunk_budget: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            queue_capacity: 1024,
            busy_timeout: Duration::from_secs(2),
            chunk_budget: 8 << 20,
        }
    }
}

/// A cheap, cloneable handle to the audit store's single writer.
#[derive(Clone, Debug)]
pub struct Store {
    tx: mpsc::Sender<Msg>,
    healthy: Arc<AtomicBool>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    path: Arc<PathBuf>,
}

impl Store {
    /// Opens (or creates) the store at `path` with default options.
    /// Blocking: call it before serving or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the store: migrates the schema, ends sessions a
    /// crash left open (reason `interrupted`), and starts the writer thread.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = schema::open_writer(&path, options.busy_timeout)?;
        let payload = Appender::open(&path, &conn, options.busy_timeout)?;
        let mut head = chain::load_head(&conn)?;
        recover::close_interrupted(&mut conn, &mut head)?;
        let healthy = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let checkpointer = Checkpointer::start(&path)?;
        let writer = Writer::new(conn, head, payload, Arc::clone(&healthy), checkpointer);
        std::thread::Builder::new()
            .name("portcullis-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(StoreError::Spawn)?;
        let most = Semaphore::MAX_PERMITS.min(u32::MAX as usize);
        let budget_bytes = options.chunk_budget.clamp(1, most);
        Ok(Store {
            tx,
            healthy,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            path: Arc::new(path),
        })
    }

    /// The database file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False after a failed commit, until a later commit succeeds, or once
    /// the writer has stopped. Callers refuse new actions while false.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst) && !self.tx.is_closed()
    }

    /// Records the start of a session; committed when it returns.
    pub async fn begin_session(&self, session: NewSession) -> Result<SessionId, StoreError> {
        let at_us = now_us();
        let (_, detail) = Event::SessionStart(session.clone()).encode()?;
        self.call(|reply| Msg::Begin {
            at_us,
            session,
            detail,
            reply,
        })
        .await
    }

    /// Records an event; committed when it returns (write-ahead: forward the
    /// action only after `Ok`). `session.start` / `session.end` are refused:
    /// use [`Store::begin_session`] / [`Store::end_session`].
    pub async fn record(
        &self,
        session: Option<SessionId>,
        channel: Option<u32>,
        event: Event,
    ) -> Result<(), StoreError> {
        if matches!(event, Event::SessionStart(_) | Event::SessionEnd { .. }) {
            return Err(StoreError::ReservedKind(event.kind()));
        }
        let at_us = now_us();
        let (kind, detail) = event.encode()?;
        self.call(|reply| Msg::Record {
            at_us,
            session,
            channel,
            kind,
            detail,
            reply,
        })
        .await
    }

    /// Queues stream bytes, timestamped now, without waiting for the commit.
    /// Waits only while the chunk budget or the queue is full; fails at once
    /// if unhealthy.
    pub async fn chunk(
        &self,
        session: SessionId,
        channel: u32,
        stream: Stream,
        data: Bytes,
    ) -> Result<(), StoreError> {
        if !self.healthy.load(Ordering::SeqCst) {
            return Err(StoreError::Unhealthy);
        }
        // A chunk larger than the whole budget takes all of it.
        let share = u32::try_from(data.len().min(self.budget_bytes)).unwrap_or(u32::MAX);
        let budget = Arc::clone(&self.budget)
            .acquire_many_owned(share)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        let at_us = now_us();
        self.tx
            .send(Msg::Chunk {
                at_us,
                session,
                channel,
                stream,
                parts: vec![data],
                budget,
            })
            .await
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Records the end of a session; committed when it returns.
    pub async fn end_session(&self, session: SessionId, reason: String) -> Result<(), StoreError> {
        let at_us = now_us();
        self.call(|reply| Msg::End {
            at_us,
            session,
            reason,
            reply,
        })
        .await
    }

    /// Runs `op` in the writer's next transaction (under a savepoint of its
    /// own) and resolves with its result once that transaction committed.
    /// An op that refuses leaves nothing written; one whose batch fails
    /// resolves with [`Abort::Failed`].
    pub async fn transact<R, E, F>(&self, op: F) -> Result<R, Abort<E>>
    where
        F: FnOnce(&mut Txn<'_>) -> Result<R, Abort<E>> + Send + 'static,
        R: Send + 'static,
        E: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Box::new(Op {
            f: Some(op),
            result: None,
            reply,
        });
        self.tx
            .send(Msg::Transact {
                at_us: now_us(),
                op,
            })
            .await
            .map_err(|_| Abort::Failed(StoreError::WriterStopped))?;
        answer
            .await
            .map_err(|_| Abort::Failed(StoreError::WriterStopped))?
    }

    /// Resolves once everything queued before it is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|reply| Msg::Flush { reply }).await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Msg) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let queued = std::time::Instant::now();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        let answered = answer.await.map_err(|_| StoreError::WriterStopped)?;
        metrics()
            .commit_seconds
            .observe(queued.elapsed().as_secs_f64());
        answered
    }

    /// Messages waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }
}
