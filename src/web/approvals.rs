//! `/requests`: pending grant requests and held commands, and, for an
//! identity with `approve = true`, approve and deny through the same path
//! as `portcullis approve` / `deny` (`grants::db::decide`), recorded with
//! the approver (`NAME (web)`).
//!
//! Invariant: a decision needs a live browser session of an identity that
//! may approve now (policy and suspensions re-read), a same-origin POST
//! with the session's CSRF value; every recorded value on the page is
//! escaped.

use std::fmt::Write;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::auth;
use super::html::{escape, page as html_page_of, session_path};
use super::routes::{html_page, plain, redirect, require, unavailable, Kind};
use super::state::State;
use crate::clock::rfc3339_seconds;

/// Longest deny reason kept.
const MAX_REASON: usize = 500;

/// `GET /requests`.
pub async fn page(Extension(state): Extension<State>, headers: HeaderMap) -> Response {
    let (reviewer, _) = match require(&state, &headers, Kind::Page).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let (requests, holds) = match state.pending().await {
        Ok(pending) => pending,
        Err(e) => return unavailable(e),
    };
    let approver = state.may_approve(&reviewer.identity).await;
    let mut body = String::from("<h1>Pending requests</h1>");
    if !approver {
        body.push_str("<p>You may read requests; deciding them needs approve = true.</p>");
    }
    if requests.is_empty() && holds.is_empty() {
        body.push_str("<p>No pending requests.</p>");
    }
    body.push_str("<table><tr><th>id</th><th>made</th><th>kind</th><th>identity</th><th>what</th><th></th></tr>");
    let csrf = escape(&reviewer.csrf);
    let mut row = |id: i64, at: i64, kind: &str, identity: &str, what: String| {
        let actions = match approver {
            true => format!(
                "<form class=\"inline\" method=\"post\" action=\"/requests/{id}/approve\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\">approve</button></form> \
                 <form class=\"inline\" method=\"post\" action=\"/requests/{id}/deny\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input name=\"reason\" placeholder=\"reason\" maxlength=\"{MAX_REASON}\">\
                 <button type=\"submit\">deny</button></form>"
            ),
            false => String::new(),
        };
        let _ = write!(
            body,
            "<tr id=\"request-{id}\"><td>{id}</td><td>{}</td><td>{kind}</td><td>{}</td><td>{what}</td><td>{actions}</td></tr>",
            rfc3339_seconds(at),
            escape(identity)
        );
    };
    for r in &requests {
        let what = format!(
            "role {} for {}s, targets {}, exec {}; task {}; reason {}",
            escape(&r.role),
            r.scope.ttl_secs,
            escape(&r.scope.targets.join(", ")),
            escape(&r.scope.exec.join(" | ")),
            escape(r.task.as_deref().unwrap_or("-")),
            escape(r.reason.as_deref().unwrap_or("-")),
        );
        row(r.id, r.created_at_us, "grant", &r.identity, what);
    }
    for h in &holds {
        // A hold of another replica's session links to its archived page.
        let replica = h
            .replica
            .as_deref()
            .filter(|name| state.remote().is_some_and(|r| !r.is_local(name)));
        let what = format!(
            "<code>{}</code> on {} (session <a href=\"{}\">{}</a>, task {})",
            escape(&h.command),
            escape(&h.target),
            session_path(replica, h.session),
            h.session,
            escape(h.task.as_deref().unwrap_or("-")),
        );
        row(h.id, h.created_at_us, "command", &h.identity, what);
    }
    body.push_str("</table>");
    html_page(html_page_of(
        "Requests",
        Some((&reviewer.identity, &reviewer.csrf)),
        &body,
    ))
}

/// `POST /requests/ID/approve`.
pub async fn approve(
    Extension(state): Extension<State>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    decide(state, id, true, headers, body).await
}

/// `POST /requests/ID/deny` (with an optional `reason`).
pub async fn deny(
    Extension(state): Extension<State>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    decide(state, id, false, headers, body).await
}

async fn decide(state: State, id: i64, approve: bool, headers: HeaderMap, body: Bytes) -> Response {
    let (reviewer, _) = match require(&state, &headers, Kind::Api).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let form = Form::parse(&body);
    if !auth::same_origin_post(&headers, &reviewer, form.get("csrf").unwrap_or("")) {
        return plain(
            StatusCode::FORBIDDEN,
            "refused: not a same-origin request of this session",
        );
    }
    if !state.may_approve(&reviewer.identity).await {
        return plain(
            StatusCode::FORBIDDEN,
            "refused: deciding requests needs approve = true",
        );
    }
    let reason = form
        .get("reason")
        .map(|r| r.trim().chars().take(MAX_REASON).collect::<String>())
        .filter(|r| !r.is_empty());
    let by = format!("{} (web)", reviewer.identity);
    match state.decide(id, approve, by, reason).await {
        Err(e) => unavailable(e),
        Ok(Err(why)) => plain(StatusCode::CONFLICT, &format!("refused: {why}")),
        Ok(Ok(())) => redirect("/requests"),
    }
}

/// An `application/x-www-form-urlencoded` body (bounded by the router).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        let text = std::str::from_utf8(body).unwrap_or("");
        Form(
            text.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect(),
        )
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `+` is a space, `%XX` a byte; a malformed escape stays as written.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|c| char::from(*c).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_bad_escapes_stay() {
        let form = Form::parse(b"csrf=ab12&reason=not+today%21&x=%zz%4");
        assert_eq!(form.get("csrf"), Some("ab12"));
        assert_eq!(form.get("reason"), Some("not today!"));
        assert_eq!(form.get("x"), Some("%zz%4"));
        assert_eq!(form.get("missing"), None);
        assert_eq!(Form::parse(&[0xff, b'=', 0xfe]).get("x"), None);
    }
}
