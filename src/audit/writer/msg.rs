//! The messages the store's handles send its writer.

use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::super::event::{NewSession, Stream};
use super::super::txn::QueuedOp;
use super::super::{SessionId, StoreError};

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
    pub(super) fn awaited(&self) -> bool {
        !matches!(self, Msg::Chunk { .. })
    }

    pub(super) fn data_len(&self) -> usize {
        match self {
            Msg::Chunk { parts, .. } => parts.iter().map(Bytes::len).sum(),
            _ => 0,
        }
    }
}
