//! `/sessions` and `/api/sessions`: the list of recorded sessions, newest
//! first, filtered, searched and paginated by id (a keyset, so page N
//! costs what page 1 does); with `show=refused` or `show=requests`, the
//! refused authentications or the grant requests instead, by sequence
//! number. With `[cluster]` the sessions are the cluster's index, every
//! replica's, newest first by start (the keyset is the start time); the
//! refusals and requests stay this replica's store.

mod markup;
mod query;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::routes::{html_page, json, plain, require, unavailable, Kind};
use super::state::{State, Unavailable};
use crate::audit::{Entry, Event, EventRecord, SessionRecord};
use crate::cluster::ClusterSession;
use crate::replay;
use query::{BadQuery, Listing, Show};

pub use query::ListQuery;

/// Rows per page of the list.
pub const PAGE_SIZE: usize = 50;

/// One page of whichever list was asked for.
enum Rows {
    Sessions(Vec<SessionRecord>),
    /// The cluster's index, and this replica's name.
    Cluster(Vec<ClusterSession>, String),
    /// Events, and for grant requests their state (id, status, decided by).
    Events(Vec<EventRecord>, Vec<(i64, String, Option<String>)>),
}

impl Rows {
    /// The keyset of the next (older) page, when this one is full.
    fn older(&self) -> Option<i64> {
        match self {
            Rows::Sessions(s) if s.len() == PAGE_SIZE => s.last().map(|s| s.id.0),
            Rows::Cluster(s, _) if s.len() == PAGE_SIZE => s.last().map(|s| s.record.started_at_us),
            Rows::Events(e, _) if e.len() == PAGE_SIZE => e.last().map(|e| e.seq),
            _ => None,
        }
    }
}

/// The checked query and its page of rows, or the answer to a bad query
/// or a failed store.
async fn listed(state: &State, q: ListQuery) -> Result<(Listing, Rows), Response> {
    let listing = q.check().map_err(bad_query)?;
    if let (Some(remote), Show::Sessions) = (state.remote(), listing.show) {
        listing.check_index().map_err(bad_query)?;
        let page = remote
            .cluster()
            .page_sessions(&listing.sessions, listing.before, PAGE_SIZE)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "web: the cluster's index is unavailable");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the cluster's database is unavailable",
                )
            })?;
        let local = remote.cluster().replica().to_owned();
        return Ok((listing, Rows::Cluster(page, local)));
    }
    let rows = rows_of(state, &listing).await.map_err(unavailable)?;
    Ok((listing, rows))
}

async fn rows_of(state: &State, listing: &Listing) -> Result<Rows, Unavailable> {
    let (show, before) = (listing.show, listing.before);
    let sessions = listing.sessions.clone();
    let events = listing.events();
    state
        .read(move |reader| match show {
            Show::Sessions => Ok(Rows::Sessions(
                reader.page_sessions(&sessions, before, PAGE_SIZE)?,
            )),
            Show::Refused => Ok(Rows::Events(
                reader.page_refused(&events, before, PAGE_SIZE)?,
                Vec::new(),
            )),
            Show::Requests => {
                let page = reader.page_requests(&events, before, PAGE_SIZE)?;
                let ids: Vec<i64> = page.iter().filter_map(request_id).collect();
                let states = reader.request_states(&ids)?;
                Ok(Rows::Events(page, states))
            }
        })
        .await
}

fn request_id(e: &EventRecord) -> Option<i64> {
    match &e.entry {
        Entry::Event(Event::GrantRequested { request_id, .. }) => Some(*request_id),
        _ => None,
    }
}

fn bad_query(BadQuery(why): BadQuery) -> Response {
    plain(StatusCode::BAD_REQUEST, &why)
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
    let (listing, rows) = match listed(&state, q).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let who = (reviewer.identity.as_str(), reviewer.csrf.as_str());
    let older = rows.older();
    let table = match &rows {
        Rows::Sessions(sessions) => markup::sessions_table(sessions),
        Rows::Cluster(sessions, local) => markup::cluster_sessions_table(sessions, local),
        Rows::Events(events, _) if listing.show == Show::Refused => markup::refused_table(events),
        Rows::Events(events, states) => markup::requests_table(events, states),
    };
    html_page(markup::list_page(who, &listing, &table, older))
}

/// `/api/sessions`: a page of `sessions --json` objects, newest first; with
/// `show=refused` or `show=requests`, of `events --json` objects.
pub async fn list_api(
    Extension(state): Extension<State>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(response) = require(&state, &headers, Kind::Api).await {
        return response;
    }
    let rows = match listed(&state, q).await {
        Ok((_, rows)) => rows,
        Err(response) => return response,
    };
    let mut body = Vec::new();
    let written = match &rows {
        Rows::Sessions(sessions) => replay::write_sessions_json(sessions, &mut body),
        Rows::Cluster(sessions, _) => replay::write_cluster_sessions_json(sessions, &mut body),
        Rows::Events(events, _) => replay::write_events_json(events, &mut body),
    };
    match written {
        Ok(()) => json(body),
        Err(_) => unavailable(Unavailable),
    }
}
