//! The routes. Every handler that shows recorded data starts from
//! [`auth::visitor`] and answers 401 (API) or a redirect to the sign-in
//! page (HTML) without a live browser session.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::auth::{self, Visitor, COOKIE_NAME};
use super::html;
use super::state::{may_review_now, State, Unavailable};
use crate::audit::Event;
use crate::grants::review::{self, LinkRefusal, Reviewer, SESSION_LIFETIME};

/// The largest request body (only sign-out's form has one).
const MAX_BODY: usize = 4096;

/// How the browser reaches the viewer: over TLS the session cookie is
/// `Secure`, so a browser never sends it in the clear.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn cookie_attributes(self) -> &'static str {
        match self {
            Scheme::Http => "HttpOnly; SameSite=Strict; Path=/",
            Scheme::Https => "HttpOnly; Secure; SameSite=Strict; Path=/",
        }
    }
}

pub fn router(state: State, scheme: Scheme) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("/sessions") }))
        .route("/style.css", get(super::assets::style))
        .route("/assets/{name}", get(super::assets::asset))
        .route("/signin", get(sign_in))
        .route("/signout", post(sign_out))
        .route("/sessions", get(super::list::list_page))
        .route("/sessions/{id}", get(super::session::session_page))
        .route("/api/sessions", get(super::list::list_api))
        .route("/api/sessions/{id}", get(super::session::session_api))
        .route("/api/sessions/{id}/verify", get(super::session::verify))
        .route("/sessions/{id}/asciicast", get(super::session::asciicast))
        .route(
            "/sessions/{id}/transcript.json",
            get(super::session::transcript),
        )
        .route("/sessions/{id}/live", get(super::live::live))
        .route(
            "/replicas/{replica}/sessions/{id}",
            get(super::replica::session_page),
        )
        .route(
            "/api/replicas/{replica}/sessions/{id}",
            get(super::replica::session_api),
        )
        .route(
            "/replicas/{replica}/sessions/{id}/asciicast",
            get(super::replica::asciicast),
        )
        .route(
            "/replicas/{replica}/sessions/{id}/transcript.json",
            get(super::replica::transcript),
        )
        .route("/requests", get(super::approvals::page))
        .route("/requests/{id}/approve", post(super::approvals::approve))
        .route("/requests/{id}/deny", post(super::approvals::deny))
        .fallback(|| async { plain(StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(harden))
        .layer(Extension(state))
        .layer(Extension(scheme))
}

/// Headers on every answer: nothing is cached, framed or sniffed, no
/// other site is sent a referrer (a sign-in link carries its token in
/// the URL; `same-origin`, not `no-referrer`, because under
/// `no-referrer` browsers send `Origin: null` on our own form posts,
/// which the same-origin check then rightly refuses), and
/// pages run only our own embedded scripts (no inline script, no other
/// origin; the player's terminal emulator is WebAssembly, hence
/// `wasm-unsafe-eval`) and talk only to this origin.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (CACHE_CONTROL, "no-store"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "same-origin"),
        (
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

pub(super) fn plain(status: StatusCode, line: &str) -> Response {
    let mut response = (status, format!("{line}\n")).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(super) fn html_page(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

pub(super) fn json(body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// 303 to a path of ours (never one a peer chose).
pub(super) fn redirect(to: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    response
}

pub(super) fn unavailable(_: Unavailable) -> Response {
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the audit store is unavailable",
    )
}

/// How a route answers a visitor who is not signed in.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Page,
    Api,
}

/// The signed-in reviewer, or the answer for everyone else.
pub(super) async fn require(
    state: &State,
    headers: &HeaderMap,
    kind: Kind,
) -> Result<(Reviewer, String), Response> {
    match auth::visitor(state, headers).await.map_err(unavailable)? {
        Visitor::SignedIn { reviewer, cookie } => Ok((reviewer, cookie)),
        Visitor::Anonymous => Err(match kind {
            Kind::Api => plain(
                StatusCode::UNAUTHORIZED,
                "sign in first: ssh review@BASTION",
            ),
            Kind::Page => redirect("/signin"),
        }),
    }
}

/// What redeeming a link came to.
enum SignedIn {
    Began(review::NewBrowserSession),
    BadLink,
    NotReviewer,
}

#[derive(Deserialize)]
struct SignIn {
    token: Option<String>,
}

/// `GET /signin?token=`: redeems a link for a browser session; without a
/// token, the page that says how to get one.
async fn sign_in(
    Extension(state): Extension<State>,
    Extension(scheme): Extension<Scheme>,
    Query(q): Query<SignIn>,
) -> Response {
    let Some(token) = q.token else {
        return html_page(html::sign_in_help());
    };
    if !auth::is_secret_text(&token) {
        return plain(
            StatusCode::FORBIDDEN,
            "this sign-in link is unknown, used or expired",
        );
    }
    let policy_dir = state.policy_dir();
    let began = state
        .write(move |txn| {
            let now = txn.at_us();
            let identity = match review::redeem_link(txn.conn(), &token, now)? {
                Ok(identity) => identity,
                Err(LinkRefusal::Invalid) => return Ok(SignedIn::BadLink),
            };
            // The link is spent either way; review may have been taken
            // away since it was made.
            if !may_review_now(&policy_dir, txn.conn(), &identity) {
                let event = Event::ReviewRefused {
                    identity: Some(identity),
                    reason: "no longer review = true, or suspended, at sign-in".into(),
                };
                txn.record(None, None, &event)?;
                return Ok(SignedIn::NotReviewer);
            }
            let session = review::begin_browser_session(txn.conn(), &identity, now)?;
            let event = Event::ReviewSignedIn { identity };
            txn.record(None, None, &event)?;
            Ok(SignedIn::Began(session))
        })
        .await;
    match began {
        Err(e) => unavailable(e),
        // Not recorded: anyone may send a bad token, and the chain is not
        // theirs to grow.
        Ok(SignedIn::BadLink) => plain(
            StatusCode::FORBIDDEN,
            "this sign-in link is unknown, used or expired",
        ),
        Ok(SignedIn::NotReviewer) => plain(StatusCode::FORBIDDEN, "this identity may not review"),
        Ok(SignedIn::Began(session)) => {
            let mut response = redirect("/sessions");
            let cookie = format!(
                "{COOKIE_NAME}={}; {}; Max-Age={}",
                session.cookie.reveal(),
                scheme.cookie_attributes(),
                SESSION_LIFETIME.as_secs()
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            response
        }
    }
}

/// The `csrf` field of a urlencoded form. Ours is hex, so a value that
/// needs decoding is not ours: it is taken as is and will not match.
pub(super) fn csrf_field(body: &[u8]) -> String {
    std::str::from_utf8(body)
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("csrf="))
        .unwrap_or("")
        .to_owned()
}

/// `POST /signout`: ends the browser session; same-origin with the
/// session's CSRF value only.
async fn sign_out(
    Extension(state): Extension<State>,
    Extension(scheme): Extension<Scheme>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (reviewer, cookie) = match require(&state, &headers, Kind::Api).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    if !auth::same_origin_post(&headers, &reviewer, &csrf_field(&body)) {
        return plain(
            StatusCode::FORBIDDEN,
            "refused: not a same-origin request of this session",
        );
    }
    let ended = state
        .write(move |txn| Ok(review::end_browser_session(txn.conn(), &cookie)?))
        .await;
    match ended {
        Err(e) => unavailable(e),
        Ok(()) => {
            let mut response = redirect("/signin");
            let clear = format!("{COOKIE_NAME}=; {}; Max-Age=0", scheme.cookie_attributes());
            if let Ok(value) = HeaderValue::from_str(&clear) {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            response
        }
    }
}
