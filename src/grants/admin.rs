//! The operator's side of grants: the pending queue, approve, deny,
//! revoke, reinstate. These run as separate processes against the same
//! store as the server, each write one transaction with its chained event;
//! the server sees their effect within its poll interval.

use std::path::Path;

use anyhow::Context;
use rusqlite::Connection;

use super::{db, GrantError, RequestRecord, RevokeSelector};
use crate::audit::{Abort, DirectWriter};

/// Who is acting, for the record: the login that ran the command.
pub fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".to_string())
}

fn writer(store: &Path) -> anyhow::Result<DirectWriter> {
    DirectWriter::open(store).with_context(|| format!("opening the store {}", store.display()))
}

/// The refusal as the operator reads it.
fn said<T>(result: Result<T, Abort<GrantError>>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Requests (pending ones unless `all`); none when there is no store yet.
pub fn requests(store: &Path, all: bool) -> anyhow::Result<Vec<RequestRecord>> {
    if !store.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the store {}", store.display()))?;
    Ok(db::requests(&conn, !all)?)
}

/// Approves or denies request `id`: a grant request (pending for less than
/// `expiry`) or a held command.
/// Held commands (pending ones unless `all`); none without a store.
pub fn holds(store: &Path, all: bool) -> anyhow::Result<Vec<db::HoldRecord>> {
    if !store.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the store {}", store.display()))?;
    Ok(db::holds(&conn, !all)?)
}

pub fn decide(
    store: &Path,
    id: i64,
    approve: bool,
    reason: Option<&str>,
    expiry: std::time::Duration,
) -> anyhow::Result<()> {
    let by = operator();
    said(writer(store)?.transact(|txn| db::decide(txn, id, approve, &by, reason, expiry)))?;
    said_decided(id, approve, &by);
    Ok(())
}

/// The operator's line for a decision made.
pub fn said_decided(id: i64, approve: bool, by: &str) {
    let verb = if approve { "approved" } else { "denied" };
    eprintln!("portcullis: request {id} {verb} by {by}");
}

pub fn revoke(store: &Path, selector: RevokeSelector, reason: Option<&str>) -> anyhow::Result<()> {
    let by = operator();
    let id = said(writer(store)?.transact(|txn| db::revoke(txn, &selector, &by, reason)))?;
    eprintln!(
        "portcullis: revoked {selector} (revocation {id}); live sessions using it end within a second"
    );
    if let RevokeSelector::Identity(identity) = &selector {
        eprintln!(
            "portcullis: identity {identity} is suspended: no new grants or sessions until `portcullis reinstate {identity}`"
        );
    }
    Ok(())
}

pub fn reinstate(store: &Path, identity: &str) -> anyhow::Result<()> {
    let by = operator();
    said(writer(store)?.transact(|txn| db::reinstate(txn, identity, &by)))?;
    eprintln!("portcullis: identity {identity} reinstated by {by}");
    Ok(())
}
