//! Group commit for stream chunks: a batch of nothing but a few chunks
//! waits a moment for more before it is committed.
//!
//! Why: a commit costs the same whatever it holds (a segment sync, a WAL
//! sync, a few pages), and a writer faster than the stream would otherwise
//! commit each 32 KiB chunk on its own: at 200 MB/s that made recording
//! cost half again as much CPU per GiB as at 400 MB/s. Chunks are already
//! forwarded when they are queued, so waiting costs no one latency; it
//! only widens what a crash could lose by [`LINGER`].
//!
//! Invariant: the wait ends at once when a message someone waits for
//! arrives (a write-ahead decision never lingers), when enough bytes are
//! pending, or when the queue closes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::{caller_arrived, Msg, MAX_PENDING};

/// Longest wait for more chunks.
const LINGER: Duration = Duration::from_millis(4);
/// Pending stream bytes that make a batch worth committing at once.
const ENOUGH_BYTES: usize = 1 << 20;

pub(super) struct Linger {
    /// A timer for the writer thread (which is not a runtime worker), to
    /// wait on the queue with a deadline. `None` if it could not be built:
    /// then no batch lingers.
    timer: Option<Runtime>,
}

impl Linger {
    pub(super) fn new() -> Linger {
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok();
        Linger { timer }
    }

    /// Waits (up to [`LINGER`]) for more messages while `pending` holds
    /// only chunks, fewer than [`ENOUGH_BYTES`] of them.
    pub(super) fn wait_for_more(&self, pending: &mut VecDeque<Msg>, rx: &mut mpsc::Receiver<Msg>) {
        let Some(timer) = &self.timer else {
            return;
        };
        if pending.is_empty() || pending.iter().any(Msg::awaited) {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut bytes: usize = pending.iter().map(Msg::data_len).sum();
        while bytes < ENOUGH_BYTES && pending.len() < MAX_PENDING {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            // The timeout is made inside `block_on`: a timer needs its runtime.
            let next = timer.block_on(async { tokio::time::timeout(left, rx.recv()).await });
            match next {
                Ok(Some(msg)) => {
                    let awaited = msg.awaited();
                    bytes += msg.data_len();
                    pending.push_back(msg);
                    let before = pending.len();
                    if awaited || caller_arrived(pending, rx) {
                        return;
                    }
                    bytes += pending
                        .iter()
                        .skip(before)
                        .map(Msg::data_len)
                        .sum::<usize>();
                }
                // Closed, or the deadline passed.
                Ok(None) | Err(_) => return,
            }
        }
    }
}
