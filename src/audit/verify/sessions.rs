//! Cross-check of the mutable `sessions` index against the chain.
//!
//! Invariant: a `sessions` row is trusted only as far as it equals what the
//! chain says: its fields and start time must equal its one chained
//! `session.start`, and its end time and reason its chained `session.end`
//! (or both absent). Every chained start needs a row, every row a start.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;

use super::{Problem, ProblemKind};
use crate::audit::event::{Event, NewSession};
use crate::audit::query::{session_columns, session_from_row, SessionRecord};
use crate::audit::{SessionId, StoreError};

/// A chained session event: its seq, time and detail.
struct Mark {
    seq: i64,
    at_us: i64,
    detail: String,
}

/// The session starts and ends seen while walking the chain.
#[derive(Default)]
pub(super) struct ChainIndex {
    starts: BTreeMap<i64, Vec<Mark>>,
    ends: BTreeMap<i64, Vec<Mark>>,
}

impl ChainIndex {
    pub(super) fn note(
        &mut self,
        kind: &str,
        seq: i64,
        session: Option<SessionId>,
        at_us: i64,
        detail: &str,
    ) {
        let map = match kind {
            "session.start" => &mut self.starts,
            "session.end" => &mut self.ends,
            _ => return,
        };
        if let Some(session) = session {
            map.entry(session.0).or_default().push(Mark {
                seq,
                at_us,
                detail: detail.to_owned(),
            });
        }
    }
}

pub(super) fn cross_check(
    conn: &Connection,
    index: &ChainIndex,
    only: Option<SessionId>,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    let rows: BTreeMap<i64, SessionRecord> = {
        let sql = format!(
            "SELECT {} FROM sessions WHERE (?1 IS NULL OR id = ?1) ORDER BY id",
            session_columns(conn)?
        );
        let mut stmt = conn.prepare(&sql)?;
        let found = stmt.query_map([only.map(|s| s.0)], session_from_row)?;
        found
            .map(|r| r.map(|s| (s.id.0, s)))
            .collect::<rusqlite::Result<_>>()?
    };
    let mut ids: BTreeSet<i64> = rows.keys().copied().collect();
    ids.extend(index.starts.keys().copied());
    ids.extend(index.ends.keys().copied());
    if let Some(s) = only {
        ids.retain(|id| *id == s.0);
        if ids.is_empty() {
            problems.push(Problem {
                seq: None,
                session: Some(s),
                problem: ProblemKind::SessionUnknown,
                detail: format!("session {s} is neither in the sessions table nor in the chain"),
            });
        }
    }
    for id in ids {
        let starts = index.starts.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let ends = index.ends.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        check_one(SessionId(id), rows.get(&id), starts, ends, problems);
    }
    Ok(())
}

fn check_one(
    id: SessionId,
    row: Option<&SessionRecord>,
    starts: &[Mark],
    ends: &[Mark],
    problems: &mut Vec<Problem>,
) {
    let mut report = |seq: Option<i64>, problem, detail: String| {
        problems.push(Problem {
            seq,
            session: Some(id),
            problem,
            detail,
        })
    };
    let first_start = starts.first();
    for extra in starts.iter().skip(1).chain(ends.iter().skip(1)) {
        report(
            Some(extra.seq),
            ProblemKind::SessionMismatch,
            format!("session {id} is started or ended more than once in the chain"),
        );
    }
    let Some(row) = row else {
        if let Some(start) = first_start {
            report(
                Some(start.seq),
                ProblemKind::SessionRowMissing,
                format!("session {id} was deleted from the sessions table"),
            );
        }
        return;
    };
    let Some(start) = first_start else {
        report(
            None,
            ProblemKind::SessionStartMissing,
            format!("session {id} has no session.start in the chain"),
        );
        return;
    };
    let differing = start_differences(row, start);
    if !differing.is_empty() {
        report(
            Some(start.seq),
            ProblemKind::SessionMismatch,
            format!(
                "session {id} differs from its chained start in: {}",
                differing.join(", ")
            ),
        );
    }
    let chained_end = ends.first().map(|end| {
        let reason = match Event::decode("session.end", &end.detail) {
            Ok(Event::SessionEnd { reason }) => Some(reason),
            _ => None,
        };
        (end.seq, end.at_us, reason)
    });
    let row_end = (row.ended_at_us, row.end_reason.as_deref());
    match chained_end {
        None if row_end != (None, None) => report(
            None,
            ProblemKind::SessionMismatch,
            format!("session {id} is marked ended but the chain has no session.end"),
        ),
        None => {}
        Some((seq, at_us, reason)) if row_end != (Some(at_us), reason.as_deref()) => report(
            Some(seq),
            ProblemKind::SessionMismatch,
            format!("session {id}'s end time or reason differs from its chained session.end"),
        ),
        Some(_) => {}
    }
}

/// The names of the fields where `row` differs from the chained start.
fn start_differences(row: &SessionRecord, start: &Mark) -> Vec<&'static str> {
    let chained: Option<NewSession> = match Event::decode("session.start", &start.detail) {
        Ok(Event::SessionStart(s)) => Some(s),
        _ => None,
    };
    let Some(c) = chained else {
        return vec!["session.start detail (unreadable)"];
    };
    let checks = [
        ("started_at", row.started_at_us == start.at_us),
        ("identity", row.identity == c.identity),
        ("key_id", row.key_id == c.key_id),
        ("task", row.task == c.task),
        ("cert_serial", row.cert_serial == c.cert_serial),
        ("ca_fingerprint", row.ca_fingerprint == c.ca_fingerprint),
        (
            "cert_fingerprint",
            row.cert_fingerprint == c.cert_fingerprint,
        ),
        ("role", row.role == c.role),
        ("client_addr", row.client_addr == c.client_addr),
        ("target", row.target == c.target),
        ("login", row.login == c.login),
    ];
    checks
        .iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| *name)
        .collect()
}
