//! Server-rendered pages. Every value that comes from the store (identity,
//! task, commands, output) is attacker-controlled and goes through
//! [`escape`]; the only unescaped text is this file's own markup.

use std::fmt::Write;

use crate::audit::SessionRecord;
use crate::clock::rfc3339_us;

/// The stylesheet, served at /style.css (the CSP allows no inline style).
pub const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:70em}\
table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}\
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;white-space:pre-wrap}\
header{display:flex;gap:1em;align-items:center}form.inline{display:inline}";

/// Text as HTML text or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value (for the "older" link's filters).
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A whole page; `body` is markup this module made.
pub(super) fn page(title: &str, signed_in: Option<(&str, &str)>, body: &str) -> String {
    let header = match signed_in {
        Some((identity, csrf)) => format!(
            "<header><a href=\"/sessions\">sessions</a> <a href=\"/requests\">requests</a><span>signed in as {}</span>\
             <form class=\"inline\" method=\"post\" action=\"/signout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">sign out</button></form></header>",
            escape(identity),
            escape(csrf)
        ),
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{} - portcullis</title>\
         <link rel=\"stylesheet\" href=\"/style.css\"></head><body>{header}{body}</body></html>",
        escape(title)
    )
}

/// The page for anyone not signed in.
pub fn sign_in_help() -> String {
    page(
        "sign in",
        None,
        "<h1>portcullis</h1><p>Sign in with your SSH identity key: run \
         <code>ssh review@BASTION</code> and open the link it prints (valid for 60 s, once).</p>",
    )
}

/// Filters of the list, as given.
pub struct ListView<'a> {
    pub identity: Option<&'a str>,
    pub task: Option<&'a str>,
    pub target: Option<&'a str>,
}

pub fn session_list(
    who: (&str, &str),
    view: &ListView<'_>,
    sessions: &[SessionRecord],
    older: Option<i64>,
) -> String {
    let mut body = String::from("<h1>Sessions</h1><form method=\"get\" action=\"/sessions\">");
    for (name, value) in [
        ("identity", view.identity),
        ("task", view.task),
        ("target", view.target),
    ] {
        let _ = write!(
            body,
            "<label>{name} <input name=\"{name}\" value=\"{}\"></label> ",
            escape(value.unwrap_or(""))
        );
    }
    body.push_str("<button type=\"submit\">filter</button></form>");
    body.push_str(
        "<table><tr><th>id</th><th>identity</th><th>task</th><th>target</th>\
         <th>started</th><th>ended</th></tr>",
    );
    for s in sessions {
        let _ = write!(
            body,
            "<tr><td><a href=\"/sessions/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape(&s.identity),
            escape(s.task.as_deref().unwrap_or("-")),
            escape(&s.target),
            rfc3339_us(s.started_at_us),
            escape(
                &s.ended_at_us
                    .map_or_else(|| "(open)".to_owned(), rfc3339_us)
            ),
            id = s.id.0,
        );
    }
    body.push_str("</table>");
    if let Some(before) = older {
        let mut link = format!("/sessions?before={before}");
        for (name, value) in [
            ("identity", view.identity),
            ("task", view.task),
            ("target", view.target),
        ] {
            if let Some(value) = value {
                let _ = write!(link, "&{name}={}", url_encode(value));
            }
        }
        let _ = write!(body, "<p><a href=\"{}\">older</a></p>", escape(&link));
    }
    page("sessions", Some(who), &body)
}

/// One session: the transcript as `portcullis show` prints it (header,
/// decision timeline, output), escaped, and who has viewed it.
pub fn session_page(
    who: (&str, &str),
    id: i64,
    transcript: &str,
    viewers: &[(String, i64)],
) -> String {
    let mut body = format!("<h1>Session {id}</h1><pre>{}</pre>", escape(transcript));
    body.push_str("<h2>Viewed by</h2><ul>");
    for (identity, at_us) in viewers {
        let _ = write!(
            body,
            "<li>viewed by {} at {}</li>",
            escape(identity),
            rfc3339_us(*at_us)
        );
    }
    body.push_str("</ul>");
    page(&format!("session {id}"), Some(who), &body)
}
