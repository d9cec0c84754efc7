//! The web viewer's lists: pages of sessions (filtered, searched) and of
//! refused authentications and grant requests, newest first, by keyset.
//!
//! Invariant: every value a reviewer typed is a bound parameter; the SQL
//! text is put together only from this file's constant fragments, one per
//! filter present (so SQLite plans each combination with its own indexes
//! rather than one `? IS NULL OR ...` query that can use none).

use rusqlite::types::{ToSql, Value};
use rusqlite::Connection;

use super::{session_from_row, EventRecord, Reader, SessionRecord};
use crate::audit::{StoreError, INTERRUPTED};

/// How a session ended, as the list filters it. Each maps to a fixed
/// condition on `ended_at_us` / `end_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not ended yet.
    Open,
    /// The client ended it.
    Closed,
    /// The bastion stopped before it could record the end (recovered).
    Interrupted,
    /// A revocation ended it.
    Revoked,
    /// Its grant expired.
    Expired,
    /// Ended for idling.
    Idle,
    /// Ended any other way (policy reload, shutdown, connection error).
    Other,
}

/// The end reasons the bastion writes (gateway/connection.rs,
/// session/mod.rs, gateway/registry.rs, recover.rs).
const CLIENT_ENDED: [&str; 2] = [
    crate::audit::CLIENT_DISCONNECTED,
    crate::audit::SESSION_CLOSED,
];
const IDLE_PATTERN: &str = "idle for % (idle_timeout)";

impl Outcome {
    pub const ALL: [(&'static str, Outcome); 7] = [
        ("open", Outcome::Open),
        ("closed", Outcome::Closed),
        ("interrupted", Outcome::Interrupted),
        ("revoked", Outcome::Revoked),
        ("expired", Outcome::Expired),
        ("idle", Outcome::Idle),
        ("other", Outcome::Other),
    ];

    /// The outcome a filter value names; `None` for anything else.
    pub fn parse(name: &str) -> Option<Outcome> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("other", |(n, _)| n)
    }

    /// The condition, over the parameters [`bind_reasons`] supplies.
    fn condition(self) -> &'static str {
        match self {
            Outcome::Open => "ended_at_us IS NULL",
            Outcome::Closed => "end_reason IN (:closed_a, :closed_b)",
            Outcome::Interrupted => "end_reason = :interrupted",
            Outcome::Revoked => "end_reason = :revoked",
            Outcome::Expired => "end_reason = :expired",
            Outcome::Idle => "end_reason LIKE :idle",
            Outcome::Other => {
                "ended_at_us IS NOT NULL AND coalesce(end_reason, '') NOT IN
                 (:closed_a, :closed_b, :interrupted, :revoked, :expired)
                 AND coalesce(end_reason, '') NOT LIKE :idle"
            }
        }
    }

    /// The reasons [`Outcome::condition`] names, as bound parameters.
    fn bind_reasons(self, args: &mut Args) {
        let reasons = [
            (":closed_a", CLIENT_ENDED[0]),
            (":closed_b", CLIENT_ENDED[1]),
            (":interrupted", INTERRUPTED),
            (":revoked", crate::gateway::registry::REVOKED),
            (":expired", crate::session::EXPIRED),
            (":idle", IDLE_PATTERN),
        ];
        let sql = self.condition();
        for (name, value) in reasons {
            if sql.contains(name) {
                args.push(name, value.to_owned());
            }
        }
    }
}

/// Which sessions a page holds; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub identity: Option<String>,
    pub task: Option<String>,
    pub target: Option<String>,
    /// Sessions started at or after this time (unix micros).
    pub since_us: Option<i64>,
    /// Sessions started before this time (unix micros).
    pub until_us: Option<i64>,
    pub outcome: Option<Outcome>,
    /// Sessions with a command (run, refused or held) or an observed
    /// command line containing this text (case-insensitive).
    pub text: Option<String>,
}

/// Which events a page of refusals or grant requests holds.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Events whose `identity` field is this (events without one never match).
    pub identity: Option<String>,
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
}

/// The trigram index matches substrings of at least three characters;
/// shorter text is looked for row by row.
const TRIGRAM: usize = 3;

/// The store has the `command_search` table (schema 7).
fn has_command_search(conn: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    Ok(version >= 7)
}

/// `text` as one FTS5 phrase: inside double quotes, with its own double
/// quotes doubled, FTS syntax (`OR`, `*`, `NEAR`, `-`) is plain text.
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `text` for `LIKE ... ESCAPE '\'`: its own `%`, `_` and `\` are literal.
fn like_contains(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The kinds whose text is searched (the schema 7 trigger's list).
const SEARCHED: &str = "('exec.allowed', 'exec.refused', 'command.held', 'command.observed')";

/// Named parameters, owned, for a statement put together here.
#[derive(Default)]
struct Args(Vec<(&'static str, Value)>);

impl Args {
    fn push(&mut self, name: &'static str, value: impl Into<Value>) {
        self.0.push((name, value.into()));
    }

    fn as_params(&self) -> Vec<(&str, &dyn ToSql)> {
        self.0
            .iter()
            .map(|(name, value)| (*name, value as &dyn ToSql))
            .collect()
    }
}

/// The sessions' `WHERE` clause for `filter` and its parameters.
fn session_condition(
    conn: &Connection,
    filter: &SessionFilter,
) -> rusqlite::Result<(String, Args)> {
    let mut sql = String::from("1");
    let mut args = Args::default();
    if let Some(identity) = &filter.identity {
        sql.push_str(" AND identity = :identity");
        args.push(":identity", identity.clone());
    }
    if let Some(task) = &filter.task {
        sql.push_str(" AND task = :task");
        args.push(":task", task.clone());
    }
    if let Some(target) = &filter.target {
        sql.push_str(" AND target = :target");
        args.push(":target", target.clone());
    }
    if let Some(since) = filter.since_us {
        sql.push_str(" AND started_at_us >= :since");
        args.push(":since", since);
    }
    if let Some(until) = filter.until_us {
        sql.push_str(" AND started_at_us < :until");
        args.push(":until", until);
    }
    if let Some(outcome) = filter.outcome {
        sql.push_str(" AND (");
        sql.push_str(outcome.condition());
        sql.push(')');
        outcome.bind_reasons(&mut args);
    }
    if let Some(text) = &filter.text {
        let indexed = has_command_search(conn)?;
        if indexed && text.chars().count() >= TRIGRAM {
            sql.push_str(
                " AND id IN (SELECT session_id FROM command_search
                             WHERE command_search MATCH :phrase)",
            );
            args.push(":phrase", fts_phrase(text));
        } else if indexed {
            // Too short for the index: a scan, but of the narrow table.
            sql.push_str(
                " AND id IN (SELECT session_id FROM command_search
                             WHERE text LIKE :pattern ESCAPE '\\')",
            );
            args.push(":pattern", like_contains(text));
        } else {
            sql.push_str(&format!(
                " AND id IN (SELECT session_id FROM events
                  WHERE kind IN {SEARCHED} AND json_valid(detail)
                    AND concat_ws(char(10), json_extract(detail, '$.command'),
                                  json_extract(detail, '$.forced_command'),
                                  json_extract(detail, '$.line'))
                        LIKE :pattern ESCAPE '\\')"
            ));
            args.push(":pattern", like_contains(text));
        }
    }
    Ok((sql, args))
}

impl Reader {
    /// Sessions matching `filter`, oldest first.
    pub fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        let (condition, args) = session_condition(&self.conn, filter)?;
        let sql = format!(
            "SELECT {} FROM sessions WHERE {condition} ORDER BY id",
            self.session_columns
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(&args.as_params()[..], session_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A page of sessions matching `filter`, newest first: at most `limit`
    /// with ids below `before` (all, without it). Walks an index backwards
    /// where one applies, so page N costs what page 1 does.
    pub fn page_sessions(
        &self,
        filter: &SessionFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let (mut condition, mut args) = session_condition(&self.conn, filter)?;
        if let Some(before) = before {
            condition.push_str(" AND id < :before");
            args.push(":before", before);
        }
        args.push(":limit", i64::try_from(limit).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {} FROM sessions WHERE {condition} ORDER BY id DESC LIMIT :limit",
            self.session_columns
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(&args.as_params()[..], session_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A page of refused authentications (`auth.refused` on the target
    /// logins, `grant.refused` on the grant login), newest first, with
    /// sequence numbers below `before`.
    pub fn page_refused(
        &self,
        filter: &EventFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.page_events("('auth.refused', 'grant.refused')", filter, before, limit)
    }

    /// A page of grant requests (`grant.requested`), newest first.
    pub fn page_requests(
        &self,
        filter: &EventFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.page_events("('grant.requested')", filter, before, limit)
    }

    /// `kinds` is one of this file's constant lists.
    fn page_events(
        &self,
        kinds: &'static str,
        filter: &EventFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut sql = format!(
            "SELECT {} FROM events WHERE kind IN {kinds}",
            self.event_columns
        );
        let mut args = Args::default();
        if let Some(identity) = &filter.identity {
            sql.push_str(
                " AND json_valid(detail) AND json_extract(detail, '$.identity') = :identity",
            );
            args.push(":identity", identity.clone());
        }
        if let Some(since) = filter.since_us {
            sql.push_str(" AND at_us >= :since");
            args.push(":since", since);
        }
        if let Some(until) = filter.until_us {
            sql.push_str(" AND at_us < :until");
            args.push(":until", until);
        }
        if let Some(before) = before {
            sql.push_str(" AND seq < :before");
            args.push(":before", before);
        }
        sql.push_str(" ORDER BY seq DESC LIMIT :limit");
        args.push(":limit", i64::try_from(limit).unwrap_or(i64::MAX));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(&args.as_params()[..], |row| self.event_from_row(row))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The state of grant requests `ids` (`pending`, `approved`, `denied`,
    /// `issued`, `expired`) and who decided, where recorded.
    pub fn request_states(
        &self,
        ids: &[i64],
    ) -> Result<Vec<(i64, String, Option<String>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT status, decided_by FROM grant_requests WHERE id = ?1")?;
        let mut states = Vec::new();
        for id in ids {
            let mut rows = stmt.query([id])?;
            if let Some(row) = rows.next()? {
                states.push((*id, row.get(0)?, row.get(1)?));
            }
        }
        Ok(states)
    }
}
