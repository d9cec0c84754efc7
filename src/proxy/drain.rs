//! Draining a russh channel into a bounded per-channel buffer.
//!
//! russh has no per-channel application flow control: the session loop
//! sends window adjusts as it *receives* data, then pushes each message into
//! the channel's queue (100 messages) and waits there when it is full, and
//! while it waits no channel of that connection moves. So a channel whose
//! consumer is slow (a forward destination that does not read) would stall
//! every other channel of the connection.
//!
//! Invariant: a [`Drained`] channel is read by its own task at once, into a
//! buffer of at most [`CHANNEL_BUFFER`] bytes of data (plus the message the
//! consumer holds). Only when that buffer is full does the task stop
//! reading, and only then does backpressure reach the connection: a slow
//! consumer costs at most this much memory before it slows its neighbours.

use std::sync::Arc;

use russh::{ChannelMsg, ChannelReadHalf};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Bytes one channel direction may buffer before backpressure reaches its
/// connection. Larger than the window (2 MiB) so a whole window in flight
/// fits, small enough that a thousand stalled forwards fit in memory.
pub const CHANNEL_BUFFER: usize = 4 << 20;

/// One buffered message, holding its share of the byte budget until the
/// consumer takes it.
struct Buffered {
    msg: ChannelMsg,
    _budget: OwnedSemaphorePermit,
}

/// The consumer's end of a drained channel.
pub struct Drained {
    rx: mpsc::UnboundedReceiver<Buffered>,
    task: JoinHandle<()>,
}

impl Drained {
    /// Starts draining `reader` with a budget of `capacity` bytes.
    pub fn start(mut reader: ChannelReadHalf, capacity: usize) -> Drained {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let budget = Arc::new(Semaphore::new(capacity));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(msg) = reader.wait().await {
                let cost = match &msg {
                    ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => data.len(),
                    _ => 0,
                };
                // Every message costs at least one permit, so the count of
                // queued messages is bounded too; one larger than the whole
                // budget waits for an empty buffer instead of for ever.
                let cost = u32::try_from(cost.clamp(1, capacity)).unwrap_or(u32::MAX);
                let Ok(permit) = budget.clone().acquire_many_owned(cost).await else {
                    return;
                };
                let last = matches!(msg, ChannelMsg::Close);
                if tx
                    .send(Buffered {
                        msg,
                        _budget: permit,
                    })
                    .is_err()
                    || last
                {
                    return;
                }
            }
        });
        Drained { rx, task }
    }

    /// The next message in order; `None` once the channel is gone.
    pub async fn next(&mut self) -> Option<ChannelMsg> {
        self.rx.recv().await.map(|buffered| buffered.msg)
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        // Dropping the read half makes russh discard further messages for
        // this channel instead of waiting on a queue nobody reads.
        self.task.abort();
    }
}
