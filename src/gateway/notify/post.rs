//! One delivery attempt: a signed POST, on a thread of its own (the HTTP
//! client blocks), answered within `[notify] timeout`.
//!
//! Invariant: only a 2xx answer is a success. What the receiver sends is
//! read no further than its status line and headers (bounded), redirects
//! are not followed, no proxy from the environment is used, and a
//! failure's reason is our own short text: never the URL (it may carry a
//! token), the body or the secret.

use std::sync::Arc;

use ureq::Agent;

use super::sign::{signature, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::clock;
use crate::config::{NotifySecret, NotifyTarget};

/// The receiver's headers may be at most this large.
const MAX_RESPONSE_HEADERS: usize = 16 * 1024;

/// Why an attempt failed, as logged and recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(std::io::ErrorKind),
    /// An I/O error with the transport's own words (TLS alerts and the like).
    #[error("{0}: {1}")]
    Transport(std::io::ErrorKind, String),
    #[error("host not found")]
    HostNotFound,
    #[error("connection failed")]
    ConnectionFailed,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("malformed HTTP response")]
    BadResponse,
    #[error("the body could not be signed")]
    Unsigned,
    #[error("no thread to send from")]
    NoThread,
    #[error("request failed")]
    Other,
}

/// Sends notices to one receiver.
pub struct Poster {
    agent: Agent,
    url: String,
    secret: NotifySecret,
}

impl Poster {
    pub fn new(target: &NotifyTarget, secret: NotifySecret) -> Poster {
        let agent = Agent::config_builder()
            .timeout_global(Some(target.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .max_response_header_size(MAX_RESPONSE_HEADERS)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Poster {
            agent,
            url: target.url.clone(),
            secret,
        }
    }

    /// One attempt, off the async threads; resolves within the timeout.
    pub async fn attempt(self: &Arc<Poster>, body: Arc<Vec<u8>>) -> Result<(), Failure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let poster = self.clone();
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                let _ = reply.send(poster.post(&body));
            })
            .map_err(|_| Failure::NoThread)?;
        // A thread that died without an answer failed.
        answer.await.unwrap_or(Err(Failure::Other))
    }

    pub(super) fn post(&self, body: &[u8]) -> Result<(), Failure> {
        let timestamp = clock::now_unix();
        let signature = signature(&self.secret, timestamp, body).ok_or(Failure::Unsigned)?;
        let response = self
            .agent
            .post(self.url.as_str())
            .header("Content-Type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .send(body)
            .map_err(|e| failure_of(&e))?;
        // The body is dropped unread.
        let status = response.status().as_u16();
        match (200..300).contains(&status) {
            true => Ok(()),
            false => Err(Failure::Status(status)),
        }
    }
}

pub(super) fn failure_of(error: &ureq::Error) -> Failure {
    use ureq::Error as E;
    match error {
        E::StatusCode(status) => Failure::Status(*status),
        E::Timeout(_) => Failure::Timeout,
        E::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => Failure::Timeout,
        E::Io(e) => match e.get_ref() {
            Some(inner) => Failure::Transport(e.kind(), bounded(&inner.to_string())),
            None => Failure::Io(e.kind()),
        },
        E::HostNotFound => Failure::HostNotFound,
        E::ConnectionFailed => Failure::ConnectionFailed,
        E::Tls(why) => Failure::Tls(bounded(why)),
        E::Rustls(e) => Failure::Tls(bounded(&e.to_string())),
        E::Protocol(_) | E::LargeResponseHeader(..) | E::BodyExceedsLimit(_) => {
            Failure::BadResponse
        }
        _ => Failure::Other,
    }
}

/// One short line of a library's message.
fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(160).collect()
}
