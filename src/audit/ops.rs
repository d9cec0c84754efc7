//! The row-level operations of the writer, each run inside its transaction.
//!
//! Invariant: every operation first checks what the caller may get wrong
//! (unknown or ended session, reserved kinds) without writing anything, so a
//! caller mistake fails that one message, and an error after the check means
//! the store itself failed (the whole batch is rolled back). Session start
//! and end always change `sessions` and append their chained event together.

use rusqlite::{params, Connection, OptionalExtension};

use super::chain::{self, ChainHead, ChainRow, PayloadRow};
use super::event::{Event, NewSession, DATA_KIND};
use super::payload::Appender;
use super::{SessionId, StoreError};

/// A failure of one operation.
pub(crate) enum OpError {
    /// The caller asked for something invalid; nothing was written.
    Rejected(StoreError),
    /// The database failed; the transaction must be abandoned.
    Store(rusqlite::Error),
    /// A payload segment could not be written; the same.
    Payload(String),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Store(e)
    }
}

/// Fails unless `session` exists and has not ended.
pub(crate) fn check_open(conn: &Connection, session: SessionId) -> Result<(), OpError> {
    let ended: Option<Option<i64>> = conn
        .prepare_cached("SELECT ended_at_us FROM sessions WHERE id = ?1")?
        .query_row([session.0], |row| row.get(0))
        .optional()?;
    match ended {
        None => Err(OpError::Rejected(StoreError::UnknownSession(session))),
        Some(Some(_)) => Err(OpError::Rejected(StoreError::SessionEnded(session))),
        Some(None) => Ok(()),
    }
}

/// Inserts the session row and its chained `session.start` event.
pub(crate) fn begin(
    conn: &Connection,
    head: &mut ChainHead,
    at_us: i64,
    s: &NewSession,
    detail: &str,
) -> Result<SessionId, OpError> {
    conn.prepare_cached(
        "INSERT INTO sessions (started_at_us, identity, key_id, task, cert_serial,
                               ca_fingerprint, client_addr, target, login, cert_fingerprint, role)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        at_us,
        s.identity,
        s.key_id,
        s.task,
        s.cert_serial as i64,
        s.ca_fingerprint,
        s.client_addr,
        s.target,
        s.login,
        s.cert_fingerprint,
        s.role,
    ])?;
    let id = conn.last_insert_rowid();
    chain::append(
        conn,
        head,
        ChainRow {
            seq: 0,
            session_id: Some(id),
            channel: None,
            at_us,
            kind: "session.start",
            detail,
            stream: None,
            data: None,
        },
    )?;
    Ok(SessionId(id))
}

/// Appends a caller's event.
pub(crate) fn record(
    conn: &Connection,
    head: &mut ChainHead,
    at_us: i64,
    session: Option<SessionId>,
    channel: Option<u32>,
    kind: &str,
    detail: &str,
) -> Result<(), OpError> {
    if let Some(s) = session {
        check_open(conn, s)?;
    }
    chain::append(
        conn,
        head,
        ChainRow {
            seq: 0,
            session_id: session.map(|s| s.0),
            channel: channel.map(i64::from),
            at_us,
            kind,
            detail,
            stream: None,
            data: None,
        },
    )?;
    Ok(())
}

/// Appends stream bytes, given as consecutive parts, as one row: the
/// bytes to a payload segment, the chained row naming them.
pub(crate) fn chunk(
    conn: &Connection,
    head: &mut ChainHead,
    at_us: i64,
    (session, channel, stream): (SessionId, u32, &str),
    parts: &[&[u8]],
    payload: &mut Appender,
) -> Result<(), OpError> {
    check_open(conn, session)?;
    let row = ChainRow {
        seq: 0,
        session_id: Some(session.0),
        channel: Some(i64::from(channel)),
        at_us,
        kind: DATA_KIND,
        detail: "{}",
        stream: Some(stream),
        data: None,
    };
    let len = parts.iter().map(|p| p.len()).sum();
    let mut row = PayloadRow::start(head, row, len);
    let located = payload
        .append(parts, |piece| row.feed(piece))
        .map_err(|e| OpError::Payload(e.to_string()))?;
    row.insert(conn, head, located)?;
    Ok(())
}

/// Closes the session row and appends its chained `session.end` event; a
/// single-use claim the session held is spent in the same transaction.
pub(crate) fn end(
    conn: &Connection,
    head: &mut ChainHead,
    at_us: i64,
    session: SessionId,
    reason: &str,
) -> Result<(), OpError> {
    check_open(conn, session)?;
    let (kind, detail) = Event::SessionEnd {
        reason: reason.to_owned(),
    }
    .encode()
    .map_err(OpError::Rejected)?;
    conn.prepare_cached("UPDATE sessions SET ended_at_us = ?1, end_reason = ?2 WHERE id = ?3")?
        .execute(params![at_us, reason, session.0])?;
    conn.prepare_cached("UPDATE cert_claims SET state = 'consumed' WHERE session_id = ?1")?
        .execute(params![session.0])?;
    chain::append(
        conn,
        head,
        ChainRow {
            seq: 0,
            session_id: Some(session.0),
            channel: None,
            at_us,
            kind,
            detail: &detail,
            stream: None,
            data: None,
        },
    )?;
    Ok(())
}
