//! Read-only queries for the reviewer commands.
//!
//! Invariant: a [`Reader`] opens the store read-only and never migrates,
//! recovers or writes, so the CLI can read while a server writes (WAL). Rows
//! come back as stored; a row whose kind or detail no longer parses (a newer
//! writer, or tampering) is returned as [`Entry::Unparsed`], never dropped.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::event::{Event, Stream, DATA_KIND};
use super::payload::{PayloadReader, PayloadRef};
use super::verify::{self, VerifyReport};
use super::{schema, SessionId, StoreError};

mod list;

pub use list::{EventFilter, Outcome, SessionFilter};

/// A row of `sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub started_at_us: i64,
    pub ended_at_us: Option<i64>,
    pub end_reason: Option<String>,
    pub identity: String,
    pub key_id: String,
    pub task: Option<String>,
    pub cert_serial: u64,
    pub ca_fingerprint: String,
    pub cert_fingerprint: Option<String>,
    pub role: Option<String>,
    pub client_addr: String,
    pub target: String,
    pub login: String,
}

/// A row of `events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: i64,
    pub session: Option<SessionId>,
    pub channel: Option<u32>,
    pub at_us: i64,
    pub entry: Entry,
}

/// What an event row holds (serialized for the transcript archive, its
/// bytes as base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    Event(Event),
    Data {
        stream: Stream,
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// A row this version cannot interpret, kept as stored.
    Unparsed {
        kind: String,
        detail: String,
    },
}

impl Entry {
    /// The row's kind (`data` for stream rows).
    pub fn kind(&self) -> &str {
        match self {
            Entry::Event(e) => e.kind(),
            Entry::Data { .. } => DATA_KIND,
            Entry::Unparsed { kind, .. } => kind,
        }
    }
}

/// One session and all its rows in chain order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    pub session: SessionRecord,
    pub events: Vec<EventRecord>,
}

/// A read-only connection to the store.
pub struct Reader {
    conn: Connection,
    session_columns: &'static str,
    event_columns: &'static str,
    payload: PayloadReader,
}

/// The columns [`session_from_row`] reads, for this store: one not yet at
/// schema 3 (a reader never migrates) has no `cert_fingerprint` and `role`.
pub(crate) fn session_columns(conn: &Connection) -> rusqlite::Result<&'static str> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    Ok(if version >= 3 {
        "id, started_at_us, ended_at_us, end_reason, identity, key_id, task,
         cert_serial, ca_fingerprint, client_addr, target, login, cert_fingerprint, role"
    } else {
        "id, started_at_us, ended_at_us, end_reason, identity, key_id, task,
         cert_serial, ca_fingerprint, client_addr, target, login, NULL, NULL"
    })
}

/// The columns [`Reader::event_from_row`] reads: a store before schema 4
/// has its stream bytes inline only.
pub(crate) fn event_columns(conn: &Connection) -> rusqlite::Result<&'static str> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    Ok(if version >= 4 {
        "seq, session_id, channel, at_us, kind, detail, stream, data,
         payload_segment, payload_offset, payload_len"
    } else {
        "seq, session_id, channel, at_us, kind, detail, stream, data, NULL, NULL, NULL"
    })
}

/// Where a row's stream bytes are, when they are in a payload segment.
pub(crate) fn payload_ref(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<PayloadRef>> {
    let segment: Option<i64> = row.get(first)?;
    let offset: Option<i64> = row.get(first + 1)?;
    let len: Option<i64> = row.get(first + 2)?;
    Ok(match (segment, offset, len) {
        (Some(segment), Some(offset), Some(len)) => Some(PayloadRef {
            segment,
            offset,
            len,
        }),
        _ => None,
    })
}

impl Reader {
    /// Opens an existing store read-only; fails if there is none.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader, StoreError> {
        let conn = schema::open_reader(path.as_ref())?;
        let session_columns = session_columns(&conn)?;
        let event_columns = event_columns(&conn)?;
        Ok(Reader {
            conn,
            session_columns,
            event_columns,
            payload: PayloadReader::new(path.as_ref()),
        })
    }

    /// The read-only connection, for other layers' own tables.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Who read session `id` in the web viewer (`review.viewed`), newest
    /// first, at most `limit`: (identity, unix micros, how: `page`,
    /// `asciicast`, ...; empty for views recorded before it was kept).
    /// `replica`: another replica's session `id` (`None`: this store's).
    pub fn viewers(
        &self,
        replica: Option<&str>,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT json_extract(detail, '$.identity'), at_us, json_extract(detail, '$.form')
             FROM events
             WHERE kind = 'review.viewed' AND session_id IS NULL
               AND json_extract(detail, '$.session_viewed') = ?1
               AND json_extract(detail, '$.replica') IS ?3
             ORDER BY seq DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![id.0, limit, replica], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                row.get(1)?,
                row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One session's row, if it exists.
    pub fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE id = ?1",
            self.session_columns
        );
        Ok(self
            .conn
            .query_row(&sql, [id.0], session_from_row)
            .optional()?)
    }

    /// The ids of the sessions from `low` on, oldest first, and whether
    /// each has ended (the archive's shipper reads only what is new).
    pub fn session_ids_from(&self, low: i64) -> Result<Vec<(SessionId, bool)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, ended_at_us IS NOT NULL FROM sessions WHERE id >= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([low], |row| Ok((SessionId(row.get(0)?), row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Refused authentications (`auth.refused`), oldest first.
    pub fn list_refusals(&self, since_us: Option<i64>) -> Result<Vec<EventRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events
             WHERE kind IN ('auth.refused', 'grant.refused', 'limit.hit')
               AND (?1 IS NULL OR at_us >= ?1) ORDER BY seq",
            self.event_columns
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![since_us], |row| self.event_from_row(row))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Events (not stream rows) after sequence number `after` and, with
    /// `since_us`, at or after that time; oldest first, at most `limit`.
    pub fn events_after(
        &self,
        after: i64,
        since_us: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events
             WHERE seq > ?1 AND kind <> ?2 AND (?3 IS NULL OR at_us >= ?3)
             ORDER BY seq LIMIT ?4",
            self.event_columns
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after, DATA_KIND, since_us, limit], |row| {
            self.event_from_row(row)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The sequence number of the last row, 0 in an empty store.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM events", [], |row| row.get(0))?;
        Ok(seq.unwrap_or(0))
    }

    /// The session and every row recorded for it, in chain order.
    pub fn transcript(&self, id: SessionId) -> Result<Option<Transcript>, StoreError> {
        let Some(session) = self.session(id)? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {} FROM events WHERE session_id = ?1 ORDER BY seq",
            self.event_columns
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([id.0], |row| self.event_from_row(row))?;
        let events = rows.collect::<rusqlite::Result<_>>()?;
        Ok(Some(Transcript { session, events }))
    }

    /// Session `id`'s rows after `after` (a seq), oldest first, at most
    /// `limit`: what the live view sends next.
    pub fn session_rows_after(
        &self,
        id: SessionId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            self.event_columns
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![id.0, after, limit], |row| self.event_from_row(row))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Walks the whole chain; with `session`, reports only that session's
    /// rows plus breaks of the chain itself.
    pub fn verify(&self, session: Option<SessionId>) -> Result<VerifyReport, StoreError> {
        verify::verify(&self.conn, &self.payload, session)
    }

    /// A row of `events`, its stream bytes fetched wherever they are. Bytes
    /// that cannot be read (a segment lost or cut short) make the row
    /// [`Entry::Unparsed`], saying so; `verify` reports it as edited.
    fn event_from_row(&self, row: &Row<'_>) -> rusqlite::Result<EventRecord> {
        let kind: String = row.get(4)?;
        let detail: String = row.get(5)?;
        let stream: Option<String> = row.get(6)?;
        let inline: Option<Vec<u8>> = row.get(7)?;
        let data = match (inline, payload_ref(row, 8)?) {
            (Some(data), _) => Some(Ok(data)),
            (None, Some(located)) => Some(self.payload.read(located)),
            (None, None) => None,
        };
        let entry = match (
            kind.as_str(),
            stream.as_deref().and_then(Stream::parse),
            data,
        ) {
            (DATA_KIND, Some(stream), Some(Ok(data))) => Entry::Data { stream, data },
            (DATA_KIND, _, Some(Err(e))) => Entry::Unparsed {
                kind,
                detail: format!("stream bytes unreadable: {e}"),
            },
            (DATA_KIND, _, _) => Entry::Unparsed { kind, detail },
            _ => match Event::decode(&kind, &detail) {
                Ok(event) => Entry::Event(event),
                Err(_) => Entry::Unparsed { kind, detail },
            },
        };
        Ok(EventRecord {
            seq: row.get(0)?,
            session: row.get::<_, Option<i64>>(1)?.map(SessionId),
            channel: row
                .get::<_, Option<i64>>(2)?
                .and_then(|c| u32::try_from(c).ok()),
            at_us: row.get(3)?,
            entry,
        })
    }
}

pub(crate) fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId(row.get(0)?),
        started_at_us: row.get(1)?,
        ended_at_us: row.get(2)?,
        end_reason: row.get(3)?,
        identity: row.get(4)?,
        key_id: row.get(5)?,
        task: row.get(6)?,
        cert_serial: row.get::<_, i64>(7)? as u64,
        ca_fingerprint: row.get(8)?,
        client_addr: row.get(9)?,
        target: row.get(10)?,
        login: row.get(11)?,
        cert_fingerprint: row.get(12)?,
        role: row.get(13)?,
    })
}

/// Stream bytes as one base64 string, not an array of numbers.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}
