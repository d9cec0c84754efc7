//! The grants tables: SQL for requests, issued grants, single-use claims,
//! revocations and suspensions (their schema is the store's, `audit`).
//!
//! Invariant: every write here runs inside an `audit::Txn` and chains the
//! event that says what happened in the same transaction, so a grant-state
//! change and its record commit together or not at all. Reads take any
//! connection and never write.

mod claims;
mod held;
mod reader;
mod requests;
mod revocations;

use crate::audit::Abort;

use super::GrantError;

pub use claims::{cert_state, claim, issued_at, judge, CertFacts, CertState};
pub use held::{
    claim_approved, create_hold, decision_event, expire_holds, held_event, hold, hold_for_retry,
    holds, request_kind, unclaimable, undecidable_hold, HoldRecord, HoldStatus, NewHold,
    RequestKind,
};
pub use reader::GrantsReader;
pub(in crate::grants) use requests::record_grant;
pub use requests::{
    cert_for_request, create_request, decide, expire_requests, expired_before, request,
    requested_event, requests, undecidable, IssuedGrant,
};
pub use revocations::{
    first_covering, is_suspended, last_revocation_id, reinstate, revocation_of, revocations_after,
    revoke, NO_TASK,
};

type Op<T> = Result<T, Abort<GrantError>>;

fn refused<T>(e: GrantError) -> Op<T> {
    Err(Abort::Refused(e))
}

fn sql<T>(e: rusqlite::Error) -> Abort<T> {
    Abort::from(e)
}

type RowResult<T> = rusqlite::Result<Result<T, GrantError>>;
