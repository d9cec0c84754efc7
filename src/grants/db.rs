//! The grants tables: requests, issued grants, single-use claims and
//! revocations, in the same SQLite file as the audit store.
//!
//! Invariant: every state change is one SQL statement or one transaction,
//! so two processes (the server and an operator's CLI) can work on the same
//! file at once, and a single-use claim is won by exactly one session.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    GrantsError, IssuedGrant, NewRequest, RequestRecord, RequestStatus, Revocation, RevokeSelector,
};
use crate::clock;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS grant_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at_us   INTEGER NOT NULL,
    identity        TEXT NOT NULL,
    role            TEXT NOT NULL,
    task            TEXT,
    reason          TEXT,
    scope           TEXT NOT NULL,
    pubkey          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'issued')),
    decided_by      TEXT,
    decided_at_us   INTEGER,
    decision_reason TEXT,
    serial          INTEGER
);
CREATE INDEX IF NOT EXISTS grant_requests_status ON grant_requests(status);
CREATE TABLE IF NOT EXISTS grants (
    serial        INTEGER PRIMARY KEY,  -- the u64 serial's bit pattern
    request_id    INTEGER,
    identity      TEXT NOT NULL,
    role          TEXT NOT NULL,
    task          TEXT,
    reason        TEXT,
    scope         TEXT NOT NULL,
    valid_after   INTEGER NOT NULL,
    valid_before  INTEGER NOT NULL,
    approver      TEXT NOT NULL,
    issued_at_us  INTEGER NOT NULL,
    cert          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_identity ON grants(identity);
CREATE TABLE IF NOT EXISTS cert_uses (
    ca_fingerprint TEXT NOT NULL,
    serial         INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('in_use', 'consumed')),
    claimed_at_us  INTEGER NOT NULL,
    PRIMARY KEY (ca_fingerprint, serial)
);
CREATE TABLE IF NOT EXISTS revocations (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us  INTEGER NOT NULL,
    kind   TEXT NOT NULL CHECK (kind IN ('serial', 'identity', 'task')),
    value  TEXT NOT NULL,
    by     TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS revocations_value ON revocations(kind, value);
";

/// One connection to the grants tables.
pub struct GrantsDb {
    conn: Connection,
}

/// What identifies a presented certificate for revocation and single use.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub ca_fingerprint: String,
    pub serial: u64,
    pub key_id: String,
    pub task: Option<String>,
    /// Unix seconds; identity and task revocations cover certs issued
    /// (valid from) at or before the revocation.
    pub valid_after: u64,
}

impl GrantsDb {
    pub fn open(path: &Path) -> Result<GrantsDb, GrantsError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(GrantsDb { conn })
    }

    pub fn create_request(&self, request: &NewRequest) -> Result<i64, GrantsError> {
        self.conn.execute(
            "INSERT INTO grant_requests (created_at_us, identity, role, task, reason, scope, pubkey, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
            params![
                clock::now_us(),
                request.identity,
                request.role,
                request.task,
                request.reason,
                serde_json::to_string(&request.scope)?,
                request.pubkey,
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn request(&self, id: i64) -> Result<Option<RequestRecord>, GrantsError> {
        let sql = format!("{REQUEST_COLUMNS} WHERE id = ?1");
        self.conn
            .query_row(&sql, [id], request_from_row)
            .optional()?
            .transpose()
    }

    pub fn requests(&self, only_pending: bool) -> Result<Vec<RequestRecord>, GrantsError> {
        let filter = if only_pending {
            " WHERE status = 'pending'"
        } else {
            ""
        };
        let sql = format!("{REQUEST_COLUMNS}{filter} ORDER BY id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], request_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Approves or denies a pending request; refuses any other state.
    pub fn decide(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        reason: Option<&str>,
    ) -> Result<(), GrantsError> {
        let status = if approve { "approved" } else { "denied" };
        let changed = self.conn.execute(
            "UPDATE grant_requests SET status = ?1, decided_by = ?2, decided_at_us = ?3, decision_reason = ?4
             WHERE id = ?5 AND status = 'pending'",
            params![status, by, clock::now_us(), reason, id],
        )?;
        if changed == 1 {
            return Ok(());
        }
        match self.request(id)? {
            None => Err(GrantsError::NoSuchRequest(id)),
            Some(r) => Err(GrantsError::NotPending {
                id,
                status: r.status,
            }),
        }
    }

    /// Stores an issued grant, and marks its request issued.
    pub fn record_grant(&self, grant: &IssuedGrant) -> Result<(), GrantsError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO grants (serial, request_id, identity, role, task, reason, scope, valid_after,
                                 valid_before, approver, issued_at_us, cert)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                grant.serial as i64,
                grant.request_id,
                grant.identity,
                grant.role,
                grant.task,
                grant.reason,
                serde_json::to_string(&grant.scope)?,
                grant.valid_after as i64,
                grant.valid_before as i64,
                grant.approver,
                clock::now_us(),
                grant.cert,
            ],
        )?;
        if let Some(id) = grant.request_id {
            // One cert per request, even when two sessions deliver it at once.
            let changed = tx.execute(
                "UPDATE grant_requests SET status = 'issued', serial = ?1
                 WHERE id = ?2 AND status IN ('pending', 'approved')",
                params![grant.serial as i64, id],
            )?;
            if changed != 1 {
                return Err(GrantsError::AlreadyIssued(id));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The cert issued for a request, if any.
    pub fn cert_for_request(&self, id: i64) -> Result<Option<(String, u64)>, GrantsError> {
        Ok(self
            .conn
            .query_row(
                "SELECT cert, valid_before FROM grants WHERE request_id = ?1",
                [id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .optional()?)
    }

    /// Claims the single use of a cert: true for exactly one caller, ever.
    pub fn claim_single_use(&self, ca_fingerprint: &str, serial: u64) -> Result<bool, GrantsError> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO cert_uses (ca_fingerprint, serial, state, claimed_at_us)
             VALUES (?1, ?2, 'in_use', ?3)",
            params![ca_fingerprint, serial as i64, clock::now_us()],
        )?;
        Ok(inserted == 1)
    }

    pub fn consume_single_use(&self, ca_fingerprint: &str, serial: u64) -> Result<(), GrantsError> {
        self.conn.execute(
            "UPDATE cert_uses SET state = 'consumed' WHERE ca_fingerprint = ?1 AND serial = ?2",
            params![ca_fingerprint, serial as i64],
        )?;
        Ok(())
    }

    pub fn revoke(
        &self,
        selector: &RevokeSelector,
        by: &str,
        reason: Option<&str>,
    ) -> Result<i64, GrantsError> {
        let (kind, value) = selector.kind_and_value();
        self.conn.execute(
            "INSERT INTO revocations (at_us, kind, value, by, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![clock::now_us(), kind, value, by, reason],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The revocation that covers `cert`, if any.
    pub fn revocation_of(&self, cert: &CertFacts) -> Result<Option<Revocation>, GrantsError> {
        let issued_us = (cert.valid_after as i64).saturating_mul(1_000_000);
        let sql = format!(
            "{REVOCATION_COLUMNS} WHERE (kind = 'serial' AND value = ?1)
               OR (kind = 'identity' AND value = ?2 AND at_us >= ?4)
               OR (kind = 'task' AND value = ?3 AND at_us >= ?4)
             ORDER BY id LIMIT 1"
        );
        let task = cert.task.as_deref().unwrap_or("\u{0}no task");
        self.conn
            .query_row(
                &sql,
                params![cert.serial.to_string(), cert.key_id, task, issued_us],
                revocation_from_row,
            )
            .optional()?
            .transpose()
    }

    /// Revocations newer than `after` (an id), oldest first.
    pub fn revocations_after(&self, after: i64) -> Result<Vec<Revocation>, GrantsError> {
        let sql = format!("{REVOCATION_COLUMNS} WHERE id > ?1 ORDER BY id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([after], revocation_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    pub fn last_revocation_id(&self) -> Result<i64, GrantsError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM revocations", [], |r| {
                r.get(0)
            })?)
    }
}

const REQUEST_COLUMNS: &str =
    "SELECT id, created_at_us, identity, role, task, reason, scope, pubkey, status,
    decided_by, decided_at_us, decision_reason, serial FROM grant_requests";

type RowResult<T> = rusqlite::Result<Result<T, GrantsError>>;

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
            status: RequestStatus::parse(&status).ok_or(GrantsError::Corrupt("request status"))?,
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
                .ok_or(GrantsError::Corrupt("revocation kind"))?,
            by: row.get(4)?,
            reason: row.get(5)?,
        })
    })())
}

/// The server's handle on the grants tables: one connection behind a
/// mutex, used off the async runtime.
#[derive(Clone)]
pub struct SharedGrants {
    db: std::sync::Arc<std::sync::Mutex<GrantsDb>>,
}

impl SharedGrants {
    pub fn new(db: GrantsDb) -> Self {
        SharedGrants {
            db: std::sync::Arc::new(std::sync::Mutex::new(db)),
        }
    }

    /// Runs `f` on a blocking thread with the connection.
    pub async fn run<R, F>(&self, f: F) -> Result<R, GrantsError>
    where
        R: Send + 'static,
        F: FnOnce(&GrantsDb) -> Result<R, GrantsError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let guard = db.lock().map_err(|_| GrantsError::Corrupt("lock"))?;
            f(&guard)
        })
        .await
        .map_err(|_| GrantsError::Corrupt("worker"))?
    }
}
