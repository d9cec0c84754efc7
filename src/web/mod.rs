//! `portcullis web`: the reviewers' viewer of recorded sessions, and approvals.
//!
//! Invariant: deny by default. Every route that shows recorded data
//! requires a live browser session (a cookie made only by redeeming a
//! one-time link from the `review` login); every read of a session is a
//! chained `review.viewed` before its data is sent; every recorded value
//! is HTML-escaped; every state-changing route (sign-out, approve, deny)
//! requires the session's CSRF value and a same-origin request, and a
//! decision an identity with `approve = true` now. Connections are bounded
//! in number, time, TLS handshake and header size; bodies in size. Secrets
//! (tokens, cookies, the TLS key) are never logged. With `[web] tls_cert`
//! and `tls_key` it speaks HTTPS only and the cookie is `Secure`; without,
//! plain HTTP, meant for loopback or behind a TLS reverse proxy.
//! `portcullis web` runs it alone; `[web] serve = true` runs it inside
//! `portcullis serve`.

mod approvals;
mod assets;
mod auth;
mod html;
mod list;
mod live;
mod replica;
mod routes;
mod server;
mod session;
mod state;
#[cfg(test)]
mod tests;
mod tls;

use std::net::SocketAddr;

use crate::archive::Remote;
use crate::config::Config;

/// The viewer, started up to its listener: the store opened, the TLS key
/// loaded, the port bound. Anything that can fail at start has.
pub struct Viewer {
    listener: server::Listener,
    app: axum::Router,
}

impl Viewer {
    pub async fn bind(config: &Config, listen: SocketAddr) -> anyhow::Result<Viewer> {
        let state = state::State::open(
            &config.store,
            &config.policy_dir,
            config.limits.request_expiry,
            Remote::open(config)?,
        )?;
        let acceptor = config.web_tls.as_ref().map(tls::acceptor).transpose()?;
        let scheme = match acceptor {
            Some(_) => routes::Scheme::Https,
            None => routes::Scheme::Http,
        };
        let listener = server::Listener::bind(listen, acceptor).await?;
        Ok(Viewer {
            listener,
            app: routes::router(state, scheme),
        })
    }

    /// `http://ADDR` or `https://ADDR`, as bound.
    pub fn url(&self) -> String {
        let scheme = if self.listener.is_tls() {
            "https"
        } else {
            "http"
        };
        match self.listener.local_addr() {
            Ok(addr) => format!("{scheme}://{addr}"),
            Err(_) => format!("{scheme}://?"),
        }
    }

    /// Serves until the process is stopped.
    pub async fn run(self) -> anyhow::Result<()> {
        tracing::info!(url = %self.url(), "web viewer listening");
        self.listener.serve(self.app).await
    }
}

/// `portcullis web`: serves the viewer on `listen` until the process is
/// stopped.
pub async fn run(config: &Config, listen: SocketAddr) -> anyhow::Result<()> {
    Viewer::bind(config, listen).await?.run().await
}
