//! `verify`: walks the hash chain and cross-checks the session index.
//!
//! Invariant: verification trusts nothing it reads. It recomputes every
//! row's hash (an edited row), checks each row's `prev_hash` and `seq`
//! against the row before it (a removed, inserted or reordered row), compares
//! the last row with the recorded `chain_head` (a removed tail), and checks
//! that every `sessions` row matches its chained `session.start` /
//! `session.end` events (an edited or deleted session). Wrong column types
//! count as edits, never as a reason to stop.

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde::Serialize;

use super::chain::{self, ChainRow, Hash, GENESIS};
use super::payload::PayloadReader;
use super::query::{event_columns, payload_ref};
use super::{SessionId, StoreError};

mod sessions;

/// What is wrong at one place of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A row's content no longer matches its hash.
    RowEdited,
    /// Rows are missing; `seq` names the first missing one.
    RowsMissing,
    /// This row does not hang on the row before it (removed, replaced or
    /// reordered rows).
    ChainBroken,
    /// Rows after the last one were removed (the recorded head is further).
    TailRemoved,
    /// The recorded head does not match the last row.
    HeadMismatch,
    /// Rows exist but no head is recorded.
    HeadMissing,
    /// A chained `session.start` has no `sessions` row.
    SessionRowMissing,
    /// A `sessions` row has no chained `session.start`.
    SessionStartMissing,
    /// A `sessions` row differs from its chained start or end.
    SessionMismatch,
    /// The session asked about is nowhere in the store.
    SessionUnknown,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The row concerned, when there is one.
    pub seq: Option<i64>,
    pub session: Option<SessionId>,
    pub problem: ProblemKind,
    /// A sentence for the reviewer.
    pub detail: String,
}

/// The outcome of a walk over the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// The session the report is limited to, if any.
    pub session: Option<SessionId>,
    /// Rows walked (the whole chain, even for one session).
    pub rows: u64,
    /// The last row's seq and hash (hex): record it elsewhere to anchor.
    pub last_seq: Option<i64>,
    pub last_hash: Option<String>,
    /// The first row found bad, if any.
    pub first_bad_seq: Option<i64>,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.ok
    }
}

/// A stored row read without trusting its column types.
struct RawRow {
    seq: i64,
    session_id: Option<i64>,
    channel: Option<i64>,
    at_us: i64,
    kind: String,
    detail: String,
    stream: Option<String>,
    data: Option<Vec<u8>>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    /// A column held a value of a type the writer never stores.
    mistyped: bool,
}

pub(crate) fn verify(
    conn: &Connection,
    payload: &PayloadReader,
    only: Option<SessionId>,
) -> Result<VerifyReport, StoreError> {
    let algorithm = chain::ChainAlgorithm::of_store(conn)?;
    let mut problems = Vec::new();
    let mut index = sessions::ChainIndex::default();
    let mut rows: u64 = 0;
    let mut prev: Option<(i64, Hash)> = None;
    let payload_columns = match event_columns(conn)?.contains("payload_segment") {
        true => "payload_segment, payload_offset, payload_len",
        false => "NULL, NULL, NULL",
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, session_id, channel, at_us, kind, detail, stream, data, prev_hash, hash,
                {payload_columns}
         FROM events ORDER BY seq"
    ))?;
    let mut cursor = stmt.query([])?;
    while let Some(row) = cursor.next()? {
        let mut raw = read_raw(row)?;
        // Bytes in a payload segment are hashed where they are; bytes that
        // cannot be read are as good as edited.
        if raw.data.is_none() {
            if let Ok(Some(located)) = payload_ref(row, 10) {
                match payload.read(located) {
                    Ok(bytes) => raw.data = Some(bytes),
                    Err(_) => raw.mistyped = true,
                }
            }
        }
        rows += 1;
        let session = raw.session_id.map(SessionId);
        let in_scope = only.is_none() || only == session;
        let expected_seq = prev.map_or(1, |(seq, _)| seq.saturating_add(1));
        let expected_prev = prev.map_or(GENESIS, |(_, hash)| hash);
        let mut report = |seq: i64, problem, detail: String| {
            problems.push(Problem {
                seq: Some(seq),
                session,
                problem,
                detail,
            })
        };
        if raw.seq != expected_seq {
            report(
                expected_seq,
                ProblemKind::RowsMissing,
                format!(
                    "rows {expected_seq}..={} are missing before row {}",
                    raw.seq.saturating_sub(1),
                    raw.seq
                ),
            );
        } else if raw.prev_hash[..] != expected_prev[..] {
            report(
                raw.seq,
                ProblemKind::ChainBroken,
                format!(
                    "row {} does not follow row {}: rows were removed, replaced or reordered",
                    raw.seq,
                    raw.seq.saturating_sub(1)
                ),
            );
        }
        let recomputed = chain::row_hash(
            algorithm,
            &raw.prev_hash,
            &ChainRow {
                seq: raw.seq,
                session_id: raw.session_id,
                channel: raw.channel,
                at_us: raw.at_us,
                kind: &raw.kind,
                detail: &raw.detail,
                stream: raw.stream.as_deref(),
                data: raw.data.as_deref(),
            },
        );
        if in_scope && (raw.mistyped || recomputed[..] != raw.hash[..]) {
            report(
                raw.seq,
                ProblemKind::RowEdited,
                format!(
                    "row {} ({}) was edited: its hash does not match its content",
                    raw.seq, raw.kind
                ),
            );
        }
        index.note(&raw.kind, raw.seq, session, raw.at_us, &raw.detail);
        prev = Some((raw.seq, chain::to_hash(&raw.hash)));
    }
    check_head(conn, algorithm, prev, &mut problems)?;
    sessions::cross_check(conn, &index, only, &mut problems)?;
    let first_bad_seq = problems.iter().filter_map(|p| p.seq).min();
    Ok(VerifyReport {
        ok: problems.is_empty(),
        session: only,
        rows,
        last_seq: prev.map(|(seq, _)| seq),
        last_hash: prev.map(|(_, hash)| hex::encode(hash)),
        first_bad_seq,
        problems,
    })
}

/// Compares the last row with the head recorded in `chain_head`.
fn check_head(
    conn: &Connection,
    algorithm: chain::ChainAlgorithm,
    last: Option<(i64, Hash)>,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    let recorded = chain::read_recorded_head(conn, algorithm)?;
    let last_seq = last.map_or(0, |(seq, _)| seq);
    let mut report = |seq, problem, detail| {
        problems.push(Problem {
            seq,
            session: None,
            problem,
            detail,
        })
    };
    match recorded {
        None if last.is_some() => report(
            Some(last_seq),
            ProblemKind::HeadMissing,
            "the recorded chain head is missing".to_owned(),
        ),
        None => {}
        Some(head) if head.seq > last_seq => report(
            Some(last_seq.saturating_add(1)),
            ProblemKind::TailRemoved,
            format!(
                "rows {}..={} at the end of the log were removed",
                last_seq.saturating_add(1),
                head.seq
            ),
        ),
        Some(head) if head.seq < last_seq => report(
            Some(head.seq.saturating_add(1)),
            ProblemKind::HeadMismatch,
            format!(
                "rows after {} are not covered by the recorded chain head",
                head.seq
            ),
        ),
        Some(head) if last.map(|(_, hash)| hash) != Some(head.hash) && head.seq > 0 => report(
            Some(last_seq),
            ProblemKind::HeadMismatch,
            format!("row {last_seq} does not match the recorded chain head"),
        ),
        Some(_) => {}
    }
    Ok(())
}

fn read_raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    let mut mistyped = false;
    let mut int = |i: usize| -> rusqlite::Result<Option<i64>> {
        Ok(match row.get_ref(i)? {
            ValueRef::Null => None,
            ValueRef::Integer(v) => Some(v),
            _ => {
                mistyped = true;
                None
            }
        })
    };
    let seq = int(0)?.unwrap_or(0);
    let session_id = int(1)?;
    let channel = int(2)?;
    let at_us = int(3)?.unwrap_or(0);
    let bytes = |i: usize| -> rusqlite::Result<Option<Vec<u8>>> {
        Ok(match row.get_ref(i)? {
            ValueRef::Null => None,
            ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
            ValueRef::Integer(v) => Some(v.to_string().into_bytes()),
            ValueRef::Real(v) => Some(v.to_string().into_bytes()),
        })
    };
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(RawRow {
        seq,
        session_id,
        channel,
        at_us,
        kind: text(bytes(4)?).unwrap_or_default(),
        detail: text(bytes(5)?).unwrap_or_default(),
        stream: text(bytes(6)?),
        data: bytes(7)?,
        prev_hash: bytes(8)?.unwrap_or_default(),
        hash: bytes(9)?.unwrap_or_default(),
        mistyped,
    })
}
