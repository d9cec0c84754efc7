//! Just-in-time grants: the self-service request flow over ssh, approval,
//! the record of every issued cert, single-use claims and revocation.
//!
//! Invariant: a grant never exceeds the role it is requested under (the
//! requester may only narrow it), and every issued cert is in the grants
//! table before it is handed out.

pub mod admin;
pub mod db;
pub mod ratelimit;
pub mod request;
pub mod service;

use serde::{Deserialize, Serialize};

pub use db::{CertFacts, GrantsDb, SharedGrants};

#[derive(Debug, thiserror::Error)]
pub enum GrantsError {
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
}

/// What a grant allows: the role's scope, possibly narrowed by the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantScope {
    pub targets: Vec<String>,
    pub exec: Vec<String>,
    pub open: Vec<String>,
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
}

impl RequestStatus {
    pub fn parse(s: &str) -> Option<RequestStatus> {
        match s {
            "pending" => Some(RequestStatus::Pending),
            "approved" => Some(RequestStatus::Approved),
            "denied" => Some(RequestStatus::Denied),
            "issued" => Some(RequestStatus::Issued),
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

/// A cert as the grants table keeps it.
#[derive(Debug, Clone)]
pub struct IssuedGrant {
    pub serial: u64,
    pub request_id: Option<i64>,
    pub identity: String,
    pub role: String,
    pub task: Option<String>,
    pub reason: Option<String>,
    pub scope: GrantScope,
    pub valid_after: u64,
    pub valid_before: u64,
    /// `auto`, or the operator who approved it.
    pub approver: String,
    pub cert: String,
}

/// What `portcullis revoke` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "lowercase")]
pub enum RevokeSelector {
    Serial(u64),
    Identity(String),
    Task(String),
}

impl RevokeSelector {
    pub fn kind_and_value(&self) -> (&'static str, String) {
        match self {
            RevokeSelector::Serial(s) => ("serial", s.to_string()),
            RevokeSelector::Identity(i) => ("identity", i.clone()),
            RevokeSelector::Task(t) => ("task", t.clone()),
        }
    }

    pub fn from_kind(kind: &str, value: String) -> Option<RevokeSelector> {
        match kind {
            "serial" => value.parse().ok().map(RevokeSelector::Serial),
            "identity" => Some(RevokeSelector::Identity(value)),
            "task" => Some(RevokeSelector::Task(value)),
            _ => None,
        }
    }

    /// Whether a cert falls under this revocation made at `at_us`.
    pub fn covers(&self, cert: &CertFacts, at_us: i64) -> bool {
        let issued_before = (cert.valid_after as i64).saturating_mul(1_000_000) <= at_us;
        match self {
            RevokeSelector::Serial(s) => *s == cert.serial,
            RevokeSelector::Identity(i) => *i == cert.key_id && issued_before,
            RevokeSelector::Task(t) => cert.task.as_ref() == Some(t) && issued_before,
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
