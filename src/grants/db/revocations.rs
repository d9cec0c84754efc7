//! Revocations and suspensions.

use rusqlite::{params, Connection};

use super::claims::CertFacts;
use super::{refused, sql, Op, RowResult};
use crate::audit::{Event, Txn};
use crate::grants::{GrantError, Revocation, RevokeSelector};

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
    let task = cert.task.as_deref().unwrap_or(NO_TASK);
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
    let mut candidates = Vec::new();
    for row in rows {
        if let Ok(revocation) = row? {
            candidates.push(revocation);
        }
    }
    Ok(first_covering(cert, candidates))
}

/// What a cert without a task is looked up by: no task revocation names it.
pub const NO_TASK: &str = "\u{0}no task";

/// Of the candidate revocations (oldest first), the first that covers
/// `cert` by [`RevokeSelector::covers`], the one rule.
pub fn first_covering(
    cert: &CertFacts,
    candidates: impl IntoIterator<Item = Revocation>,
) -> Option<Revocation> {
    candidates
        .into_iter()
        .find(|revocation| revocation.selector.covers(cert, revocation.at_us))
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

/// The newest revocation's id (0 when there is none).
pub fn last_revocation_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM revocations", [], |r| {
        r.get(0)
    })
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
