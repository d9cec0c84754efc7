//! `/replicas/NAME/sessions/ID` and what hangs off it (`/api/replicas/NAME/
//! sessions/ID`, the asciicast and JSON transcript downloads): a session of
//! another replica of the cluster (`[cluster]`), its transcript read from
//! the archive and checked against its chained seal.
//!
//! Invariants: a name no replica could have (`config::is_replica_name`)
//! is answered 404 before anything is read or recorded; a session the
//! index does not have is 404, one not archived yet a page saying so,
//! neither recorded as a view; a session read is recorded as
//! `review.viewed` naming the replica before its transcript is fetched.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::html::{escape, page};
use super::routes::{html_page, plain, require, unavailable, Kind};
use super::session::{self, answer_as, page_of, record_view_of, viewers_of, Origin, Read};
use super::state::State;
use crate::archive::{ArchiveError, Remote};
use crate::audit::{SessionId, Transcript, ViewForm};
use crate::config::is_replica_name;
use crate::grants::review::Reviewer;

pub async fn session_page(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path((replica, id)): Path<(String, i64)>,
) -> Response {
    let (reviewer, _) = match require(&state, &headers, Kind::Page).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let Some(remote) = remote_of(&state, &replica) else {
        return no_such_replica();
    };
    if remote.is_local(&replica) {
        return match session::read_with_viewers(&state, &reviewer, id, ViewForm::Page).await {
            Err(e) => unavailable(e),
            Ok(None) => no_such_session(),
            Ok(Some(read)) => page_of(&reviewer, &read, Origin::Local),
        };
    }
    let origin = Origin::Replica(&replica);
    let transcript = match fetch(&state, remote, &reviewer, &replica, id, ViewForm::Page).await {
        Ok(transcript) => transcript,
        Err(NotRead::NotArchived(why)) => return not_archived_page(&reviewer, &why),
        Err(NotRead::Answer(response)) => return response,
    };
    match viewers_of(&state, origin, id).await {
        Err(e) => unavailable(e),
        Ok(viewers) => page_of(
            &reviewer,
            &Read {
                transcript,
                viewers,
            },
            origin,
        ),
    }
}

pub async fn session_api(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path((replica, id)): Path<(String, i64)>,
) -> Response {
    answer(&state, &headers, &replica, id, ViewForm::Api).await
}

pub async fn asciicast(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path((replica, id)): Path<(String, i64)>,
) -> Response {
    answer(&state, &headers, &replica, id, ViewForm::Asciicast).await
}

pub async fn transcript(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Path((replica, id)): Path<(String, i64)>,
) -> Response {
    answer(&state, &headers, &replica, id, ViewForm::Transcript).await
}

/// Signed in, the session fetched and recorded as read, answered as `form`.
async fn answer(
    state: &State,
    headers: &HeaderMap,
    replica: &str,
    id: i64,
    form: ViewForm,
) -> Response {
    let reviewer = match require(state, headers, Kind::Api).await {
        Ok((reviewer, _)) => reviewer,
        Err(response) => return response,
    };
    let Some(remote) = remote_of(state, replica) else {
        return no_such_replica();
    };
    if remote.is_local(replica) {
        return match session::read_as(state, &reviewer, id, form).await {
            Err(e) => unavailable(e),
            Ok(None) => no_such_session(),
            Ok(Some(t)) => answer_as(&t, form, Origin::Local),
        };
    }
    match fetch(state, remote, &reviewer, replica, id, form).await {
        Ok(t) => answer_as(&t, form, Origin::Replica(replica)),
        Err(NotRead::NotArchived(why)) => plain(StatusCode::NOT_FOUND, &why),
        Err(NotRead::Answer(response)) => response,
    }
}

/// The cluster's sessions, when `replica` could name one of its replicas
/// (`None`: answered [`no_such_replica`], before anything is read).
fn remote_of<'s>(state: &'s State, replica: &str) -> Option<&'s Remote> {
    state.remote().filter(|_| is_replica_name(replica))
}

fn no_such_replica() -> Response {
    plain(StatusCode::NOT_FOUND, "no such replica")
}

/// Why a session of another replica was not read.
enum NotRead {
    /// It is in the index but not (yet) in the archive: why, in one line.
    NotArchived(String),
    Answer(Response),
}

/// `replica`'s session `id` from the archive, recorded as read by
/// `reviewer` as `form` once it is known to be there.
async fn fetch(
    state: &State,
    remote: &Remote,
    reviewer: &Reviewer,
    replica: &str,
    id: i64,
    form: ViewForm,
) -> Result<Transcript, NotRead> {
    let session = SessionId(id);
    let indexed = remote.indexed(replica, session).await.map_err(|e| {
        tracing::warn!(error = %e, "web: the cluster's index is unavailable");
        NotRead::Answer(cluster_unavailable())
    })?;
    let Some(indexed) = indexed else {
        return Err(NotRead::Answer(no_such_session()));
    };
    let not_archived = |why: &str| {
        NotRead::NotArchived(format!(
            "session {id} of replica {replica} is not archived yet: {why}"
        ))
    };
    if !remote.has_archive() {
        return Err(not_archived(
            "this viewer's config has no [archive]; read it on that replica's viewer",
        ));
    }
    if indexed.record.ended_at_us.is_none() {
        return Err(not_archived(
            "it is open (sessions are archived once ended); follow it on that replica's viewer",
        ));
    }
    let sealed = remote.is_archived(replica, session).await.map_err(|e| {
        tracing::warn!(error = %e, "web: the cluster's seals are unavailable");
        NotRead::Answer(cluster_unavailable())
    })?;
    if !sealed {
        return Err(not_archived(
            "it ended and has not been shipped yet; try again in a few seconds",
        ));
    }
    record_view_of(state, reviewer, Origin::Replica(replica), id, form)
        .await
        .map_err(|e| NotRead::Answer(unavailable(e)))?;
    match remote.transcript(replica, session).await {
        Ok(transcript) => Ok(transcript),
        Err(ArchiveError::NotArchived { .. }) => Err(not_archived("it has not been shipped yet")),
        Err(e @ ArchiveError::Tampered { .. }) => {
            tracing::warn!(error = %e, "web: an archived object was refused");
            Err(NotRead::Answer(plain(
                StatusCode::BAD_GATEWAY,
                &e.to_string(),
            )))
        }
        Err(e) => {
            tracing::warn!(error = %e, "web: the archive is unavailable");
            Err(NotRead::Answer(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the archive is unavailable",
            )))
        }
    }
}

fn no_such_session() -> Response {
    plain(StatusCode::NOT_FOUND, "no such session")
}

fn cluster_unavailable() -> Response {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "the cluster's database is unavailable",
    )
}

/// The page for a session the archive does not have yet (404: nothing of
/// it can be shown here).
fn not_archived_page(reviewer: &Reviewer, why: &str) -> Response {
    let who = (reviewer.identity.as_str(), reviewer.csrf.as_str());
    let body = format!(
        "<h1>Not archived yet</h1><p id=\"not-archived\">{}</p>",
        escape(why)
    );
    let mut response = html_page(page("not archived yet", Some(who), &body));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
