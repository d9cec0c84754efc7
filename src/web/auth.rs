//! Who is asking: the browser session from the cookie, and whether a
//! state-changing request comes from our own pages.

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::HeaderMap;

use super::state::{State, Unavailable};
use crate::audit::now_us;
use crate::grants::review::{self, Reviewer};

pub const COOKIE_NAME: &str = "portcullis_session";

/// The cookie's value, if the request carries a well-formed one: 64 hex
/// digits (anything else cannot be ours, and never reaches SQL).
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|value| is_secret_text(value))
}

/// The shape of a secret we hand out (grants::review::Secret).
pub fn is_secret_text(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the cookie (if any) says about the request.
pub enum Visitor {
    SignedIn { reviewer: Reviewer, cookie: String },
    Anonymous,
}

pub async fn visitor(state: &State, headers: &HeaderMap) -> Result<Visitor, Unavailable> {
    let Some(cookie) = session_cookie(headers) else {
        return Ok(Visitor::Anonymous);
    };
    let presented = cookie.clone();
    let found = state
        .read(move |reader| {
            Ok(review::browser_session(
                reader.conn(),
                &presented,
                now_us(),
            )?)
        })
        .await?;
    Ok(match found {
        Some(reviewer) if state.may_review(&reviewer.identity).await => {
            Visitor::SignedIn { reviewer, cookie }
        }
        _ => Visitor::Anonymous,
    })
}

/// Whether a POST may be acted on: it names no other site (`Origin`,
/// when sent, is this host; `Sec-Fetch-Site`, when sent, is not
/// cross-site) and it carries the session's CSRF value.
pub fn same_origin_post(headers: &HeaderMap, reviewer: &Reviewer, csrf: &str) -> bool {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_ok = match headers.get(ORIGIN) {
        None => true,
        Some(origin) => match (origin.to_str().ok(), host) {
            (Some(origin), Some(host)) => {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            }
            _ => false,
        },
    };
    let fetch_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|site| site == "same-origin" || site == "none");
    origin_ok && fetch_ok && !csrf.is_empty() && same_bytes(csrf, &reviewer.csrf)
}

/// Equality in time independent of where the values differ: the CSRF
/// value is compared as presented, not as a hash looked up by SQL.
fn same_bytes(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
