//! Certificate facts and single use: what admission asks of the grant
//! state, and the claim it makes.

use rusqlite::{params, Connection, OptionalExtension};

use super::revocations::{is_suspended, revocation_of};
use crate::audit::{SessionId, Txn};
use crate::grants::Revocation;

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

/// Whether the grant state lets `cert` in now (`Ok(Err(_))`: it does
/// not); `single_use`: whether its first session spends it.
pub fn cert_state(
    conn: &Connection,
    cert: &CertFacts,
    single_use: bool,
) -> rusqlite::Result<Result<(), CertState>> {
    let revocation = revocation_of(conn, cert)?;
    let suspended = is_suspended(conn, &cert.key_id)?;
    let spent = single_use && claim_taken(conn, cert)?;
    Ok(judge(cert, revocation, suspended, spent))
}

/// The grant-state rule of admission, whichever store holds the state: a
/// revocation covering the cert refuses first, then a suspension of its
/// identity, then a single use already spent.
pub fn judge(
    cert: &CertFacts,
    revocation: Option<Revocation>,
    suspended: bool,
    spent: bool,
) -> Result<(), CertState> {
    if let Some(revocation) = revocation {
        return Err(CertState::Revoked {
            fingerprint: cert.fingerprint.clone(),
            selector: revocation.selector.to_string(),
            by: revocation.by,
        });
    }
    if suspended {
        return Err(CertState::Suspended(cert.key_id.clone()));
    }
    if spent {
        return Err(CertState::Spent(cert.fingerprint.clone()));
    }
    Ok(())
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
