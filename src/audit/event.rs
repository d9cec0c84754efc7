//! The audit event vocabulary (every kind and its fields are listed in
//! docs/CONTRACT.md).
//!
//! Invariant: an event is stored as its `kind` plus a JSON object of its
//! kind-specific fields (`detail`), and [`Event::decode`] of what
//! [`Event::encode`] produced gives back the same event. Stream bytes are not
//! events: they are `data` rows written by `Store::chunk`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// The `kind` of stream rows.
pub(crate) const DATA_KIND: &str = "data";

/// One audited happening. Serialized with its kind as `"kind"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Event {
    #[serde(rename = "auth.accepted")]
    AuthAccepted {
        key_id: String,
        serial: u64,
        ca_fingerprint: String,
        #[serde(default)]
        cert_fingerprint: Option<String>,
        /// The role the cert speaks for; `None`: the identity's auto roles.
        #[serde(default)]
        role: Option<String>,
        principals: Vec<String>,
        login: String,
        /// The cert's validity (unix seconds) and its critical options and
        /// extensions as carried (absent in events recorded before).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_after: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_before: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        critical_options: Option<BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extensions: Option<BTreeMap<String, String>>,
    },
    #[serde(rename = "auth.refused")]
    AuthRefused {
        login: String,
        key_id: Option<String>,
        serial: Option<u64>,
        ca_fingerprint: Option<String>,
        #[serde(default)]
        cert_fingerprint: Option<String>,
        client_addr: String,
        reason: String,
    },
    /// A command committed before it runs. With a forced command,
    /// `forced_command` is what runs, and `instead_of` names the shell or
    /// subsystem request it replaced (`command` is then empty). A held
    /// command that an operator approved names its request and approver.
    #[serde(rename = "exec.allowed")]
    ExecAllowed {
        command: String,
        forced_command: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instead_of: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approved_request: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approved_by: Option<String>,
    },
    /// A command outside the session's scope that a role's `ask` pattern
    /// holds for an operator's approval (request `request_id`), until
    /// `expires_at_us` at the latest.
    #[serde(rename = "command.held")]
    CommandHeld {
        request_id: i64,
        command: String,
        identity: String,
        target: String,
        role: Option<String>,
        task: Option<String>,
        expires_at_us: i64,
    },
    /// An operator approved a held command. `held_session` is the session
    /// that held it: the row belongs to it while it is open, else to none.
    #[serde(rename = "command.approved")]
    CommandApproved {
        request_id: i64,
        held_session: i64,
        by: String,
        reason: Option<String>,
    },
    #[serde(rename = "command.denied")]
    CommandDenied {
        request_id: i64,
        held_session: i64,
        by: String,
        reason: Option<String>,
    },
    /// A held command nobody decided (or, approved, ran) in time.
    #[serde(rename = "command.expired")]
    CommandExpired { request_id: i64, held_session: i64 },
    #[serde(rename = "exec.refused")]
    ExecRefused { command: String, reason: String },
    /// `request` is e.g. `pty-req`, `shell`, `subsystem:sftp`, `direct-tcpip`.
    #[serde(rename = "request.refused")]
    RequestRefused { request: String, reason: String },
    #[serde(rename = "upstream.failed")]
    UpstreamFailed { reason: String },
    /// A direct-tcpip forward (`ssh -L`, `-W`, `-J`), committed before the
    /// bastion connects: what the client asked for, the one address the
    /// bastion connects to, and where the client's end was.
    #[serde(rename = "forward.opened")]
    ForwardOpened {
        host: String,
        port: u16,
        address: String,
        originator: String,
    },
    #[serde(rename = "forward.refused")]
    ForwardRefused {
        host: String,
        port: u32,
        originator: String,
        reason: String,
    },
    /// The end of a forward (or of a remote-forwarded connection).
    #[serde(rename = "forward.closed")]
    ForwardClosed {
        bytes_to_destination: u64,
        bytes_from_destination: u64,
        duration_ms: u64,
        how: String,
    },
    /// A remote-forward listener (`ssh -R`), committed before it binds.
    #[serde(rename = "listen.opened")]
    ListenOpened { address: String },
    /// A connection accepted on a remote-forward listener, committed before
    /// it is handed to the client.
    #[serde(rename = "listen.accepted")]
    ListenAccepted { address: String, originator: String },
    /// The sftp subsystem, committed before it is opened on the target.
    #[serde(rename = "sftp.started")]
    SftpStarted { paths: Vec<String> },
    /// One sftp request, committed before it reaches the target. `path` is
    /// normalised; `to` is the second path of rename/link requests.
    #[serde(rename = "sftp.op")]
    SftpOp {
        op: String,
        path: String,
        to: Option<String>,
        flags: Option<String>,
    },
    /// An sftp request the bastion answered itself with permission denied.
    #[serde(rename = "sftp.refused")]
    SftpRefused {
        op: String,
        path: Option<String>,
        reason: String,
    },
    /// An sftp file handle closed: the bytes read and written through it.
    #[serde(rename = "sftp.closed")]
    SftpClosed {
        path: String,
        bytes_read: u64,
        bytes_written: u64,
    },
    #[serde(rename = "exit.status")]
    ExitStatus { status: u32 },
    #[serde(rename = "exit.signal")]
    ExitSignal { signal: String, core_dumped: bool },
    /// A terminal granted to a channel, with its size when requested.
    #[serde(rename = "pty.allowed")]
    PtyAllowed { term: String, cols: u32, rows: u32 },
    /// The client's terminal changed size (window-change).
    #[serde(rename = "pty.resize")]
    PtyResize { cols: u32, rows: u32 },
    /// An environment variable passed on to the target (TERM, LANG, LC_*).
    #[serde(rename = "env.allowed")]
    EnvAllowed { name: String, value: String },
    #[serde(rename = "shell.allowed")]
    ShellAllowed { pty: bool },
    #[serde(rename = "shell.refused")]
    ShellRefused { reason: String },
    /// A signal the client sent to the remote process.
    #[serde(rename = "signal")]
    Signal { signal: String },
    /// A command line reconstructed from the terminal screen when Enter was
    /// typed: what the agent appeared to run, not an authoritative record
    /// (the stream bytes are).
    #[serde(rename = "command.observed")]
    CommandObserved { line: String },
    /// Written only by `Store::begin_session`.
    #[serde(rename = "session.start")]
    SessionStart(NewSession),
    /// Written only by `Store::end_session` (and crash recovery).
    #[serde(rename = "session.end")]
    SessionEnd { reason: String },
    /// A request on the `grant` login (no session: identity keys reach no target).
    #[serde(rename = "grant.requested")]
    GrantRequested {
        request_id: i64,
        identity: String,
        role: String,
        task: Option<String>,
        reason: Option<String>,
        targets: Vec<String>,
        exec: Vec<String>,
        open: Vec<String>,
        ttl_secs: u64,
        client_addr: String,
    },
    #[serde(rename = "grant.issued")]
    GrantIssued {
        serial: u64,
        #[serde(default)]
        cert_fingerprint: Option<String>,
        request_id: Option<i64>,
        identity: String,
        role: String,
        task: Option<String>,
        valid_before: u64,
        approver: String,
    },
    /// An operator approved or denied a pending request.
    #[serde(rename = "grant.decided")]
    GrantDecided {
        request_id: i64,
        approved: bool,
        by: String,
        reason: Option<String>,
    },
    /// A pending grant request nobody decided in time.
    #[serde(rename = "grant.expired")]
    GrantExpired { request_id: i64 },
    #[serde(rename = "grant.refused")]
    GrantRefused {
        identity: String,
        client_addr: String,
        reason: String,
    },
    /// An abuse limit refused something (a connection, a session, a channel).
    #[serde(rename = "limit.hit")]
    LimitHit {
        limit: String,
        client_addr: String,
        identity: Option<String>,
        reason: String,
    },
    /// An operator revoked certs (from any process), committed with the
    /// revocation itself.
    #[serde(rename = "grant.revoked")]
    GrantRevoked {
        revocation_id: i64,
        selector: String,
        by: String,
        reason: Option<String>,
    },
    /// The server ended the live sessions a revocation covers.
    #[serde(rename = "revocation.applied")]
    RevocationApplied {
        revocation_id: i64,
        sessions_ended: Vec<i64>,
    },
    /// The server applied a new policy; the live sessions it no longer
    /// covers were ended. `restart_needed` lists changed config settings
    /// that apply only from the next start.
    #[serde(rename = "policy.reloaded")]
    PolicyReloaded {
        sessions_ended: Vec<i64>,
        #[serde(default)]
        restart_needed: Vec<String>,
    },
    /// A reload found a config or policy that does not load; the policy in
    /// force stays.
    #[serde(rename = "policy.reload_refused")]
    PolicyReloadRefused { error: String },
    /// No new grants or sessions for this identity until it is reinstated.
    #[serde(rename = "identity.suspended")]
    IdentitySuspended {
        identity: String,
        by: String,
        reason: Option<String>,
    },
    #[serde(rename = "identity.reinstated")]
    IdentityReinstated { identity: String, by: String },
    /// One failed attempt to POST a notice to `[notify] url`: the kind and
    /// seq of the event notified about, its request, and when (if ever)
    /// the next attempt is.
    #[serde(rename = "notify.failed")]
    NotifyFailed {
        event_kind: String,
        event_seq: i64,
        request_id: i64,
        attempt: u32,
        reason: String,
        retry_in_secs: Option<u64>,
    },
    /// A reviewer's identity key on the `review` login got a one-time
    /// sign-in link for the web viewer.
    #[serde(rename = "review.link_issued")]
    ReviewLinkIssued {
        identity: String,
        client_addr: String,
    },
    /// A sign-in link was redeemed: a browser session began.
    #[serde(rename = "review.signed_in")]
    ReviewSignedIn { identity: String },
    /// The `review` login or a sign-in was refused.
    #[serde(rename = "review.refused")]
    ReviewRefused {
        identity: Option<String>,
        reason: String,
    },
    /// A reviewer read a session (its page, its JSON, a download, the
    /// live view). Recorded outside the session (which may have ended):
    /// `session_viewed` names it, and `replica` the replica that recorded
    /// it when that is another one (`[cluster]`: read from the archive).
    #[serde(rename = "review.viewed")]
    ReviewViewed {
        identity: String,
        session_viewed: i64,
        /// Another replica's session; absent: this store's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replica: Option<String>,
        /// How it was read; absent in events recorded before it was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        form: Option<ViewForm>,
    },
}

/// How a reviewer read a session in the web viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewForm {
    /// The session's page.
    Page,
    /// `/api/sessions/ID`: the `show --json` object.
    Api,
    /// The asciicast download (also what the page's player plays).
    Asciicast,
    /// The JSON transcript download (`export --format json`).
    Transcript,
    /// The live view of an open session.
    Live,
}

impl ViewForm {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewForm::Page => "page",
            ViewForm::Api => "api",
            ViewForm::Asciicast => "asciicast",
            ViewForm::Transcript => "transcript",
            ViewForm::Live => "live",
        }
    }
}

/// The fields of a session, fixed when it begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// The identity (the cert's key id as the policy names it).
    pub identity: String,
    pub key_id: String,
    pub task: Option<String>,
    pub cert_serial: u64,
    pub ca_fingerprint: String,
    /// The cert's own fingerprint (absent in sessions of schema 2).
    #[serde(default)]
    pub cert_fingerprint: Option<String>,
    /// The role the cert spoke for, when it named one.
    #[serde(default)]
    pub role: Option<String>,
    pub client_addr: String,
    /// The target name (= login name).
    pub target: String,
    pub login: String,
}

impl Event {
    /// The stored `kind` string; equal to the serde tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AuthAccepted { .. } => "auth.accepted",
            Event::AuthRefused { .. } => "auth.refused",
            Event::ExecAllowed { .. } => "exec.allowed",
            Event::ExecRefused { .. } => "exec.refused",
            Event::CommandHeld { .. } => "command.held",
            Event::CommandApproved { .. } => "command.approved",
            Event::CommandDenied { .. } => "command.denied",
            Event::CommandExpired { .. } => "command.expired",
            Event::RequestRefused { .. } => "request.refused",
            Event::UpstreamFailed { .. } => "upstream.failed",
            Event::ForwardOpened { .. } => "forward.opened",
            Event::ForwardRefused { .. } => "forward.refused",
            Event::ForwardClosed { .. } => "forward.closed",
            Event::ListenOpened { .. } => "listen.opened",
            Event::ListenAccepted { .. } => "listen.accepted",
            Event::SftpStarted { .. } => "sftp.started",
            Event::SftpOp { .. } => "sftp.op",
            Event::SftpRefused { .. } => "sftp.refused",
            Event::SftpClosed { .. } => "sftp.closed",
            Event::ExitStatus { .. } => "exit.status",
            Event::ExitSignal { .. } => "exit.signal",
            Event::PtyAllowed { .. } => "pty.allowed",
            Event::PtyResize { .. } => "pty.resize",
            Event::EnvAllowed { .. } => "env.allowed",
            Event::ShellAllowed { .. } => "shell.allowed",
            Event::ShellRefused { .. } => "shell.refused",
            Event::Signal { .. } => "signal",
            Event::CommandObserved { .. } => "command.observed",
            Event::SessionStart(_) => "session.start",
            Event::SessionEnd { .. } => "session.end",
            Event::GrantRequested { .. } => "grant.requested",
            Event::GrantIssued { .. } => "grant.issued",
            Event::GrantRefused { .. } => "grant.refused",
            Event::GrantRevoked { .. } => "grant.revoked",
            Event::GrantDecided { .. } => "grant.decided",
            Event::GrantExpired { .. } => "grant.expired",
            Event::RevocationApplied { .. } => "revocation.applied",
            Event::PolicyReloaded { .. } => "policy.reloaded",
            Event::PolicyReloadRefused { .. } => "policy.reload_refused",
            Event::IdentitySuspended { .. } => "identity.suspended",
            Event::IdentityReinstated { .. } => "identity.reinstated",
            Event::LimitHit { .. } => "limit.hit",
            Event::NotifyFailed { .. } => "notify.failed",
            Event::ReviewLinkIssued { .. } => "review.link_issued",
            Event::ReviewSignedIn { .. } => "review.signed_in",
            Event::ReviewRefused { .. } => "review.refused",
            Event::ReviewViewed { .. } => "review.viewed",
        }
    }

    /// Splits the event into its kind and the JSON text of its other fields.
    pub(crate) fn encode(&self) -> Result<(&'static str, String), StoreError> {
        let mut value = serde_json::to_value(self)?;
        if let Some(fields) = value.as_object_mut() {
            fields.remove("kind");
        }
        Ok((self.kind(), serde_json::to_string(&value)?))
    }

    /// Rebuilds an event from a stored kind and detail.
    pub(crate) fn decode(kind: &str, detail: &str) -> Result<Event, serde_json::Error> {
        let mut value: serde_json::Value = serde_json::from_str(detail)?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert("kind".into(), serde_json::Value::String(kind.into()));
        }
        serde_json::from_value(value)
    }
}

/// Which direction of a channel a chunk of bytes travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to target (for a forward: client to destination).
    Stdin,
    /// Target to client (for a forward: destination to client).
    Stdout,
    /// Target to client, extended data 1.
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub fn parse(s: &str) -> Option<Stream> {
        match s {
            "stdin" => Some(Stream::Stdin),
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}
