//! The write-ahead permit: the only way to turn a decision into something
//! the upstream side or the proxy acts on is to commit it first.
//!
//! Invariant: a [`Recorded<T>`] is made only by a [`LiveSession`]'s
//! `authorize_*` / `record_*` methods, after the row that records `T` was
//! committed for that session and channel; its fields are private. So code
//! that needs a `Recorded<ExecDecision>` (starting a command upstream), a
//! `Recorded<ForwardDecision>` (connecting), a `Recorded<Exit>` (telling the
//! client how the command ended) cannot act on an unrecorded decision.
//!
//! A permit cannot be made outside this module:
//!
//! ```compile_fail,E0451
//! use portcullis::session::Recorded;
//! let forged: Recorded<u32> = Recorded { session: todo!(), channel: None, action: 1 };
//! ```
//!
//! nor can a decision be made outside the scope, so none can be wrapped:
//!
//! ```compile_fail,E0451
//! use portcullis::session::scope::ExecDecision;
//! let forged = ExecDecision { requested: String::new(), run: "rm -rf /".into(), instead_of: None };
//! ```
//!
//! ```compile_fail,E0451
//! use portcullis::session::scope::ForwardDecision;
//! let forged = ForwardDecision { host: "x".into(), port: 22, address: "127.0.0.1:22".parse().unwrap() };
//! ```
//!
//! [`LiveSession`]: super::LiveSession

use std::fmt;

use crate::audit::SessionId;

/// An action committed to the store; holding one is the licence to act.
#[derive(Debug)]
pub struct Recorded<T> {
    session: SessionId,
    channel: Option<u32>,
    action: T,
}

impl<T> Recorded<T> {
    pub(super) fn new(session: SessionId, channel: Option<u32>, action: T) -> Recorded<T> {
        Recorded {
            session,
            channel,
            action,
        }
    }

    pub fn action(&self) -> &T {
        &self.action
    }

    /// The session the action was recorded for.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The channel it was recorded on (`None`: session-wide).
    pub fn channel(&self) -> Option<u32> {
        self.channel
    }
}

/// How a command ended on the target, as the client is told.
#[derive(Debug, Clone)]
pub enum Exit {
    Status(u32),
    Signal {
        signal: russh::Sig,
        core_dumped: bool,
        error_message: String,
        lang_tag: String,
    },
}

/// A refused action: recorded (best effort: a refusal stands even when the
/// store cannot take it), with the one line the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    reason: String,
}

impl Denied {
    pub(super) fn new(reason: String) -> Denied {
        Denied { reason }
    }

    /// The one-line reason, for the client and the log.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The store could not commit what an action needs: it does not happen.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit store cannot record it ({0})")]
pub struct Unrecorded(pub(crate) String);

/// A request the bastion refused that is not a command, shell, forward or
/// sftp operation (those have event kinds of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusedRequest {
    Pty,
    Env(String),
    Subsystem(String),
    X11,
    AgentForwarding,
    SessionChannel,
    StreamLocal(String),
    StreamLocalForward(String),
    TcpipForward { address: String, port: u32 },
    Sftp,
}

impl fmt::Display for RefusedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = |s: &str| s.chars().take(80).collect::<String>();
        match self {
            RefusedRequest::Pty => f.write_str("pty-req"),
            RefusedRequest::Env(name) => write!(f, "env {}", cut(name)),
            RefusedRequest::Subsystem(name) => write!(f, "subsystem {}", cut(name)),
            RefusedRequest::X11 => f.write_str("x11"),
            RefusedRequest::AgentForwarding => f.write_str("auth-agent-req"),
            RefusedRequest::SessionChannel => f.write_str("session channel"),
            RefusedRequest::StreamLocal(path) => write!(f, "direct-streamlocal {}", cut(path)),
            RefusedRequest::StreamLocalForward(path) => {
                write!(f, "streamlocal-forward {}", cut(path))
            }
            RefusedRequest::TcpipForward { address, port } => {
                write!(f, "tcpip-forward {}:{port}", cut(address))
            }
            RefusedRequest::Sftp => f.write_str("sftp"),
        }
    }
}
