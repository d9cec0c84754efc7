//! The store's revocations as an OpenSSH KRL, for targets' `RevokedKeys`:
//! a revoked task cert is then refused by the target itself, even when
//! reached around the bastion.
//!
//! Invariant: every cert the store knows (issued here, in `grants`, or
//! seen at admission, in `sessions`) that a revocation covers (by the one
//! rule, `RevokeSelector::covers`) is in the KRL by its serial under its
//! CA and, when its key is known, by its key; a serial revocation is listed
//! under every trusted CA, a key fingerprint revocation by that key, and a
//! suspended identity by its key ID (as the bastion refuses every cert of
//! it until reinstated). A covered cert the KRL cannot name (serial 0, key
//! unknown) is counted, never silently dropped.

use std::io::Write;
use std::path::Path;

use rusqlite::Connection;
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};

use super::db::{self, CertFacts};
use super::{GrantError, Revocation, RevokeSelector};
use crate::cert::cert_fingerprint;
use crate::cert::krl::{fingerprint_hash, KrlBuilder};

/// A KRL ready to write, and what it could not express.
pub struct StoreKrl {
    pub bytes: Vec<u8>,
    /// Revocations in the store.
    pub revocations: usize,
    /// Covered certs with serial 0 and no known key.
    pub unnamed: usize,
}

/// A cert the store knows, with what a KRL can name it by.
struct KnownCert {
    facts: CertFacts,
    ca: Option<PublicKey>,
    key: Option<PublicKey>,
}

/// What is revoked: every revocation, oldest first, and the identities
/// suspended now.
pub struct Revoked {
    pub revocations: Vec<Revocation>,
    pub suspended: Vec<String>,
}

/// Builds the KRL of everything revoked in the store at `conn`; `cas` are
/// the CAs whose certs the bastion accepts.
pub fn build(conn: &Connection, cas: &[PublicKey], now_unix: u64) -> Result<StoreKrl, GrantError> {
    let revoked = Revoked {
        revocations: db::revocations_after(conn, 0)?,
        suspended: suspended(conn)?,
    };
    build_with(conn, cas, now_unix, &revoked)
}

/// Builds the KRL of `revoked` (kept elsewhere: the cluster's database),
/// naming the certs the store at `conn` knows.
pub fn build_with(
    conn: &Connection,
    cas: &[PublicKey],
    now_unix: u64,
    revoked: &Revoked,
) -> Result<StoreKrl, GrantError> {
    let revocations = &revoked.revocations;
    let known = known_certs(conn, cas)?;
    let mut krl = KrlBuilder::default();
    let mut unnamed = 0;
    for revocation in revocations {
        match &revocation.selector {
            RevokeSelector::Serial(serial) => {
                for ca in cas {
                    krl.serial(ca.key_data(), *serial);
                }
            }
            RevokeSelector::Fingerprint(fp) => {
                let is_cert = known.iter().any(|k| k.facts.fingerprint == *fp);
                if let (false, Some(hash)) = (is_cert, fingerprint_hash(fp)) {
                    krl.key_hash(hash);
                }
            }
            RevokeSelector::Identity(_) | RevokeSelector::Task(_) => {}
        }
        for cert in known
            .iter()
            .filter(|k| revocation.selector.covers(&k.facts, revocation.at_us))
        {
            let mut named = false;
            if let (Some(ca), true) = (&cert.ca, cert.facts.serial != 0) {
                krl.serial(ca.key_data(), cert.facts.serial);
                named = true;
            }
            if let Some(key) = &cert.key {
                krl.key(key.key_data());
                named = true;
            }
            unnamed += usize::from(!named);
        }
    }
    for identity in &revoked.suspended {
        krl.key_id(identity);
    }
    let version = u64::try_from(revocations.last().map_or(0, |r| r.id)).unwrap_or(0);
    let bytes = krl.to_bytes(version, now_unix, "portcullis revocations");
    Ok(StoreKrl {
        bytes,
        revocations: revocations.len(),
        unnamed,
    })
}

/// Writes `bytes` to `path` whole or not at all (a target reading it never
/// sees half a KRL): a temporary file beside it, then a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    // Targets' sshd reads it as another user: a KRL holds no secret.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn known_certs(conn: &Connection, cas: &[PublicKey]) -> Result<Vec<KnownCert>, GrantError> {
    let ca_by_fingerprint = |fp: &str| {
        cas.iter()
            .find(|ca| ca.fingerprint(HashAlg::Sha256).to_string() == fp)
            .cloned()
    };
    let mut known = Vec::new();
    let mut issued = conn.prepare("SELECT cert, task, issued_at_us FROM grants")?;
    let rows = issued.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (text, task, issued_at_us) = row?;
        let Ok(cert) = Certificate::from_openssh(text.trim()) else {
            return Err(GrantError::Corrupt("certificate in grants"));
        };
        let ca = PublicKey::from(cert.signature_key().clone());
        let key = PublicKey::from(cert.public_key().clone());
        known.push(KnownCert {
            facts: CertFacts {
                ca_fingerprint: ca.fingerprint(HashAlg::Sha256).to_string(),
                serial: cert.serial(),
                key_id: cert.key_id().to_owned(),
                task,
                valid_after: cert.valid_after(),
                fingerprint: cert_fingerprint(&cert),
                key_fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
                issued_at_us: Some(issued_at_us),
            },
            ca: Some(ca),
            key: Some(key),
        });
    }
    let mut seen = conn.prepare(
        "SELECT cert_serial, ca_fingerprint, COALESCE(cert_fingerprint, ''), key_id,
                task, MIN(started_at_us)
         FROM sessions GROUP BY cert_serial, ca_fingerprint, cert_fingerprint",
    )?;
    let rows = seen.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (serial, ca_fingerprint, fingerprint, key_id, task, started_at_us) = row?;
        if known.iter().any(|k| k.facts.fingerprint == fingerprint) {
            continue;
        }
        known.push(KnownCert {
            ca: ca_by_fingerprint(&ca_fingerprint),
            facts: CertFacts {
                // The serial's bit pattern, as stored.
                serial: serial as u64,
                ca_fingerprint,
                key_id,
                task,
                valid_after: 0,
                fingerprint,
                key_fingerprint: String::new(),
                // First seen then: it was issued no later.
                issued_at_us: Some(started_at_us),
            },
            key: None,
        });
    }
    Ok(known)
}

fn suspended(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT identity FROM suspensions WHERE lifted_at_us IS NULL ORDER BY identity",
    )?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    rows.collect()
}
