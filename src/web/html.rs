//! Server-rendered pages. Every value that comes from the store (identity,
//! task, commands, output) is attacker-controlled and goes through
//! [`escape`]; the only unescaped text is this file's own markup.

use std::fmt::Write;

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

/// A value percent-encoded for a URL's path or query string.
pub(super) fn url_encode(text: &str) -> String {
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

/// The page of session `id` recorded by `replica` (`None`: this
/// replica's own, read from the local store; another's is read from the
/// archive). Its downloads hang off it.
pub(super) fn session_path(replica: Option<&str>, id: i64) -> String {
    match replica {
        None => format!("/sessions/{id}"),
        Some(name) => format!("/replicas/{}/sessions/{id}", url_encode(name)),
    }
}
