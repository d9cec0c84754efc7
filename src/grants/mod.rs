//! Just-in-time grants: requests, the one path that issues task certs,
//! approvals, single-use claims, revocations and suspensions, kept in the
//! store beside the audit log.
//!
//! Invariant: a grant never exceeds the role it is issued under (a request
//! may only narrow it), every issued cert is in the grants table and its
//! `grant.issued` event is chained in the same transaction before the cert
//! is handed out, and nothing is issued to a suspended identity. Every
//! write goes through an `audit::Txn`: the server's one writer, or the
//! operator's CLI under SQLite's write lock.

pub mod admin;
pub mod db;
pub mod issue;
pub mod krl;
pub mod ratelimit;
pub mod request;
pub mod review;

use serde::{Deserialize, Serialize};

pub use db::{CertFacts, CertState, GrantsReader};
pub use issue::{issue, order_for, order_for_request, IssueOrder, Issued};

/// Why a grant operation did not happen; Display is one line for the
/// requester's terminal, the operator and the audit row.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("grants store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("grants store: {0}")]
    Json(#[from] serde_json::Error),
    #[error("grants store is corrupt: bad {0}")]
    Corrupt(&'static str),
    #[error("no request {0}")]
    NoSuchRequest(i64),
    #[error("request {0} already has its cert: fetch it with status {0}")]
    AlreadyIssued(i64),
    #[error("request {id} is {status}, not pending")]
    NotPending { id: i64, status: RequestStatus },
    #[error("request {id} (a held command) is {status}, not pending")]
    HoldNotPending { id: i64, status: String },
    #[error("identity {0:?} is suspended; an operator lifts it with `portcullis reinstate {0}`")]
    Suspended(String),
    #[error("identity {0:?} is not suspended")]
    NotSuspended(String),
    #[error("identity {0:?} is not in the policy")]
    UnknownIdentity(String),
    #[error("role {0:?} is not in the policy")]
    UnknownRole(String),
    #[error("role {role:?} is not one identity {identity:?} holds")]
    RoleNotHeld { identity: String, role: String },
    #[error("the task key must not be an identity key: generate a fresh key per task")]
    IdentityKeyAsTaskKey,
    #[error(
        "serial 0 is what `ssh-keygen -s` gives every cert signed without -z, so it names no one cert: revoke by --fingerprint"
    )]
    SerialZero,
    #[error("signing the certificate failed: {0}")]
    Sign(String),
    #[error(transparent)]
    Narrow(#[from] request::RequestError),
    #[error("{0}")]
    Io(String),
}

/// What a grant allows: the role's scope, possibly narrowed by the request.
/// Fields added after the first version default to nothing, so a request
/// stored before them issues no more than it asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantScope {
    pub targets: Vec<String>,
    pub exec: Vec<String>,
    pub open: Vec<String>,
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub sftp: Vec<String>,
    #[serde(default)]
    pub capture: bool,
    pub pty: bool,
    pub ttl_secs: u64,
}

#[derive(Debug, Clone)]
pub struct NewRequest {
    pub identity: String,
    pub role: String,
    pub task: Option<String>,
    pub reason: Option<String>,
    pub scope: GrantScope,
    /// The task public key, as an OpenSSH line.
    pub pubkey: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
    Issued,
    /// Nobody decided it in time (`[limits] request_expiry`).
    Expired,
}

impl RequestStatus {
    pub fn parse(s: &str) -> Option<RequestStatus> {
        match s {
            "pending" => Some(RequestStatus::Pending),
            "approved" => Some(RequestStatus::Approved),
            "denied" => Some(RequestStatus::Denied),
            "issued" => Some(RequestStatus::Issued),
            "expired" => Some(RequestStatus::Expired),
            _ => None,
        }
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Issued => "issued",
            RequestStatus::Expired => "expired",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub id: i64,
    pub created_at_us: i64,
    pub identity: String,
    pub role: String,
    pub task: Option<String>,
    pub reason: Option<String>,
    pub scope: GrantScope,
    pub pubkey: String,
    pub status: RequestStatus,
    pub decided_by: Option<String>,
    pub decided_at_us: Option<i64>,
    pub decision_reason: Option<String>,
    pub serial: Option<u64>,
}

/// What `portcullis revoke` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "lowercase")]
pub enum RevokeSelector {
    Serial(u64),
    Identity(String),
    Task(String),
    /// A cert's own fingerprint, or its key's (every cert of that key).
    Fingerprint(String),
}

impl RevokeSelector {
    pub fn kind_and_value(&self) -> (&'static str, String) {
        match self {
            RevokeSelector::Serial(s) => ("serial", s.to_string()),
            RevokeSelector::Identity(i) => ("identity", i.clone()),
            RevokeSelector::Task(t) => ("task", t.clone()),
            RevokeSelector::Fingerprint(f) => ("fingerprint", f.clone()),
        }
    }

    pub fn from_kind(kind: &str, value: String) -> Option<RevokeSelector> {
        match kind {
            "serial" => value.parse().ok().map(RevokeSelector::Serial),
            "identity" => Some(RevokeSelector::Identity(value)),
            "task" => Some(RevokeSelector::Task(value)),
            "fingerprint" => Some(RevokeSelector::Fingerprint(value)),
            _ => None,
        }
    }

    /// Whether a cert falls under this revocation made at `at_us`: the one
    /// rule, used at admission and by the server's watch alike. Identity
    /// and task revocations cover the certs valid from before them.
    pub fn covers(&self, cert: &CertFacts, at_us: i64) -> bool {
        let issued_us = cert.issued_at_us.unwrap_or_else(|| {
            i64::try_from(cert.valid_after)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000)
        });
        let issued_before = issued_us <= at_us;
        match self {
            RevokeSelector::Serial(s) => *s == cert.serial,
            RevokeSelector::Identity(i) => *i == cert.key_id && issued_before,
            RevokeSelector::Task(t) => cert.task.as_ref() == Some(t) && issued_before,
            RevokeSelector::Fingerprint(f) => *f == cert.fingerprint || *f == cert.key_fingerprint,
        }
    }
}

impl std::fmt::Display for RevokeSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, value) = self.kind_and_value();
        write!(f, "{kind} {value}")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Revocation {
    pub id: i64,
    pub at_us: i64,
    pub selector: RevokeSelector,
    pub by: String,
    pub reason: Option<String>,
}
