//! Text rendering of `portcullis sessions`, `show` and `verify`.
//!
//! Invariant: everything recorded came from a peer (task names, commands,
//! target output), so no control character reaches the reviewer's terminal:
//! every recorded string is escaped by [`sanitize`] before it is written.
//! The `session.start` row is shown as the header, not as an event line.

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::audit::{Entry, Event, EventRecord, SessionRecord, Stream, Transcript, VerifyReport};
use crate::cluster::ClusterSession;

use super::observed::write_observed;
use crate::clock::{format_duration, rfc3339_seconds, rfc3339_us};

/// The `sessions` table: id, start, duration (or `open`), identity, task,
/// target, end reason.
pub fn write_sessions(sessions: &[SessionRecord], out: &mut dyn Write) -> io::Result<()> {
    let rows: Vec<[String; 7]> = sessions.iter().map(session_row).collect();
    write_table(&SESSION_HEADER, &rows, out)
}

/// With `[cluster]`: the same table over every replica's sessions, each
/// with the replica that recorded it first.
pub fn write_cluster_sessions(sessions: &[ClusterSession], out: &mut dyn Write) -> io::Result<()> {
    let mut header = ["REPLICA"; 8];
    header[1..].copy_from_slice(&SESSION_HEADER);
    let rows: Vec<[String; 8]> = sessions
        .iter()
        .map(|s| {
            let mut row: [String; 8] = Default::default();
            row[0] = sanitize(&s.replica);
            row[1..].clone_from_slice(&session_row(&s.record));
            row
        })
        .collect();
    write_table(&header, &rows, out)
}

const SESSION_HEADER: [&str; 7] = [
    "ID", "STARTED", "DURATION", "IDENTITY", "TASK", "TARGET", "END",
];

fn session_row(s: &SessionRecord) -> [String; 7] {
    [
        s.id.to_string(),
        rfc3339_seconds(s.started_at_us),
        match s.ended_at_us {
            Some(end) => format_duration(end.saturating_sub(s.started_at_us)),
            None => "open".to_owned(),
        },
        sanitize(&s.identity),
        s.task.as_deref().map_or_else(|| "-".to_owned(), sanitize),
        sanitize(&s.target),
        s.end_reason
            .as_deref()
            .map_or_else(|| "-".to_owned(), sanitize),
    ]
}

/// Refusals outside any session (authentications, grant requests, limits):
/// time, login, key id or identity, serial, client, reason.
pub fn write_refused(events: &[EventRecord], out: &mut dyn Write) -> io::Result<()> {
    let header = [
        "SEQ", "TIME", "LOGIN", "KEY ID", "SERIAL", "CLIENT", "REASON",
    ];
    let dash = || "-".to_owned();
    let rows: Vec<[String; 7]> = events
        .iter()
        .map(|e| match &e.entry {
            Entry::Event(Event::AuthRefused {
                login,
                key_id,
                serial,
                client_addr,
                reason,
                ..
            }) => [
                e.seq.to_string(),
                rfc3339_seconds(e.at_us),
                sanitize(login),
                key_id.as_deref().map_or_else(dash, sanitize),
                serial.map_or_else(dash, |s| s.to_string()),
                sanitize(client_addr),
                sanitize(reason),
            ],
            Entry::Event(Event::LimitHit {
                limit,
                client_addr,
                identity,
                reason,
            }) => [
                e.seq.to_string(),
                rfc3339_seconds(e.at_us),
                dash(),
                identity.as_deref().map_or_else(dash, sanitize),
                dash(),
                sanitize(client_addr),
                sanitize(&format!("{limit}: {reason}")),
            ],
            Entry::Event(Event::GrantRefused {
                identity,
                client_addr,
                reason,
            }) => [
                e.seq.to_string(),
                rfc3339_seconds(e.at_us),
                "grant".to_owned(),
                sanitize(identity),
                dash(),
                sanitize(client_addr),
                sanitize(reason),
            ],
            other => [
                e.seq.to_string(),
                rfc3339_seconds(e.at_us),
                dash(),
                dash(),
                dash(),
                dash(),
                sanitize(other.kind()),
            ],
        })
        .collect();
    write_table(&header, &rows, out)
}

/// The transcript: a header with the session's fields, then one line per
/// event (`+0.012345s [ch 0] exec.allowed command="..."`), stream bytes as
/// their text with the stream named on each line.
pub fn write_show(t: &Transcript, out: &mut dyn Write) -> io::Result<()> {
    let s = &t.session;
    writeln!(out, "session {}", s.id)?;
    writeln!(
        out,
        "  identity:    {} (key id {})",
        sanitize(&s.identity),
        sanitize(&s.key_id)
    )?;
    writeln!(
        out,
        "  task:        {}",
        s.task.as_deref().map_or_else(|| "-".to_owned(), sanitize)
    )?;
    writeln!(
        out,
        "  target:      {} (login {})",
        sanitize(&s.target),
        sanitize(&s.login)
    )?;
    writeln!(out, "  client:      {}", sanitize(&s.client_addr))?;
    writeln!(
        out,
        "  certificate: serial {}, CA {}",
        s.cert_serial,
        sanitize(&s.ca_fingerprint)
    )?;
    write_cert_terms(t, out)?;
    writeln!(out, "  started:     {}", rfc3339_us(s.started_at_us))?;
    match (s.ended_at_us, &s.end_reason) {
        (Some(end), reason) => writeln!(
            out,
            "  ended:       {} after {} ({})",
            rfc3339_us(end),
            format_duration(end.saturating_sub(s.started_at_us)),
            reason
                .as_deref()
                .map_or_else(|| "no reason".to_owned(), sanitize)
        )?,
        (None, _) => writeln!(out, "  ended:       (still open)")?,
    }
    writeln!(out, "  recorded:    {}", recorded_bytes(t))?;
    writeln!(out)?;
    for e in &t.events {
        write_row(s.started_at_us, e, out)?;
    }
    write_observed(t, out)
}

/// One row of the timeline as `show` prints it, offset from `started_us`
/// (the session's start); nothing for the `session.start` row, which the
/// header already shows.
pub fn write_row(started_us: i64, e: &EventRecord, out: &mut dyn Write) -> io::Result<()> {
    if matches!(e.entry, Entry::Event(Event::SessionStart(_))) {
        return Ok(());
    }
    let mut prefix = offset_label(e.at_us.saturating_sub(started_us));
    if let Some(ch) = e.channel {
        prefix.push_str(&format!(" [ch {ch}]"));
    }
    match &e.entry {
        Entry::Event(event) => writeln!(out, "{prefix} {}", event_line(event)),
        Entry::Data { stream, data } => write_data(&prefix, *stream, data, out),
        Entry::Unparsed { kind, detail } => writeln!(
            out,
            "{prefix} {} {} (unreadable)",
            sanitize(kind),
            sanitize(detail)
        ),
    }
}

/// The cert's validity and its options as `auth.accepted` recorded them
/// (sessions recorded before they were kept show neither).
fn write_cert_terms(t: &Transcript, out: &mut dyn Write) -> io::Result<()> {
    let Some((after, before, critical, extensions)) =
        t.events.iter().find_map(|e| match &e.entry {
            Entry::Event(Event::AuthAccepted {
                valid_after: Some(after),
                valid_before: Some(before),
                critical_options,
                extensions,
                ..
            }) => Some((*after, *before, critical_options, extensions)),
            _ => None,
        })
    else {
        return Ok(());
    };
    // OpenSSH's "forever" is u64::MAX; any time past i64 microseconds is too.
    let at = |secs: u64| match i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000))
    {
        Some(us) => rfc3339_seconds(us),
        None => "forever".to_owned(),
    };
    writeln!(out, "  valid:       {} to {}", at(after), at(before))?;
    for (label, options) in [("critical:", critical), ("extensions:", extensions)] {
        let Some(options) = options.as_ref().filter(|o| !o.is_empty()) else {
            continue;
        };
        let listed: Vec<String> = options
            .iter()
            .map(|(name, value)| match value.is_empty() {
                true => sanitize(name),
                false => format!("{}={}", sanitize(name), sanitize(value)),
            })
            .collect();
        writeln!(out, "  {label:<12} {}", listed.join(", "))?;
    }
    Ok(())
}

/// How many stream bytes the store holds, per channel and stream
/// (`ch 0 stdout 1234 B, ch 0 stderr 5 B`): after a crash, how much of
/// each stream was committed.
fn recorded_bytes(t: &Transcript) -> String {
    let mut totals: BTreeMap<(Option<u32>, &'static str), u64> = BTreeMap::new();
    for e in &t.events {
        if let Entry::Data { stream, data } = &e.entry {
            *totals.entry((e.channel, stream.as_str())).or_default() += data.len() as u64;
        }
    }
    if totals.is_empty() {
        return "no stream bytes".to_owned();
    }
    let parts: Vec<String> = totals
        .iter()
        .map(|((channel, stream), bytes)| match channel {
            Some(ch) => format!("ch {ch} {stream} {bytes} B"),
            None => format!("{stream} {bytes} B"),
        })
        .collect();
    parts.join(", ")
}

/// `+1.234567s`: an offset from the session's start.
pub(super) fn offset_label(offset_us: i64) -> String {
    let sign = if offset_us < 0 { "-" } else { "+" };
    let secs = offset_us.unsigned_abs();
    format!("{sign}{}.{:06}s", secs / 1_000_000, secs % 1_000_000)
}

/// The outcome of `verify`, one problem per line.
pub fn write_verify(report: &VerifyReport, out: &mut dyn Write) -> io::Result<()> {
    let scope = report
        .session
        .map_or_else(String::new, |s| format!(" (session {s})"));
    let head = match (&report.last_seq, &report.last_hash) {
        (Some(seq), Some(hash)) => format!("chain head: row {seq} {hash}"),
        _ => "chain is empty".to_owned(),
    };
    if report.ok {
        return writeln!(out, "verify: OK{scope}: {} rows, {head}", report.rows);
    }
    writeln!(
        out,
        "verify: FAILED{scope}: {} problem(s) in {} rows{}; {head}",
        report.problems.len(),
        report.rows,
        report
            .first_bad_seq
            .map_or_else(String::new, |seq| format!(", first bad row {seq}")),
    )?;
    for p in &report.problems {
        let at = p
            .seq
            .map_or_else(|| "-".to_owned(), |seq| format!("row {seq}"));
        writeln!(out, "  {at}: {}", sanitize(&p.detail))?;
    }
    Ok(())
}

/// `kind field=value ...` with JSON-quoted values, nulls left out.
fn event_line(event: &Event) -> String {
    let mut line = event.kind().to_owned();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) {
        for (name, value) in fields.iter().filter(|(n, v)| *n != "kind" && !v.is_null()) {
            line.push_str(&format!(" {name}={value}"));
        }
    }
    sanitize(&line)
}

fn write_data(prefix: &str, stream: Stream, data: &[u8], out: &mut dyn Write) -> io::Result<()> {
    let label = stream.as_str();
    if data.is_empty() {
        return writeln!(out, "{prefix} {label}| (0 bytes)");
    }
    let text = String::from_utf8_lossy(data);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        writeln!(out, "{prefix} {label}| {}", sanitize_keep_tabs(line))?;
    }
    Ok(())
}

/// Escapes every control character (C0, DEL, C1, bidi) as `\xNN` / `\u{NNNN}`.
pub fn sanitize(s: &str) -> String {
    escape(s, false)
}

fn sanitize_keep_tabs(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, keep_tabs: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' if keep_tabs => out.push(c),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || is_bidi_control(c) => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Bidirectional-text controls can make a line read differently from what
/// it is ("Trojan Source"); they are escaped too.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_table<const N: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
