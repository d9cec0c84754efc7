//! `/sessions/ID` and what hangs off it: the page, `/api/sessions/ID`
//! (`show --json`), the asciicast and JSON transcript downloads, and
//! `/api/sessions/ID/verify` (`verify ID --json`). Reading is itself
//! recorded: the `review.viewed` event, with how it was read, commits
//! before any of the session's data is sent. Another replica's sessions
//! (`[cluster]`) are read by `web::replica` and rendered here alike.

mod markup;

use axum::extract::Path;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::html::session_path;
use super::routes::{html_page, json, plain, require, unavailable, Kind};
use super::state::{State, Unavailable};
use crate::audit::{Event, SessionId, SessionRecord, Transcript, ViewForm};
use crate::grants::review::Reviewer;
use crate::replay::{self, ExportFormat};

/// Viewers listed on a session's page.
const VIEWERS_SHOWN: usize = 100;

/// One session as read for a reviewer, and who has read it.
pub(super) struct Read {
    pub transcript: Transcript,
    pub viewers: Vec<(String, i64, String)>,
}

/// Which replica recorded a session shown: this one (the local store) or
/// another (`[cluster]`: its transcript read from the archive).
#[derive(Clone, Copy)]
pub(super) enum Origin<'a> {
    Local,
    Replica(&'a str),
}

impl Origin<'_> {
    /// The path of session `id`'s page; its downloads hang off it.
    fn path(self, id: i64) -> String {
        let replica = match self {
            Origin::Local => None,
            Origin::Replica(name) => Some(name),
        };
        session_path(replica, id)
    }

    fn replica(self) -> Option<String> {
        match self {
            Origin::Local => None,
            Origin::Replica(name) => Some(name.to_owned()),
        }
    }

    /// The downloads' file name stem.
    fn file_stem(self, id: i64) -> String {
        match self {
            Origin::Local => format!("session-{id}"),
            Origin::Replica(name) => format!("session-{name}-{id}"),
        }
    }
}

/// Records that `reviewer` reads session `id` of `origin` as `form`.
pub(super) async fn record_view_of(
    state: &State,
    reviewer: &Reviewer,
    origin: Origin<'_>,
    id: i64,
    form: ViewForm,
) -> Result<(), Unavailable> {
    state
        .record(Event::ReviewViewed {
            identity: reviewer.identity.clone(),
            session_viewed: id,
            replica: origin.replica(),
            form: Some(form),
        })
        .await
}

/// Who has read session `id` of `origin`, newest first.
pub(super) async fn viewers_of(
    state: &State,
    origin: Origin<'_>,
    id: i64,
) -> Result<Vec<(String, i64, String)>, Unavailable> {
    let replica = origin.replica();
    state
        .read(move |reader| reader.viewers(replica.as_deref(), SessionId(id), VIEWERS_SHOWN))
        .await
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
    record_view_of(state, reviewer, Origin::Local, id, form).await?;
    Ok(Some(session))
}

/// [`record_view`], then the whole transcript.
pub(super) async fn read_as(
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
pub(super) async fn read_with_viewers(
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
            let viewers = reader.viewers(None, SessionId(id), VIEWERS_SHOWN)?;
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
    match read_with_viewers(&state, &reviewer, id, ViewForm::Page).await {
        Err(e) => unavailable(e),
        Ok(None) => plain(StatusCode::NOT_FOUND, "no such session"),
        Ok(Some(read)) => page_of(&reviewer, &read, Origin::Local),
    }
}

/// The page of a session read for `reviewer`.
pub(super) fn page_of(reviewer: &Reviewer, read: &Read, origin: Origin<'_>) -> Response {
    let text = match rendered(|out| replay::write_show(&read.transcript, out)) {
        Ok(text) => text,
        Err(e) => return unavailable(e),
    };
    let who = (reviewer.identity.as_str(), reviewer.csrf.as_str());
    let text = String::from_utf8_lossy(&text);
    html_page(markup::session_page(who, read, &text, origin))
}

pub async fn session_api(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    answer(&state, &headers, id, ViewForm::Api).await
}

/// `/sessions/ID/asciicast`: what `export --format asciicast` writes; the
/// page's player plays it.
pub async fn asciicast(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    answer(&state, &headers, id, ViewForm::Asciicast).await
}

/// `/sessions/ID/transcript.json`: what `export --format json` writes.
pub async fn transcript(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    answer(&state, &headers, id, ViewForm::Transcript).await
}

/// A transcript as `form` asks (the API's object, or a download): what
/// `show --json`, `export --format asciicast` or `export --format json`
/// writes. The page and the live view are answered elsewhere.
pub(super) fn answer_as(t: &Transcript, form: ViewForm, origin: Origin<'_>) -> Response {
    let stem = origin.file_stem(t.session.id.0);
    let (written, content_type, name) = match form {
        ViewForm::Asciicast => (
            rendered(|out| replay::write_export(t, ExportFormat::Asciicast, out)),
            "application/x-asciicast",
            format!("{stem}.cast"),
        ),
        ViewForm::Transcript => (
            rendered(|out| replay::write_export(t, ExportFormat::Json, out)),
            "application/json",
            format!("{stem}.json"),
        ),
        ViewForm::Api | ViewForm::Page | ViewForm::Live => {
            return rendered(|out| replay::write_show_json(t, out)).map_or_else(unavailable, json)
        }
    };
    match written {
        Ok(body) => download(body, content_type, &name),
        Err(e) => unavailable(e),
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

/// Signed in, recorded as read, answered as `form` ([`answer_as`]); or
/// the answer for a visitor, a missing session or a failed store.
async fn answer(state: &State, headers: &HeaderMap, id: i64, form: ViewForm) -> Response {
    let reviewer = match require(state, headers, Kind::Api).await {
        Ok((reviewer, _)) => reviewer,
        Err(response) => return response,
    };
    match read_as(state, &reviewer, id, form).await {
        Err(e) => unavailable(e),
        Ok(None) => plain(StatusCode::NOT_FOUND, "no such session"),
        Ok(Some(t)) => answer_as(&t, form, Origin::Local),
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
