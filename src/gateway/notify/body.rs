//! The JSON body of a notice, made from the chained event it is about.
//!
//! Invariant: the shape is the one in docs/CONTRACT.md ("Notify"): `kind`,
//! `seq`, `at`, `request`, `identity`, the kind's own keys, and `event`,
//! the event as `events --json` prints it. Kinds are matched by their
//! stored string, so a kind this build cannot decode (one a newer build
//! records) is read from its stored fields all the same.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::audit::{Entry, EventRecord};
use crate::clock::rfc3339_us;

/// The events a human is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A grant request (sent while it awaits an operator's approval).
    GrantRequested,
    /// A command held for an operator's approval.
    CommandHeld,
}

impl NoticeKind {
    pub fn of(kind: &str) -> Option<NoticeKind> {
        match kind {
            "grant.requested" => Some(NoticeKind::GrantRequested),
            "command.held" => Some(NoticeKind::CommandHeld),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::GrantRequested => "grant.requested",
            NoticeKind::CommandHeld => "command.held",
        }
    }
}

/// One notice, ready to send.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The notified event's sequence number (receivers dedupe on it).
    pub seq: i64,
    pub request_id: i64,
    /// A grant request's role: its approval says whether anyone is asked.
    pub role: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct Body<'a> {
    kind: &'static str,
    seq: i64,
    at: String,
    request: i64,
    identity: Option<&'a str>,
    #[serde(flatten)]
    detail: Detail<'a>,
    event: &'a Value,
}

/// The keys each kind adds.
#[derive(Serialize)]
#[serde(untagged)]
enum Detail<'a> {
    Grant {
        role: Option<&'a str>,
        task: Option<&'a str>,
        reason: Option<&'a str>,
        approve: String,
        deny: String,
    },
    Held {
        session: Option<i64>,
        target: Option<&'a str>,
        command: Option<&'a str>,
        role: Option<&'a str>,
        task: Option<&'a str>,
        approve: String,
        deny: String,
    },
}

/// The notice for `record`: `None` for kinds nobody is asked about,
/// `Some(Err)` for a notified kind whose fields name no request.
pub fn notice_of(record: &EventRecord) -> Option<Result<Notice, &'static str>> {
    let kind = NoticeKind::of(record.entry.kind())?;
    Some(build(kind, record))
}

fn build(kind: NoticeKind, record: &EventRecord) -> Result<Notice, &'static str> {
    let fields = kind_and_fields(&record.entry).ok_or("its fields are not a JSON object")?;
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let request_id = fields
        .get("request_id")
        .and_then(Value::as_i64)
        .ok_or("it names no request_id")?;
    let detail = match kind {
        NoticeKind::GrantRequested => Detail::Grant {
            role: text("role"),
            task: text("task"),
            reason: text("reason"),
            approve: format!("portcullis approve {request_id}"),
            deny: format!("portcullis deny {request_id}"),
        },
        NoticeKind::CommandHeld => Detail::Held {
            session: fields
                .get("session")
                .and_then(Value::as_i64)
                .or(record.session.map(|s| s.0)),
            target: text("target"),
            command: text("command"),
            role: text("role"),
            task: text("task"),
            approve: format!("portcullis approve {request_id}"),
            deny: format!("portcullis deny {request_id}"),
        },
    };
    let event = Value::Object(events_json_object(record, fields.clone()));
    let body = Body {
        kind: kind.as_str(),
        seq: record.seq,
        at: rfc3339_us(record.at_us),
        request: request_id,
        identity: text("identity"),
        detail,
        event: &event,
    };
    let body = serde_json::to_vec(&body).map_err(|_| "it does not serialize")?;
    Ok(Notice {
        kind,
        seq: record.seq,
        request_id,
        role: text("role").map(str::to_owned),
        body,
    })
}

/// The event's `kind` and its own fields, decoded or as stored.
fn kind_and_fields(entry: &Entry) -> Option<Map<String, Value>> {
    let value = match entry {
        Entry::Event(event) => serde_json::to_value(event).ok()?,
        Entry::Unparsed { kind, detail } => {
            let mut value: Value = serde_json::from_str(detail).ok()?;
            value
                .as_object_mut()?
                .insert("kind".into(), Value::String(kind.clone()));
            value
        }
        Entry::Data { .. } => return None,
    };
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The object `events --json` prints: the row's columns beside the
/// event's kind and fields.
fn events_json_object(record: &EventRecord, mut map: Map<String, Value>) -> Map<String, Value> {
    map.insert("seq".into(), record.seq.into());
    map.insert("session".into(), record.session.map(|s| s.0).into());
    map.insert("at".into(), rfc3339_us(record.at_us).into());
    map.insert("offset_us".into(), Value::Null);
    map.insert("channel".into(), record.channel.into());
    map
}
