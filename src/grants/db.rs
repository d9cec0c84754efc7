//! The grants tables: SQL for requests, issued grants, single-use claims,
//! revocations and suspensions (their schema is the store's, `audit`).
//!
//! Invariant: every write here runs inside an `audit::Txn` and chains the
//! event that says what happened in the same transaction, so a grant-state
//! change and its record commit together or not at all. Reads take any
//! connection and never write.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{GrantError, GrantScope, NewRequest, RequestRecord, RequestStatus};
use super::{Revocation, RevokeSelector};
use crate::audit::{Abort, Event, SessionId, Txn};

/// What identifies a presented certificate for revocation and single use.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub ca_fingerprint: String,
    pub serial: u64,
    pub key_id: String,
    pub task: Option<String>,
    /// Unix seconds; identity and task revocations cover certs valid from
    /// at or before the revocation.
    pub valid_after: u64,
    /// The cert's own fingerprint: what single use keys on.
    pub fingerprint: String,
    /// The fingerprint of the key it certifies.
    pub key_fingerprint: String,
    /// When portcullis issued it (unix micros), for a cert it issued: what
    /// identity and task revocations compare with, finer than
    /// `valid_after`'s seconds.
    pub issued_at_us: Option<i64>,
}

/// Why the grant state refuses a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertState {
    #[error("certificate {fingerprint} was revoked ({selector}) by {by}")]
    Revoked {
        fingerprint: String,
        selector: String,
        by: String,
    },
    #[error("identity {0:?} is suspended")]
    Suspended(String),
    #[error("certificate {0} is a single-session grant that was already used")]
    Spent(String),
}

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

type Op<T> = Result<T, Abort<GrantError>>;

fn refused<T>(e: GrantError) -> Op<T> {
    Err(Abort::Refused(e))
}

fn sql<T>(e: rusqlite::Error) -> Abort<T> {
    Abort::from(e)
}

/// Records a new request (and `grant.requested`); refused for a suspended
/// identity.
pub fn create_request(txn: &mut Txn<'_>, request: &NewRequest, client_addr: &str) -> Op<i64> {
    if is_suspended(txn.conn(), &request.identity).map_err(sql)? {
        return refused(GrantError::Suspended(request.identity.clone()));
    }
    let scope = serde_json::to_string(&request.scope).map_err(|e| Abort::Refused(e.into()))?;
    txn.conn()
        .execute(
            "INSERT INTO grant_requests (created_at_us, identity, role, task, reason, scope, pubkey, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
            params![
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
    let id = txn.conn().last_insert_rowid();
    let s = &request.scope;
    let event = Event::GrantRequested {
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
    };
    txn.record(None, None, &event)?;
    Ok(id)
}

/// Approves or denies a pending request (and chains `grant.decided`).
pub fn decide(txn: &mut Txn<'_>, id: i64, approve: bool, by: &str, reason: Option<&str>) -> Op<()> {
    let status = if approve { "approved" } else { "denied" };
    let changed = txn
        .conn()
        .execute(
            "UPDATE grant_requests SET status = ?1, decided_by = ?2, decided_at_us = ?3, decision_reason = ?4
             WHERE id = ?5 AND status = 'pending'",
            params![status, by, txn.at_us(), reason, id],
        )
        .map_err(sql)?;
    if changed != 1 {
        return match request(txn.conn(), id).map_err(Abort::Refused)? {
            None => refused(GrantError::NoSuchRequest(id)),
            Some(r) => refused(GrantError::NotPending {
                id,
                status: r.status,
            }),
        };
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

/// Stores an issued grant and marks its request issued (one cert per
/// request, even when two sessions deliver it at once).
pub(super) fn record_grant(txn: &mut Txn<'_>, grant: &IssuedGrant) -> Op<()> {
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
    if let Some(id) = grant.request_id {
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

/// Records a revocation (and `grant.revoked`); revoking an identity also
/// suspends it. Returns the revocation's id.
pub fn revoke(
    txn: &mut Txn<'_>,
    selector: &RevokeSelector,
    by: &str,
    reason: Option<&str>,
) -> Op<i64> {
    if *selector == RevokeSelector::Serial(0) {
        return refused(GrantError::SerialZero);
    }
    let (kind, value) = selector.kind_and_value();
    txn.conn()
        .execute(
            "INSERT INTO revocations (at_us, kind, value, by, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![txn.at_us(), kind, value, by, reason],
        )
        .map_err(sql)?;
    let id = txn.conn().last_insert_rowid();
    let event = Event::GrantRevoked {
        revocation_id: id,
        selector: selector.to_string(),
        by: by.to_owned(),
        reason: reason.map(str::to_owned),
    };
    txn.record(None, None, &event)?;
    if let RevokeSelector::Identity(identity) = selector {
        if !is_suspended(txn.conn(), identity).map_err(sql)? {
            suspend(txn, identity, by, reason)?;
        }
    }
    Ok(id)
}

fn suspend(txn: &mut Txn<'_>, identity: &str, by: &str, reason: Option<&str>) -> Op<()> {
    txn.conn()
        .execute(
            "INSERT INTO suspensions (identity, at_us, by, reason) VALUES (?1, ?2, ?3, ?4)",
            params![identity, txn.at_us(), by, reason],
        )
        .map_err(sql)?;
    let event = Event::IdentitySuspended {
        identity: identity.to_owned(),
        by: by.to_owned(),
        reason: reason.map(str::to_owned),
    };
    txn.record(None, None, &event)?;
    Ok(())
}

/// Lifts an identity's suspension (and chains `identity.reinstated`).
pub fn reinstate(txn: &mut Txn<'_>, identity: &str, by: &str) -> Op<()> {
    let changed = txn
        .conn()
        .execute(
            "UPDATE suspensions SET lifted_at_us = ?1, lifted_by = ?2
             WHERE identity = ?3 AND lifted_at_us IS NULL",
            params![txn.at_us(), by, identity],
        )
        .map_err(sql)?;
    if changed == 0 {
        return refused(GrantError::NotSuspended(identity.to_owned()));
    }
    let event = Event::IdentityReinstated {
        identity: identity.to_owned(),
        by: by.to_owned(),
    };
    txn.record(None, None, &event)?;
    Ok(())
}

/// Whether `identity` is suspended now.
pub fn is_suspended(conn: &Connection, identity: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM suspensions WHERE identity = ?1 AND lifted_at_us IS NULL)",
        [identity],
        |row| row.get(0),
    )
}

/// Whether the grant state lets `cert` in now (`Ok(Err(_))`: it does
/// not); `single_use`: whether its first session spends it.
pub fn cert_state(
    conn: &Connection,
    cert: &CertFacts,
    single_use: bool,
) -> rusqlite::Result<Result<(), CertState>> {
    if let Some(revocation) = revocation_of(conn, cert)? {
        return Ok(Err(CertState::Revoked {
            fingerprint: cert.fingerprint.clone(),
            selector: revocation.selector.to_string(),
            by: revocation.by,
        }));
    }
    if is_suspended(conn, &cert.key_id)? {
        return Ok(Err(CertState::Suspended(cert.key_id.clone())));
    }
    if single_use && claim_taken(conn, cert)? {
        return Ok(Err(CertState::Spent(cert.fingerprint.clone())));
    }
    Ok(Ok(()))
}

/// When portcullis issued the cert with this fingerprint, if it did.
pub fn issued_at(conn: &Connection, fingerprint: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT issued_at_us FROM grants WHERE cert_fingerprint = ?1",
        [fingerprint],
        |row| row.get(0),
    )
    .optional()
}

/// Claims the single use of `cert` for `session` (call in the transaction
/// that checked [`cert_state`]).
pub fn claim(txn: &mut Txn<'_>, cert: &CertFacts, session: SessionId) -> rusqlite::Result<()> {
    txn.conn().execute(
        "INSERT INTO cert_claims (cert_fingerprint, session_id, state, claimed_at_us)
         VALUES (?1, ?2, 'in_use', ?3)",
        params![cert.fingerprint, session.0, txn.at_us()],
    )?;
    Ok(())
}

fn claim_taken(conn: &Connection, cert: &CertFacts) -> rusqlite::Result<bool> {
    // Claims made before fingerprints (schema 2) name (CA, serial); serial
    // 0 names no one cert, so those never count.
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM cert_claims WHERE cert_fingerprint = ?1)
             OR EXISTS (SELECT 1 FROM cert_uses WHERE ca_fingerprint = ?2 AND serial = ?3 AND serial != 0)",
        params![cert.fingerprint, cert.ca_fingerprint, cert.serial as i64],
        |row| row.get(0),
    )
}

/// The revocation that covers `cert`, if any: SQL finds the candidates,
/// [`RevokeSelector::covers`] (the one rule) decides.
pub fn revocation_of(conn: &Connection, cert: &CertFacts) -> rusqlite::Result<Option<Revocation>> {
    let sql = format!(
        "{REVOCATION_COLUMNS} WHERE (kind = 'serial' AND value = ?1)
           OR (kind = 'identity' AND value = ?2)
           OR (kind = 'task' AND value = ?3)
           OR (kind = 'fingerprint' AND value IN (?4, ?5))
         ORDER BY id"
    );
    let task = cert.task.as_deref().unwrap_or("\u{0}no task");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(
        params![
            cert.serial.to_string(),
            cert.key_id,
            task,
            cert.fingerprint,
            cert.key_fingerprint
        ],
        revocation_from_row,
    )?;
    for row in rows {
        if let Ok(revocation) = row? {
            if revocation.selector.covers(cert, revocation.at_us) {
                return Ok(Some(revocation));
            }
        }
    }
    Ok(None)
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

/// Revocations newer than `after` (an id), oldest first.
pub fn revocations_after(conn: &Connection, after: i64) -> Result<Vec<Revocation>, GrantError> {
    let sql = format!("{REVOCATION_COLUMNS} WHERE id > ?1 ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([after], revocation_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

pub fn last_revocation_id(conn: &Connection) -> Result<i64, GrantError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM revocations", [], |r| {
            r.get(0)
        })?,
    )
}

const REQUEST_COLUMNS: &str =
    "SELECT id, created_at_us, identity, role, task, reason, scope, pubkey, status,
    decided_by, decided_at_us, decision_reason, serial FROM grant_requests";

type RowResult<T> = rusqlite::Result<Result<T, GrantError>>;

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

const REVOCATION_COLUMNS: &str = "SELECT id, at_us, kind, value, by, reason FROM revocations";

fn revocation_from_row(row: &rusqlite::Row<'_>) -> RowResult<Revocation> {
    let kind: String = row.get(2)?;
    let value: String = row.get(3)?;
    Ok((|| {
        Ok(Revocation {
            id: row.get(0)?,
            at_us: row.get(1)?,
            selector: RevokeSelector::from_kind(&kind, value)
                .ok_or(GrantError::Corrupt("revocation kind"))?,
            by: row.get(4)?,
            reason: row.get(5)?,
        })
    })())
}

/// A read-only connection to the grants tables, for the server's polling
/// and for questions asked off the async runtime.
#[derive(Clone)]
pub struct GrantsReader {
    conn: Arc<Mutex<Connection>>,
}

impl GrantsReader {
    /// Opens the store read-only; it must exist (the writer made it).
    pub fn open(path: &Path) -> Result<GrantsReader, GrantError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(GrantsReader {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on a blocking thread with the connection.
    pub async fn run<R, F>(&self, f: F) -> Result<R, GrantError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, GrantError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().map_err(|_| GrantError::Corrupt("lock"))?;
            f(&guard)
        })
        .await
        .map_err(|_| GrantError::Corrupt("worker"))?
    }
}
