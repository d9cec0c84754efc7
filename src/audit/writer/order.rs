//! Which messages the next batch takes: replies first (see the module doc
//! of the writer), within the order each channel and session keeps.

use std::collections::{HashSet, VecDeque};

use super::super::SessionId;
use super::{Msg, MAX_BATCH, MAX_BATCH_BYTES};

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

/// Takes from `pending` the waiting messages that may be committed before
/// the messages queued ahead of them (see the module doc of the writer), up
/// to [`MAX_BATCH`]; none past a flush.
pub(crate) fn take_passers(pending: &mut VecDeque<Msg>) -> Vec<Msg> {
    let mut ahead = QueuedAhead::default();
    let mut passing = Vec::new();
    let mut index = 0;
    while index < pending.len() && passing.len() < MAX_BATCH {
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
    passing
}

/// The next batch from `pending`, and whether it is one of passers: with
/// `replies_first`, the waiting messages that may pass the chunks queued
/// before them, if any, alone; otherwise the oldest messages, up to
/// [`MAX_BATCH`] and [`MAX_BATCH_BYTES`]. The writer alternates (never two
/// batches of passers in a row), so that callers arriving without pause
/// cannot starve a stream: it moves at least every other batch, and a
/// caller still waits for at most one row of it.
pub(crate) fn take_batch(pending: &mut VecDeque<Msg>, replies_first: bool) -> (Vec<Msg>, bool) {
    if replies_first {
        let passing = take_passers(pending);
        if !passing.is_empty() {
            return (passing, true);
        }
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
