//! `portcullis web`: the reviewers' viewer of recorded sessions, and approvals.
//!
//! Invariant: deny by default. Every route that shows recorded data
//! requires a live browser session (a cookie made only by redeeming a
//! one-time link from the `review` login); every read of a session is a
//! chained `review.viewed` before its data is sent; every recorded value
//! is HTML-escaped; every state-changing route (sign-out, approve, deny)
//! requires the session's CSRF value and a same-origin request, and a
//! decision an identity with `approve = true` now. Connections are bounded
//! in number, time and header size; bodies in size. Secrets (tokens,
//! cookies) are never logged. Plain HTTP: meant for loopback or behind a
//! TLS reverse proxy (the cookie is never `Secure` yet).

mod approvals;
mod assets;
mod auth;
mod html;
mod list;
mod live;
mod routes;
mod server;
mod session;
mod state;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use crate::config::Config;

/// Serves the viewer on `listen` until the process is stopped.
pub async fn run(config: &Config, listen: SocketAddr) -> anyhow::Result<()> {
    let state = state::State::open(
        &config.store,
        &config.policy_dir,
        config.limits.request_expiry,
    )?;
    server::serve(listen, routes::router(state)).await
}
