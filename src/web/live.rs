//! `/sessions/ID/live?after=SEQ`: an open session followed as it is
//! recorded, as server-sent events. Each committed row after `after` (or
//! the browser's `Last-Event-ID` when it reconnects) is one `row` event
//! whose data is the row as `portcullis show` prints it and whose id is
//! its seq; an `end` event follows the session's end.
//!
//! Invariant: the stream shows only committed rows (it reads the store,
//! never the live session), is recorded as a `review.viewed` (live) when
//! it opens, and stops within a second of the browser session ending or
//! the reviewer losing `review = true`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::routes::{plain, require, unavailable, Kind};
use super::session::record_view;
use super::state::State;
use crate::audit::{Entry, Event, EventRecord, SessionId, ViewForm};
use crate::grants::review::Reviewer;
use crate::replay;

/// How often the store is asked for new rows.
const POLL: Duration = Duration::from_millis(250);
/// Every this many polls the browser session and the policy are re-read.
const POLLS_PER_RECHECK: u32 = 4;
/// Rows read per poll at most (a burst drains over several polls); with
/// 64 KiB stream pieces, shown escaped, this bounds a stream's buffer to
/// a few MiB.
const ROWS_PER_POLL: usize = 32;

#[derive(Deserialize)]
pub struct LiveQuery {
    after: Option<i64>,
}

pub async fn live(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<LiveQuery>,
) -> Response {
    let (reviewer, _) = match require(&state, &headers, Kind::Api).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    // A reconnecting EventSource says where it got to.
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let after = resumed.or(q.after).unwrap_or(0);
    // Only the start is needed here: the rows follow from the store.
    let started_us = match record_view(&state, &reviewer, id, ViewForm::Live).await {
        Err(e) => return unavailable(e),
        Ok(None) => return plain(StatusCode::NOT_FOUND, "no such session"),
        Ok(Some(session)) => session.started_at_us,
    };
    let follow = Follow {
        state,
        headers,
        reviewer,
        session: SessionId(id),
        started_us,
        after,
        polls: 0,
        behind: false,
        pending: Vec::new(),
        ended: false,
    };
    Sse::new(rows(follow))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Where a live view has got to.
struct Follow {
    state: State,
    headers: HeaderMap,
    reviewer: Reviewer,
    session: SessionId,
    started_us: i64,
    /// The last seq sent.
    after: i64,
    polls: u32,
    /// The last read was a full batch.
    behind: bool,
    /// Read but not yet sent, oldest last (popped).
    pending: Vec<SseEvent>,
    ended: bool,
}

fn rows(follow: Follow) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop() {
                return Some((Ok(event), f));
            }
            if f.ended {
                return None;
            }
            // A full batch means more is waiting: read on without a pause.
            if f.polls > 0 && !f.behind {
                tokio::time::sleep(POLL).await;
            }
            f.polls = f.polls.wrapping_add(1);
            if f.polls % POLLS_PER_RECHECK == 0 && !still_signed_in(&f).await {
                return None;
            }
            let (session, after) = (f.session, f.after);
            let read = f
                .state
                .read(move |reader| {
                    let rows = reader.session_rows_after(session, after, ROWS_PER_POLL)?;
                    // Asked from past the end (a reconnect after `end`):
                    // say it ended rather than wait for rows that never come.
                    let ended = rows.is_empty()
                        && reader
                            .session(session)?
                            .is_none_or(|s| s.ended_at_us.is_some());
                    Ok((rows, ended))
                })
                .await;
            let Ok((records, ended)) = read else {
                return None;
            };
            f.behind = records.len() == ROWS_PER_POLL;
            f.queue(&records);
            if ended {
                f.ended = true;
                f.pending.push(end_event());
            }
        }
    })
}

impl Follow {
    fn queue(&mut self, records: &[EventRecord]) {
        let mut events = Vec::with_capacity(records.len() + 1);
        for record in records {
            self.after = record.seq;
            let mut line = Vec::new();
            if replay::write_row(self.started_us, record, &mut line).is_ok() && !line.is_empty() {
                let text = String::from_utf8_lossy(&line);
                events.push(
                    SseEvent::default()
                        .event("row")
                        .id(record.seq.to_string())
                        .data(text.trim_end_matches('\n')),
                );
            }
            if matches!(record.entry, Entry::Event(Event::SessionEnd { .. })) {
                self.ended = true;
                events.push(end_event());
                break;
            }
        }
        events.reverse();
        self.pending = events;
    }
}

fn end_event() -> SseEvent {
    SseEvent::default().event("end").data("ended")
}

/// The browser session is still live and its identity may still review.
async fn still_signed_in(f: &Follow) -> bool {
    match require(&f.state, &f.headers, Kind::Api).await {
        Ok((reviewer, _)) => reviewer.identity == f.reviewer.identity,
        Err(_) => false,
    }
}
