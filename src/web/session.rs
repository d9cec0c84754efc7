//! `/sessions/ID` and what hangs off it: the page, `/api/sessions/ID`
//! (`show --json`), the asciicast and JSON transcript downloads, and
//! `/api/sessions/ID/verify` (`verify ID --json`). Reading is itself
//! recorded: the `review.viewed` event, with how it was read, commits
//! before any of the session's data is sent.

use std::fmt::Write;

use axum::extract::Path;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::html::{escape, page};
use super::routes::{html_page, json, plain, require, unavailable, Kind};
use super::state::{State, Unavailable};
use crate::audit::{Entry, Event, SessionId, SessionRecord, Transcript, ViewForm};
use crate::clock::rfc3339_us;
use crate::grants::review::Reviewer;
use crate::replay::{self, recording::Recording, ExportFormat};

/// Viewers listed on a session's page.
const VIEWERS_SHOWN: usize = 100;

/// One session as read for a reviewer, and who has read it.
struct Read {
    transcript: Transcript,
    viewers: Vec<(String, i64, String)>,
}

/// Records that `reviewer` reads session `id` as `form`, before any of
/// it is read for them: nothing is shown that is not on record as seen.
/// `None`: no such session (nothing recorded).
pub(super) async fn record_view(
    state: &State,
    reviewer: &Reviewer,
    id: i64,
    form: ViewForm,
) -> Result<Option<SessionRecord>, Unavailable> {
    let Some(session) = state
        .read(move |reader| reader.session(SessionId(id)))
        .await?
    else {
        return Ok(None);
    };
    state
        .record(Event::ReviewViewed {
            identity: reviewer.identity.clone(),
            session_viewed: id,
            form: Some(form),
        })
        .await?;
    Ok(Some(session))
}

/// [`record_view`], then the whole transcript.
async fn read_as(
    state: &State,
    reviewer: &Reviewer,
    id: i64,
    form: ViewForm,
) -> Result<Option<Transcript>, Unavailable> {
    if record_view(state, reviewer, id, form).await?.is_none() {
        return Ok(None);
    }
    state
        .read(move |reader| reader.transcript(SessionId(id)))
        .await
}

/// [`record_view`], then the transcript and who has read it.
async fn read_with_viewers(
    state: &State,
    reviewer: &Reviewer,
    id: i64,
    form: ViewForm,
) -> Result<Option<Read>, Unavailable> {
    if record_view(state, reviewer, id, form).await?.is_none() {
        return Ok(None);
    }
    state
        .read(move |reader| {
            let Some(transcript) = reader.transcript(SessionId(id))? else {
                return Ok(None);
            };
            let viewers = reader.viewers(SessionId(id), VIEWERS_SHOWN)?;
            Ok(Some(Read {
                transcript,
                viewers,
            }))
        })
        .await
}

fn rendered(
    write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<Vec<u8>, Unavailable> {
    let mut body = Vec::new();
    write(&mut body).map_err(|e| {
        tracing::warn!(error = %e, "web: rendering a session failed");
        Unavailable
    })?;
    Ok(body)
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
    let read = match read_with_viewers(&state, &reviewer, id, ViewForm::Page).await {
        Err(e) => return unavailable(e),
        Ok(None) => return plain(StatusCode::NOT_FOUND, "no such session"),
        Ok(Some(read)) => read,
    };
    let text = match rendered(|out| replay::write_show(&read.transcript, out)) {
        Ok(text) => text,
        Err(e) => return unavailable(e),
    };
    let who = (reviewer.identity.as_str(), reviewer.csrf.as_str());
    let text = String::from_utf8_lossy(&text);
    html_page(session_page_markup(who, &read, &text))
}

pub async fn session_api(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    answer_with(&state, &headers, id, ViewForm::Api, |t, out| {
        replay::write_show_json(t, out)
    })
    .await
    .map_or_else(|e| e, json)
}

/// `/sessions/ID/asciicast`: what `export --format asciicast` writes; the
/// page's player plays it.
pub async fn asciicast(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    match answer_with(&state, &headers, id, ViewForm::Asciicast, |t, out| {
        replay::write_export(t, ExportFormat::Asciicast, out)
    })
    .await
    {
        Ok(body) => download(
            body,
            "application/x-asciicast",
            &format!("session-{id}.cast"),
        ),
        Err(response) => response,
    }
}

/// `/sessions/ID/transcript.json`: what `export --format json` writes.
pub async fn transcript(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    match answer_with(&state, &headers, id, ViewForm::Transcript, |t, out| {
        replay::write_export(t, ExportFormat::Json, out)
    })
    .await
    {
        Ok(body) => download(body, "application/json", &format!("session-{id}.json")),
        Err(response) => response,
    }
}

/// `/api/sessions/ID/verify`: the chain checked for this session's rows
/// (`verify ID --json`). It shows no recorded data, only whether it is
/// intact, so it is not a view; it still needs a signed-in reviewer.
pub async fn verify(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(response) = require(&state, &headers, Kind::Api).await {
        return response;
    }
    let report = state
        .read(move |reader| reader.verify(Some(SessionId(id))))
        .await;
    match report.and_then(|report| rendered(|out| replay::write_verify_json(&report, out))) {
        Ok(body) => json(body),
        Err(e) => unavailable(e),
    }
}

/// Signed in, recorded as read, rendered by `write`: the body, or the
/// answer for a visitor, a missing session or a failed store.
async fn answer_with(
    state: &State,
    headers: &HeaderMap,
    id: i64,
    form: ViewForm,
    write: impl FnOnce(&Transcript, &mut Vec<u8>) -> std::io::Result<()>,
) -> Result<Vec<u8>, Response> {
    let (reviewer, _) = require(state, headers, Kind::Api).await?;
    match read_as(state, &reviewer, id, form).await {
        Err(e) => Err(unavailable(e)),
        Ok(None) => Err(plain(StatusCode::NOT_FOUND, "no such session")),
        Ok(Some(t)) => rendered(|out| write(&t, out)).map_err(unavailable),
    }
}

fn download(body: Vec<u8>, content_type: &'static str, filename: &str) -> Response {
    let mut response = json(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The name is ours (digits and a fixed suffix), never a recorded value.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

/// The observed command lines, in order: (seconds from the start, line).
fn observed(t: &Transcript) -> Vec<(f64, &str)> {
    let start = t.session.started_at_us;
    t.events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Event(Event::CommandObserved { line }) => {
                Some((e.at_us.saturating_sub(start) as f64 / 1e6, line.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// One session: a player and its observed commands when it had a
/// terminal, the downloads, the chain status, the transcript as
/// `portcullis show` prints it (escaped), the live view while it is open,
/// and who has read it. The page's script (`/assets/session.js`) reads
/// only the `data-` attributes set here; without it the page still reads.
fn session_page_markup(who: (&str, &str), read: &Read, transcript: &str) -> String {
    let t = &read.transcript;
    let id = t.session.id.0;
    let open = t.session.ended_at_us.is_none();
    let mut body = format!(
        "<h1>Session {id}</h1><p class=\"state\" id=\"state\">{}</p>",
        match open {
            true => "open: following as it is recorded",
            false => "ended",
        }
    );
    if Recording::of(t).terminal.is_some() {
        let _ = write!(
            body,
            "<h2>Terminal</h2><link rel=\"stylesheet\" href=\"/assets/asciinema-player.css\"><div id=\"player\" data-cast=\"/sessions/{id}/asciicast\"></div>"
        );
        let marks = observed(t);
        if !marks.is_empty() {
            body.push_str(
                "<h3>Observed commands</h3><p class=\"note\">read off the screen on Enter; \
                 best effort, not authoritative</p><ol id=\"markers\">",
            );
            for (index, (at, line)) in marks.iter().enumerate() {
                let _ = write!(
                    body,
                    "<li><button type=\"button\" data-marker=\"{index}\">+{at:.1}s</button> \
                     <code>{}</code></li>",
                    escape(&replay::sanitize(line))
                );
            }
            body.push_str("</ol>");
        }
    }
    let _ = write!(
        body,
        "<p class=\"downloads\">download: <a href=\"/sessions/{id}/asciicast\" download>asciicast</a> \
         <a href=\"/sessions/{id}/transcript.json\" download>JSON transcript</a></p>\
         <p id=\"chain\" data-src=\"/api/sessions/{id}/verify\">chain: \
         <a href=\"/api/sessions/{id}/verify\">verify this session's rows</a></p>\
         <h2>Transcript</h2><pre id=\"transcript\">{}</pre>",
        escape(transcript)
    );
    if open {
        let last = t.events.last().map_or(0, |e| e.seq);
        let _ = write!(
            body,
            "<h2>Live</h2><pre id=\"live\" data-src=\"/sessions/{id}/live?after={last}\"></pre>"
        );
    }
    body.push_str("<h2>Viewed by</h2><ul id=\"viewers\">");
    for (identity, at_us, form) in &read.viewers {
        let how = match form.is_empty() {
            true => String::new(),
            false => format!(" ({})", escape(form)),
        };
        let _ = write!(
            body,
            "<li>viewed by {} at {}{how}</li>",
            escape(identity),
            rfc3339_us(*at_us)
        );
    }
    body.push_str(
        "</ul><script src=\"/assets/asciinema-player.min.js\"></script>\
                   <script src=\"/assets/session.js\"></script>",
    );
    page(&format!("session {id}"), Some(who), &body)
}
