//! `/sessions` and `/api/sessions`: the list of recorded sessions, newest
//! first, filtered and paginated by id (a keyset, so page N costs what
//! page 1 does).

use std::fmt::Write;

use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;

use super::html::{escape, page};
use super::routes::{html_page, json, require, unavailable, Kind};
use super::state::{State, Unavailable};
use crate::audit::{SessionFilter, SessionRecord};
use crate::clock::rfc3339_us;
use crate::replay;

/// Sessions per page of the list.
pub const PAGE_SIZE: usize = 50;
/// Longest filter value accepted (longer cannot name anything).
const MAX_FILTER: usize = 256;

#[derive(Deserialize)]
pub struct ListQuery {
    before: Option<i64>,
    identity: Option<String>,
    task: Option<String>,
    target: Option<String>,
}

/// An empty or overlong filter value matches nothing special: absent.
fn filter_value(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty() && v.len() <= MAX_FILTER)
}

impl ListQuery {
    fn filter(self) -> (SessionFilter, Option<i64>) {
        let filter = SessionFilter {
            identity: filter_value(self.identity),
            task: filter_value(self.task),
            target: filter_value(self.target),
            since_us: None,
        };
        (filter, self.before)
    }
}

async fn page_of(
    state: &State,
    filter: SessionFilter,
    before: Option<i64>,
) -> Result<Vec<SessionRecord>, Unavailable> {
    state
        .read(move |reader| reader.page_sessions(&filter, before, PAGE_SIZE))
        .await
}

pub async fn list_page(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let (reviewer, _) = match require(&state, &headers, Kind::Page).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let (filter, before) = q.filter();
    let sessions = match page_of(&state, filter.clone(), before).await {
        Ok(sessions) => sessions,
        Err(e) => return unavailable(e),
    };
    let older = match sessions.len() {
        PAGE_SIZE => sessions.last().map(|s| s.id.0),
        _ => None,
    };
    let view = ListView {
        identity: filter.identity.as_deref(),
        task: filter.task.as_deref(),
        target: filter.target.as_deref(),
    };
    let who = (reviewer.identity.as_str(), reviewer.csrf.as_str());
    html_page(session_list(who, &view, &sessions, older))
}

/// `/api/sessions`: a page of `sessions --json` objects, newest first.
pub async fn list_api(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(response) = require(&state, &headers, Kind::Api).await {
        return response;
    }
    let (filter, before) = q.filter();
    let sessions = match page_of(&state, filter, before).await {
        Ok(sessions) => sessions,
        Err(e) => return unavailable(e),
    };
    let mut body = Vec::new();
    match replay::write_sessions_json(&sessions, &mut body) {
        Ok(()) => json(body),
        Err(_) => unavailable(Unavailable),
    }
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

/// Filters of the list, as given.
struct ListView<'a> {
    pub identity: Option<&'a str>,
    pub task: Option<&'a str>,
    pub target: Option<&'a str>,
}

fn session_list(
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
