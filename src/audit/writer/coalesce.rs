//! Joining adjacent chunks of one channel and stream into one row.

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::super::event::Stream;
use super::super::SessionId;
use super::Msg;

/// Largest stream row made by joining adjacent chunks.
const MAX_ROW_BYTES: usize = 256 << 10;
/// Chunks join a row only if they came within this long of its first chunk,
/// so a row's time stays the time of all of its bytes for replay.
const JOIN_WINDOW_US: i64 = 20_000;

/// Joins runs of adjacent chunks of one channel and stream into single
/// messages (see the module doc); every other message keeps its place.
pub(super) fn coalesce(batch: Vec<Msg>) -> Vec<Msg> {
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
