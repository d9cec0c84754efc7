//! The `--json` forms of `sessions`, `show` and `verify`.
//!
//! Invariant: the shapes are exactly those fixed in docs/CONTRACT.md
//! (tests and tools rely on them): a session object, and an event object of
//! `seq`, `at`, `offset_us`, `channel`, `kind` and the kind's own fields;
//! times are RFC 3339 UTC with microseconds. `session.start` is the
//! `session` object, not an entry of `events`.

use std::io::{self, Write};

use serde::Serialize;

use crate::audit::{
    Entry, Event, EventRecord, SessionId, SessionRecord, Stream, Transcript, VerifyReport,
};
use crate::cluster::ClusterSession;

use crate::clock::rfc3339_us;

#[derive(Serialize)]
pub(super) struct SessionJson<'a> {
    id: SessionId,
    identity: &'a str,
    key_id: &'a str,
    task: Option<&'a str>,
    target: &'a str,
    login: &'a str,
    cert_serial: u64,
    ca_fingerprint: &'a str,
    cert_fingerprint: Option<&'a str>,
    role: Option<&'a str>,
    client_addr: &'a str,
    started_at: String,
    ended_at: Option<String>,
    end_reason: Option<&'a str>,
}

impl<'a> SessionJson<'a> {
    pub(super) fn new(s: &'a SessionRecord) -> Self {
        SessionJson {
            id: s.id,
            identity: &s.identity,
            key_id: &s.key_id,
            task: s.task.as_deref(),
            target: &s.target,
            login: &s.login,
            cert_serial: s.cert_serial,
            ca_fingerprint: &s.ca_fingerprint,
            cert_fingerprint: s.cert_fingerprint.as_deref(),
            role: s.role.as_deref(),
            client_addr: &s.client_addr,
            started_at: rfc3339_us(s.started_at_us),
            ended_at: s.ended_at_us.map(rfc3339_us),
            end_reason: s.end_reason.as_deref(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct EventJson<'a> {
    seq: i64,
    /// Present (as `null`) only in the refused-authentication list.
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Option<SessionId>>,
    at: String,
    offset_us: Option<i64>,
    channel: Option<u32>,
    #[serde(flatten)]
    body: Body<'a>,
}

/// The `kind` and the kind's own fields.
#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Event(&'a Event),
    Data {
        kind: &'static str,
        stream: Stream,
        len: usize,
        text: String,
    },
    Unparsed {
        kind: &'a str,
        detail: &'a str,
    },
}

pub(super) fn event_json(e: &EventRecord, start_us: Option<i64>) -> EventJson<'_> {
    let body = match &e.entry {
        Entry::Event(event) => Body::Event(event),
        Entry::Data { stream, data } => Body::Data {
            kind: "data",
            stream: *stream,
            len: data.len(),
            text: String::from_utf8_lossy(data).into_owned(),
        },
        Entry::Unparsed { kind, detail } => Body::Unparsed { kind, detail },
    };
    EventJson {
        seq: e.seq,
        session: None,
        at: rfc3339_us(e.at_us),
        offset_us: start_us.map(|start| e.at_us.saturating_sub(start)),
        channel: e.channel,
        body,
    }
}

/// `sessions --json`: an array of session objects.
pub fn write_sessions_json(sessions: &[SessionRecord], out: &mut dyn Write) -> io::Result<()> {
    let list: Vec<SessionJson<'_>> = sessions.iter().map(SessionJson::new).collect();
    write_json(&list, out)
}

/// With `[cluster]`: the objects of `sessions --json`, each with the
/// `replica` that recorded it.
pub fn write_cluster_sessions_json(
    sessions: &[ClusterSession],
    out: &mut dyn Write,
) -> io::Result<()> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        replica: &'a str,
        #[serde(flatten)]
        session: SessionJson<'a>,
    }
    let list: Vec<Row<'_>> = sessions
        .iter()
        .map(|s| Row {
            replica: &s.replica,
            session: SessionJson::new(&s.record),
        })
        .collect();
    write_json(&list, out)
}

/// `sessions --refused --json`: an array of refusal events (`auth.refused`,
/// `grant.refused`, `limit.hit`), each with
/// `"session": null` (and `offset_us` null: there is no session to measure
/// from).
pub fn write_refused_json(events: &[EventRecord], out: &mut dyn Write) -> io::Result<()> {
    write_events_json(events, out)
}

/// An array of `events --json` objects (each with its `session`), as the
/// web API's event lists answer.
pub fn write_events_json(events: &[EventRecord], out: &mut dyn Write) -> io::Result<()> {
    let list: Vec<EventJson<'_>> = events
        .iter()
        .map(|e| EventJson {
            session: Some(e.session),
            ..event_json(e, None)
        })
        .collect();
    write_json(&list, out)
}

/// `events --json`: one event object per line, with its `session` (or
/// `null`), compact.
pub fn event_line_json(e: &EventRecord, out: &mut dyn Write) -> io::Result<()> {
    let line = EventJson {
        session: Some(e.session),
        ..event_json(e, None)
    };
    serde_json::to_writer(&mut *out, &line).map_err(io::Error::other)?;
    writeln!(out)
}

/// `show ID --json`: `{"session": {...}, "events": [...]}`.
pub fn write_show_json(t: &Transcript, out: &mut dyn Write) -> io::Result<()> {
    #[derive(Serialize)]
    struct Show<'a> {
        session: SessionJson<'a>,
        events: Vec<EventJson<'a>>,
    }
    let start = t.session.started_at_us;
    let show = Show {
        session: SessionJson::new(&t.session),
        events: t
            .events
            .iter()
            .filter(|e| !matches!(e.entry, Entry::Event(Event::SessionStart(_))))
            .map(|e| event_json(e, Some(start)))
            .collect(),
    };
    write_json(&show, out)
}

/// `verify --json`: the report as is.
pub fn write_verify_json(report: &VerifyReport, out: &mut dyn Write) -> io::Result<()> {
    write_json(report, out)
}

pub(super) fn write_json<T: Serialize + ?Sized>(value: &T, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::other)?;
    writeln!(out)
}
