//! The list's markup: the filter form, the three tables, the "older" link.
//! Every stored or typed value goes through [`escape`].

use std::fmt::Write;

use super::query::{Listing, Show};
use crate::audit::{Entry, Event, EventRecord, Outcome, SessionRecord};
use crate::clock::rfc3339_us;
use crate::cluster::ClusterSession;
use crate::web::html::{escape, page, session_path, url_encode};

/// Text inputs of the form: (query name, label).
const TEXT_FILTERS: [(&str, &str); 6] = [
    ("identity", "identity"),
    ("task", "task"),
    ("target", "target"),
    ("from", "from"),
    ("until", "until"),
    ("q", "search commands"),
];

/// A `<select>` of fixed `choices`, the typed one selected.
fn select(out: &mut String, name: &str, typed: &str, choices: &[&str]) {
    let _ = write!(out, "<label>{name} <select name=\"{name}\">");
    for choice in choices {
        let selected = if *choice == typed { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{choice}\"{selected}>{}</option>",
            if choice.is_empty() { "any" } else { choice }
        );
    }
    out.push_str("</select></label> ");
}

fn form(listing: &Listing) -> String {
    let mut out = String::from("<form method=\"get\" action=\"/sessions\">");
    let shown = listing.show.name();
    select(
        &mut out,
        "show",
        shown,
        &["sessions", "refused", "requests"],
    );
    for (name, label) in TEXT_FILTERS {
        let _ = write!(
            out,
            "<label>{label} <input name=\"{name}\" value=\"{}\"></label> ",
            escape(listing.typed(name))
        );
    }
    let mut outcomes = vec![""];
    outcomes.extend(Outcome::ALL.iter().map(|(n, _)| *n));
    select(&mut out, "outcome", listing.typed("outcome"), &outcomes);
    out.push_str("<button type=\"submit\">filter</button></form>");
    out
}

pub(super) fn list_page(
    who: (&str, &str),
    listing: &Listing,
    table: &str,
    older: Option<i64>,
) -> String {
    let title = match listing.show {
        Show::Sessions => "Sessions",
        Show::Refused => "Refused authentications",
        Show::Requests => "Grant requests",
    };
    let mut body = format!("<h1>{title}</h1>{}{table}", form(listing));
    if let Some(before) = older {
        let mut link = format!("/sessions?before={before}");
        for (name, value) in &listing.typed {
            let _ = write!(link, "&{name}={}", url_encode(value));
        }
        let _ = write!(body, "<p><a href=\"{}\">older</a></p>", escape(&link));
    }
    page(&title.to_lowercase(), Some(who), &body)
}

fn row(out: &mut String, cells: &[&str]) {
    out.push_str("<tr>");
    for cell in cells {
        let _ = write!(out, "<td>{}</td>", escape(cell));
    }
    out.push_str("</tr>");
}

fn outcome_of(s: &SessionRecord) -> String {
    match (s.ended_at_us, &s.end_reason) {
        (None, _) => "(open)".to_owned(),
        (Some(at), reason) => format!(
            "{} ({})",
            rfc3339_us(at),
            reason.as_deref().unwrap_or("no reason")
        ),
    }
}

const SESSION_COLUMNS: &str = "<th>id</th><th>identity</th><th>task</th><th>target</th>\
     <th>started</th><th>ended</th></tr>";

/// A session's cells after the replica's (if any): its id linking `page`.
fn session_cells(out: &mut String, s: &SessionRecord, page: &str) {
    let _ = write!(
        out,
        "<td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(page),
        s.id.0,
        escape(&s.identity),
        escape(s.task.as_deref().unwrap_or("-")),
        escape(&s.target),
        rfc3339_us(s.started_at_us),
        escape(&outcome_of(s)),
    );
}

pub(super) fn sessions_table(sessions: &[SessionRecord]) -> String {
    let mut out = format!("<table><tr>{SESSION_COLUMNS}");
    for s in sessions {
        out.push_str("<tr>");
        session_cells(&mut out, s, &format!("/sessions/{}", s.id.0));
    }
    out.push_str("</table>");
    out
}

/// The cluster's index: a replica column, and each session linked where
/// it is read (this replica's store, or the archive for `local`'s peers).
pub(super) fn cluster_sessions_table(sessions: &[ClusterSession], local: &str) -> String {
    let mut out = format!("<table><tr><th>replica</th>{SESSION_COLUMNS}");
    for s in sessions {
        let id = s.record.id.0;
        let page = session_path((s.replica != local).then_some(s.replica.as_str()), id);
        let _ = write!(out, "<tr><td>{}</td>", escape(&s.replica));
        session_cells(&mut out, &s.record, &page);
    }
    out.push_str("</table>");
    out
}

pub(super) fn refused_table(events: &[EventRecord]) -> String {
    let mut out = String::from(
        "<table><tr><th>time</th><th>kind</th><th>client</th><th>login</th>\
         <th>identity or key id</th><th>certificate</th><th>reason</th></tr>",
    );
    for e in events {
        let at = rfc3339_us(e.at_us);
        match &e.entry {
            Entry::Event(Event::AuthRefused {
                login,
                key_id,
                cert_fingerprint,
                client_addr,
                reason,
                ..
            }) => row(
                &mut out,
                &[
                    &at,
                    e.entry.kind(),
                    client_addr,
                    login,
                    key_id.as_deref().unwrap_or("-"),
                    cert_fingerprint.as_deref().unwrap_or("-"),
                    reason,
                ],
            ),
            Entry::Event(Event::GrantRefused {
                identity,
                client_addr,
                reason,
            }) => row(
                &mut out,
                &[
                    &at,
                    e.entry.kind(),
                    client_addr,
                    "grant",
                    identity,
                    "-",
                    reason,
                ],
            ),
            other => unparsed_row(&mut out, &at, other, 7),
        }
    }
    out.push_str("</table>");
    out
}

/// A row this version cannot read field by field: its kind and detail.
fn unparsed_row(out: &mut String, at: &str, entry: &Entry, columns: usize) {
    let detail = match entry {
        Entry::Unparsed { detail, .. } => detail.as_str(),
        _ => "",
    };
    let mut cells = vec![at, entry.kind(), detail];
    cells.resize(columns, "");
    row(out, &cells);
}

pub(super) fn requests_table(
    events: &[EventRecord],
    states: &[(i64, String, Option<String>)],
) -> String {
    let mut out = String::from(
        "<table><tr><th>time</th><th>request</th><th>identity</th><th>role</th><th>task</th>\
         <th>targets</th><th>reason</th><th>client</th><th>state</th></tr>",
    );
    for e in events {
        let at = rfc3339_us(e.at_us);
        let Entry::Event(Event::GrantRequested {
            request_id,
            identity,
            role,
            task,
            reason,
            targets,
            client_addr,
            ..
        }) = &e.entry
        else {
            unparsed_row(&mut out, &at, &e.entry, 9);
            continue;
        };
        let state = match states.iter().find(|(id, _, _)| id == request_id) {
            Some((_, status, Some(by))) => format!("{status} by {by}"),
            Some((_, status, None)) => status.clone(),
            None => "unknown".to_owned(),
        };
        row(
            &mut out,
            &[
                &at,
                &request_id.to_string(),
                identity,
                role,
                task.as_deref().unwrap_or("-"),
                &targets.join(", "),
                reason.as_deref().unwrap_or("-"),
                client_addr,
                &state,
            ],
        );
    }
    out.push_str("</table>");
    out
}
