//! `/sessions/ID` and `/api/sessions/ID`: one recorded session. Reading
//! is itself recorded: the `review.viewed` event commits before any of
//! the session's data is sent.

use std::fmt::Write;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::html::{escape, page};
use super::routes::{html_page, json, plain, require, unavailable, Kind};
use super::state::{State, Unavailable};
use crate::audit::{Event, SessionId};
use crate::clock::rfc3339_us;
use crate::grants::review::Reviewer;
use crate::replay;

/// Output of one session read: the `show` text or JSON, and its viewers.
enum Shown {
    NoSuchSession,
    Found {
        body: Vec<u8>,
        viewers: Vec<(String, i64)>,
    },
}

#[derive(Clone, Copy)]
enum Shape {
    Text,
    Json,
}

/// Records the view, then reads the session: nothing is shown that is
/// not on record as seen.
async fn view(
    state: &State,
    reviewer: &Reviewer,
    id: i64,
    form: Shape,
) -> Result<Shown, Unavailable> {
    let exists = state
        .read(move |reader| Ok(reader.session(SessionId(id))?.is_some()))
        .await?;
    if !exists {
        return Ok(Shown::NoSuchSession);
    }
    state
        .record(Event::ReviewViewed {
            identity: reviewer.identity.clone(),
            session_viewed: id,
        })
        .await?;
    state
        .read(move |reader| {
            let Some(transcript) = reader.transcript(SessionId(id))? else {
                return Ok(Shown::NoSuchSession);
            };
            let mut body = Vec::new();
            let written = match form {
                Shape::Text => replay::write_show(&transcript, &mut body),
                Shape::Json => replay::write_show_json(&transcript, &mut body),
            };
            written.map_err(|e| crate::audit::StoreError::Unavailable(e.to_string()))?;
            let viewers = reader.viewers(SessionId(id), 100)?;
            Ok(Shown::Found { body, viewers })
        })
        .await
}

pub async fn session_page(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let (reviewer, _) = match require(&state, &headers, Kind::Page).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    match view(&state, &reviewer, id, Shape::Text).await {
        Err(e) => unavailable(e),
        Ok(Shown::NoSuchSession) => plain(StatusCode::NOT_FOUND, "no such session"),
        Ok(Shown::Found { body, viewers }) => {
            let text = String::from_utf8_lossy(&body);
            let who = (reviewer.identity.as_str(), reviewer.csrf.as_str());
            html_page(session_page_markup(who, id, &text, &viewers))
        }
    }
}

pub async fn session_api(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let (reviewer, _) = match require(&state, &headers, Kind::Api).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    match view(&state, &reviewer, id, Shape::Json).await {
        Err(e) => unavailable(e),
        Ok(Shown::NoSuchSession) => plain(StatusCode::NOT_FOUND, "no such session"),
        Ok(Shown::Found { body, .. }) => json(body),
    }
}

/// One session: the transcript as `portcullis show` prints it (header,
/// decision timeline, output), escaped, and who has viewed it.
fn session_page_markup(
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
