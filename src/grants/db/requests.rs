//! Requests and issued grants.

use rusqlite::{params, Connection, OptionalExtension};

use std::time::Duration;

use super::held::{decide_hold, next_request_id, request_kind, RequestKind};
use super::revocations::is_suspended;
use super::{refused, sql, Op, RowResult};
use crate::audit::{Abort, Event, Txn};
use crate::grants::{GrantError, GrantScope, NewRequest, RequestRecord, RequestStatus};

/// A grant as the grants table keeps it.
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
    pub fingerprint: String,
}

/// Records a new request (and `grant.requested`); refused for a suspended
/// identity.
pub fn create_request(txn: &mut Txn<'_>, request: &NewRequest, client_addr: &str) -> Op<i64> {
    if is_suspended(txn.conn(), &request.identity).map_err(sql)? {
        return refused(GrantError::Suspended(request.identity.clone()));
    }
    let scope = serde_json::to_string(&request.scope).map_err(|e| Abort::Refused(e.into()))?;
    let id = next_request_id(txn, RequestKind::Grant)?;
    txn.conn()
        .execute(
            "INSERT INTO grant_requests (id, created_at_us, identity, role, task, reason, scope, pubkey, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
            params![
                id,
                txn.at_us(),
                request.identity,
                request.role,
                request.task,
                request.reason,
                scope,
                request.pubkey,
            ],
        )
        .map_err(sql)?;
    txn.record(None, None, &requested_event(id, request, client_addr))?;
    Ok(id)
}

/// `grant.requested` for `request`, recorded as request `id`.
pub fn requested_event(id: i64, request: &NewRequest, client_addr: &str) -> Event {
    let s = &request.scope;
    Event::GrantRequested {
        request_id: id,
        identity: request.identity.clone(),
        role: request.role.clone(),
        task: request.task.clone(),
        reason: request.reason.clone(),
        targets: s.targets.clone(),
        exec: s.exec.clone(),
        open: s.open.clone(),
        ttl_secs: s.ttl_secs,
        client_addr: client_addr.to_owned(),
    }
}

/// Approves or denies a pending request of either kind: a grant request
/// (chaining `grant.decided`) made less than `expiry` ago, or a held
/// command (see [`decide_hold`]).
pub fn decide(
    txn: &mut Txn<'_>,
    id: i64,
    approve: bool,
    by: &str,
    reason: Option<&str>,
    expiry: Duration,
) -> Op<()> {
    match request_kind(txn.conn(), id).map_err(Abort::Refused)? {
        Some(RequestKind::Command) => decide_hold(txn, id, approve, by, reason),
        Some(RequestKind::Grant) | None => decide_grant(txn, id, approve, by, reason, expiry),
    }
}

fn decide_grant(
    txn: &mut Txn<'_>,
    id: i64,
    approve: bool,
    by: &str,
    reason: Option<&str>,
    expiry: Duration,
) -> Op<()> {
    let status = if approve { "approved" } else { "denied" };
    let changed = txn
        .conn()
        .execute(
            "UPDATE grant_requests SET status = ?1, decided_by = ?2, decided_at_us = ?3, decision_reason = ?4
             WHERE id = ?5 AND status = 'pending' AND created_at_us > ?6",
            params![status, by, txn.at_us(), reason, id, expired_before(txn.at_us(), expiry)],
        )
        .map_err(sql)?;
    if changed != 1 {
        let now = request(txn.conn(), id).map_err(Abort::Refused)?;
        return refused(undecidable(id, now.as_ref()));
    }
    let event = Event::GrantDecided {
        request_id: id,
        approved: approve,
        by: by.to_owned(),
        reason: reason.map(str::to_owned),
    };
    txn.record(None, None, &event)?;
    Ok(())
}

/// Why grant request `id` could not be decided, from what it is now.
pub fn undecidable(id: i64, now: Option<&RequestRecord>) -> GrantError {
    match now {
        None => GrantError::NoSuchRequest(id),
        // Not swept yet, but past its time all the same.
        Some(r) if r.status == RequestStatus::Pending => GrantError::NotPending {
            id,
            status: RequestStatus::Expired,
        },
        Some(r) => GrantError::NotPending {
            id,
            status: r.status,
        },
    }
}

/// Requests made at or before this time are past `expiry`.
pub fn expired_before(now_us: i64, expiry: Duration) -> i64 {
    let expiry_us = i64::try_from(expiry.as_micros()).unwrap_or(i64::MAX);
    now_us.saturating_sub(expiry_us)
}

/// Marks every pending grant request older than `expiry` expired (with
/// `grant.expired`); returns how many.
pub fn expire_requests(txn: &mut Txn<'_>, expiry: Duration) -> Op<usize> {
    let before = expired_before(txn.at_us(), expiry);
    let due: Vec<i64> = {
        let mut stmt = txn
            .conn()
            .prepare(
                "SELECT id FROM grant_requests WHERE status = 'pending' AND created_at_us <= ?1",
            )
            .map_err(sql)?;
        let rows = stmt.query_map([before], |r| r.get(0)).map_err(sql)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql)?
    };
    for id in &due {
        txn.conn()
            .execute(
                "UPDATE grant_requests SET status = 'expired' WHERE id = ?1",
                [id],
            )
            .map_err(sql)?;
        txn.record(None, None, &Event::GrantExpired { request_id: *id })?;
    }
    Ok(due.len())
}

/// Stores an issued grant and marks its request issued when the request
/// is this store's (one cert per request, even when two sessions deliver
/// it at once).
pub(in crate::grants) fn record_grant(
    txn: &mut Txn<'_>,
    grant: &IssuedGrant,
    request_in_store: bool,
) -> Op<()> {
    let scope = serde_json::to_string(&grant.scope).map_err(|e| Abort::Refused(e.into()))?;
    txn.conn()
        .execute(
            "INSERT INTO grants (serial, request_id, identity, role, task, reason, scope, valid_after,
                                 valid_before, approver, issued_at_us, cert, cert_fingerprint)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                grant.serial as i64,
                grant.request_id,
                grant.identity,
                grant.role,
                grant.task,
                grant.reason,
                scope,
                grant.valid_after as i64,
                grant.valid_before as i64,
                grant.approver,
                txn.at_us(),
                grant.cert,
                grant.fingerprint,
            ],
        )
        .map_err(sql)?;
    if let (Some(id), true) = (grant.request_id, request_in_store) {
        let changed = txn
            .conn()
            .execute(
                "UPDATE grant_requests SET status = 'issued', serial = ?1
                 WHERE id = ?2 AND status IN ('pending', 'approved')",
                params![grant.serial as i64, id],
            )
            .map_err(sql)?;
        if changed != 1 {
            return refused(GrantError::AlreadyIssued(id));
        }
    }
    Ok(())
}

pub fn request(conn: &Connection, id: i64) -> Result<Option<RequestRecord>, GrantError> {
    let sql = format!("{REQUEST_COLUMNS} WHERE id = ?1");
    conn.query_row(&sql, [id], request_from_row)
        .optional()?
        .transpose()
}

pub fn requests(conn: &Connection, only_pending: bool) -> Result<Vec<RequestRecord>, GrantError> {
    let filter = if only_pending {
        " WHERE status = 'pending'"
    } else {
        ""
    };
    let sql = format!("{REQUEST_COLUMNS}{filter} ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], request_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// The cert issued for a request and its `valid_before`, if any.
pub fn cert_for_request(conn: &Connection, id: i64) -> Result<Option<(String, u64)>, GrantError> {
    Ok(conn
        .query_row(
            "SELECT cert, valid_before FROM grants WHERE request_id = ?1",
            [id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
        )
        .optional()?)
}

const REQUEST_COLUMNS: &str =
    "SELECT id, created_at_us, identity, role, task, reason, scope, pubkey, status,
    decided_by, decided_at_us, decision_reason, serial FROM grant_requests";

fn request_from_row(row: &rusqlite::Row<'_>) -> RowResult<RequestRecord> {
    let scope: String = row.get(6)?;
    let status: String = row.get(8)?;
    let serial: Option<i64> = row.get(12)?;
    Ok((|| {
        Ok(RequestRecord {
            id: row.get(0)?,
            created_at_us: row.get(1)?,
            identity: row.get(2)?,
            role: row.get(3)?,
            task: row.get(4)?,
            reason: row.get(5)?,
            scope: serde_json::from_str(&scope)?,
            pubkey: row.get(7)?,
            status: RequestStatus::parse(&status).ok_or(GrantError::Corrupt("request status"))?,
            decided_by: row.get(9)?,
            decided_at_us: row.get(10)?,
            decision_reason: row.get(11)?,
            serial: serial.map(|s| s as u64),
        })
    })())
}
