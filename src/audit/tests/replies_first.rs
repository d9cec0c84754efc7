//! A caller waiting on a commit passes stream chunks queued before it,
//! unless they belong to its channel (or its session, for session-wide
//! rows): the order within a channel never changes.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{oneshot, Semaphore};

use crate::audit::writer::{take_batch, take_passers, Msg};
use crate::audit::{SessionId, Stream};

fn chunk(session: i64, channel: u32) -> Msg {
    let budget = Arc::new(Semaphore::new(1 << 20))
        .try_acquire_many_owned(1)
        .unwrap();
    Msg::Chunk {
        at_us: 1,
        session: SessionId(session),
        channel,
        stream: Stream::Stdout,
        parts: vec![Bytes::from_static(b"x")],
        budget,
    }
}

fn record(session: Option<i64>, channel: Option<u32>) -> Msg {
    Msg::Record {
        at_us: 1,
        session: session.map(SessionId),
        channel,
        kind: "exec.allowed",
        detail: "{}".into(),
        reply: oneshot::channel().0,
    }
}

fn end(session: i64) -> Msg {
    Msg::End {
        at_us: 1,
        session: SessionId(session),
        reason: "client closed".into(),
        reply: oneshot::channel().0,
    }
}

/// A short name per message, to compare batches.
fn names(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .map(|m| match m {
            Msg::Chunk {
                session, channel, ..
            } => format!("chunk {}/{channel}", session.0),
            Msg::Record {
                session, channel, ..
            } => format!("record {:?}/{channel:?}", session.map(|s| s.0)),
            Msg::End { session, .. } => format!("end {}", session.0),
            Msg::Begin { .. } => "begin".into(),
            Msg::Flush { .. } => "flush".into(),
            Msg::Transact { .. } => "transact".into(),
        })
        .collect()
}

fn first_batch(msgs: Vec<Msg>) -> (Vec<String>, Vec<String>) {
    let mut pending: VecDeque<Msg> = msgs.into();
    let (batch, _) = take_batch(&mut pending, true);
    let rest: Vec<Msg> = pending.into();
    (names(&batch), names(&rest))
}

#[test]
fn a_decision_on_another_channel_passes_queued_chunks() {
    let (batch, rest) = first_batch(vec![
        chunk(1, 0),
        chunk(1, 0),
        record(Some(1), Some(1)),
        record(Some(2), Some(0)),
        record(None, None),
    ]);
    assert_eq!(
        batch,
        [
            "record Some(1)/Some(1)",
            "record Some(2)/Some(0)",
            "record None/None"
        ]
    );
    assert_eq!(rest, ["chunk 1/0", "chunk 1/0"]);
}

#[test]
fn a_row_of_the_same_channel_keeps_its_place_behind_the_chunks() {
    let (batch, rest) = first_batch(vec![chunk(1, 0), record(Some(1), Some(0))]);
    assert_eq!(batch, ["chunk 1/0", "record Some(1)/Some(0)"]);
    assert!(rest.is_empty());
}

#[test]
fn session_wide_rows_and_ends_wait_for_the_sessions_chunks() {
    let (batch, rest) = first_batch(vec![
        chunk(1, 0),
        record(Some(1), None),
        end(1),
        record(Some(1), Some(3)),
        end(2),
    ]);
    assert_eq!(batch, ["end 2"]);
    assert_eq!(
        rest,
        [
            "chunk 1/0",
            "record Some(1)/None",
            "end 1",
            "record Some(1)/Some(3)"
        ]
    );
}

#[test]
fn a_flush_is_a_barrier() {
    let flush = Msg::Flush {
        reply: oneshot::channel().0,
    };
    let (batch, rest) = first_batch(vec![chunk(1, 0), flush, record(Some(2), Some(0))]);
    assert_eq!(batch, ["chunk 1/0", "flush", "record Some(2)/Some(0)"]);
    assert!(rest.is_empty());
}

#[test]
fn after_a_batch_of_passers_the_oldest_go_next() {
    let mut pending: VecDeque<Msg> =
        vec![chunk(1, 0), record(Some(2), Some(0)), chunk(1, 0)].into();
    let (batch, passed) = take_batch(&mut pending, true);
    assert!(passed);
    assert_eq!(names(&batch), ["record Some(2)/Some(0)"]);
    pending.push_back(record(Some(3), Some(0)));
    let (batch, passed) = take_batch(&mut pending, false);
    assert!(
        !passed,
        "a stream is not starved by callers arriving without pause"
    );
    assert_eq!(
        names(&batch),
        ["chunk 1/0", "chunk 1/0", "record Some(3)/Some(0)"]
    );
}

#[test]
fn passers_joining_a_cut_batch_leave_the_rest_in_order() {
    // What a batch cut short puts back, then a caller that arrived meanwhile.
    let mut pending: VecDeque<Msg> = vec![
        chunk(1, 0),
        record(Some(1), Some(0)),
        chunk(1, 1),
        record(Some(2), Some(0)),
        end(1),
    ]
    .into();
    let passers = take_passers(&mut pending);
    assert_eq!(names(&passers), ["record Some(2)/Some(0)"]);
    let rest: Vec<Msg> = pending.into();
    assert_eq!(
        names(&rest),
        ["chunk 1/0", "record Some(1)/Some(0)", "chunk 1/1", "end 1"]
    );
}
