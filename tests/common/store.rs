//! The store, read through the public CLI.

use super::*;

pub fn json_of(bastion: &Bastion, subcommand: &str, args: &[&str]) -> Value {
    let out = bastion.cli_ok(subcommand, args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "portcullis {subcommand} {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `portcullis sessions --json`.
pub fn sessions_json(bastion: &Bastion) -> Value {
    json_of(bastion, "sessions", &["--json"])
}

/// `portcullis sessions --refused --json`: the auth.refused events.
pub fn refused_json(bastion: &Bastion) -> Value {
    json_of(bastion, "sessions", &["--refused", "--json"])
}

/// `portcullis show ID --json`: `{"session": {...}, "events": [...]}`.
pub fn show_json(bastion: &Bastion, id: i64) -> Value {
    json_of(bastion, "show", &[&id.to_string(), "--json"])
}

/// The events of one `show --json` transcript with this kind.
pub fn events_of_kind<'a>(show: &'a Value, kind: &str) -> Vec<&'a Value> {
    show["events"]
        .as_array()
        .map(|events| events.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

/// The ids of every session, oldest first as listed.
pub fn session_ids(bastion: &Bastion) -> Vec<i64> {
    sessions_json(bastion)
        .as_array()
        .expect("sessions --json is an array")
        .iter()
        .map(|s| s["id"].as_i64().expect("a session has an integer id"))
        .collect()
}

/// Every session's transcript (`show --json`).
pub fn all_transcripts(bastion: &Bastion) -> Vec<Value> {
    session_ids(bastion)
        .into_iter()
        .map(|id| show_json(bastion, id))
        .collect()
}

/// The first transcript with an event of this kind matching `pred`, and that event.
pub fn find_event(
    bastion: &Bastion,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Option<(Value, Value)> {
    all_transcripts(bastion).into_iter().find_map(|show| {
        let event = events_of_kind(&show, kind)
            .into_iter()
            .find(|e| pred(e))
            .cloned()?;
        Some((show, event))
    })
}

/// Like [`find_event`], polling: the store may commit a moment after the
/// client saw the outcome. Panics after 5 s with every transcript.
#[track_caller]
pub fn wait_for_event(
    bastion: &Bastion,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Value) {
    eventually(&format!("a recorded {kind} event"), || {
        find_event(bastion, kind, &pred)
            .ok_or_else(|| format!("transcripts: {:#}", Value::from(all_transcripts(bastion))))
    })
}

/// Polls `check` until it gives `Ok`; after 5 s panics naming what was
/// awaited and the last `Err` (what was seen instead).
#[track_caller]
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + STORE_TIMEOUT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() > deadline => {
                panic!("timed out after {STORE_TIMEOUT:?} waiting for {what}; saw:\n{seen}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), for stdin payloads.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every row of this kind in the store, in chain order, read straight from
/// the SQLite file (read-only): for events that neither a transcript nor the
/// refused list shows. Each is the row's JSON detail plus `kind` and
/// `session` (null outside a session).
pub fn stored_events(bastion: &Bastion, kind: &str) -> Vec<Value> {
    let conn = rusqlite::Connection::open_with_flags(
        bastion.dir().join("portcullis.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store read-only");
    let mut stmt = conn
        .prepare("SELECT session_id, detail FROM events WHERE kind = ?1 ORDER BY seq")
        .expect("query the events");
    let rows = stmt
        .query_map([kind], |row| {
            Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, String>(1)?))
        })
        .expect("read the events");
    rows.map(|row| {
        let (session, detail) = row.expect("an event row");
        let mut event: Value = serde_json::from_str(&detail).unwrap_or(Value::String(detail));
        if let Some(object) = event.as_object_mut() {
            object.insert("kind".into(), kind.into());
            object.insert("session".into(), session.into());
        }
        event
    })
    .collect()
}

/// Polls the store for a row of this kind matching `pred` (see
/// [`stored_events`]); panics after 5 s with the rows of that kind.
#[track_caller]
pub fn wait_for_stored_event(
    bastion: &Bastion,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("a stored {kind} row"), || {
        let rows = stored_events(bastion, kind);
        rows.iter()
            .find(|e| pred(e))
            .cloned()
            .ok_or_else(|| format!("{kind} rows: {:#}", Value::from(rows)))
    })
}

/// Polls `sessions --refused --json` (auth.refused, grant.refused,
/// limit.hit) for an event of this kind matching `pred`.
#[track_caller]
pub fn wait_for_refused_event(
    bastion: &Bastion,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("a refused-list {kind} event"), || {
        let refused = refused_json(bastion);
        refused
            .as_array()
            .and_then(|list| list.iter().find(|e| e["kind"] == kind && pred(e)))
            .cloned()
            .ok_or_else(|| format!("{refused:#}"))
    })
}

/// Like [`wait_for_event`] for any of several kinds: the first transcript
/// event whose kind is one of `kinds` and that matches `pred`.
#[track_caller]
pub fn wait_for_any_event(
    bastion: &Bastion,
    kinds: &[&str],
    pred: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("a recorded event of kind {kinds:?}"), || {
        let transcripts = all_transcripts(bastion);
        transcripts
            .iter()
            .flat_map(|show| show["events"].as_array().cloned().unwrap_or_default())
            .find(|e| kinds.iter().any(|k| e["kind"] == *k) && pred(e))
            .ok_or_else(|| format!("transcripts: {:#}", Value::from(transcripts.clone())))
    })
}

/// The reason of an event, lower-cased (empty when it has none).
pub fn reason_of(event: &Value) -> String {
    event["reason"].as_str().unwrap_or_default().to_lowercase()
}

/// Holds the store's write lock (as a crashed or stuck writer would) until
/// dropped: the bastion's writes fail, reads still work.
pub struct StoreLock {
    conn: rusqlite::Connection,
}

impl StoreLock {
    pub fn take(bastion: &Bastion) -> StoreLock {
        let conn = rusqlite::Connection::open(bastion.dir().join("portcullis.db"))
            .expect("open the store");
        conn.execute_batch("BEGIN EXCLUSIVE")
            .expect("take the store's write lock");
        StoreLock { conn }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}
