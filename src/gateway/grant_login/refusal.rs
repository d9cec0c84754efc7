//! Why a grant command gives no cert: one line for the requester, the same
//! line in the `grant.refused` row.

use crate::book::BookError;
use crate::grants::{request, GrantError};

#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Request(#[from] request::RequestError),
    #[error("too many requests from identity {identity}; try again in {wait_secs}s")]
    RateLimited { identity: String, wait_secs: u64 },
    #[error("stdin is too long for a public key")]
    StdinTooLong,
    #[error("stdin is too long for a request (at most {max} bytes)")]
    RequestTooLong { max: usize },
    #[error("stdin must be the task public key (one OpenSSH public key line)")]
    NotAKey,
    #[error("pubkey must be the task public key (one OpenSSH public key line)")]
    NotAKeyField,
    #[error("no request {id} for identity {identity}")]
    NotYours { id: i64, identity: String },
    #[error("request {id} was denied by {by}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Denied {
        id: i64,
        by: String,
        reason: Option<String>,
    },
    #[error("request {0} expired before an operator decided it; request again")]
    RequestExpired(i64),
    #[error("the cert of request {0} has expired; request a new grant")]
    Expired(i64),
    #[error("request {0} has no cert on record")]
    NoCert(i64),
    #[error("this replica holds no task CA key, so it issues no certs: request the grant from the signing node")]
    NotSigningHere,
    #[error("the audit store cannot record the request")]
    Unrecorded,
    #[error("the cluster database cannot be reached, so no request is taken")]
    ClusterUnavailable,
}

impl From<BookError> for Refusal {
    fn from(e: BookError) -> Refusal {
        match e {
            BookError::Refused(e) => Refusal::Grant(e),
            BookError::Store(e) => {
                tracing::error!(error = %e, "grant login: the store failed");
                Refusal::Unrecorded
            }
            BookError::Cluster(e) => {
                tracing::error!(error = %e, "grant login: the cluster database failed");
                Refusal::ClusterUnavailable
            }
        }
    }
}
