//! OpenSSH key revocation lists (KRL, the format of `ssh-keygen -k` and
//! sshd's `RevokedKeys`): [`KrlBuilder`] writes one so that targets refuse
//! revoked task certs even when reached around the bastion; [`Krl`] reads
//! an operator's own, to refuse at authentication what it revokes.
//!
//! Invariant: a KRL that cannot be read whole revokes everything (a reader
//! fails closed, as sshd does); a critical extension this code does not
//! know, or a signature section (OpenSSH refuses those too), is a failure
//! to read.

mod build;
mod file;
mod parse;
#[cfg(test)]
mod tests;

pub use build::KrlBuilder;
pub use file::RevokedKeys;
pub use parse::KrlError;

use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};

const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const FORMAT_VERSION: u32 = 1;

const SECTION_CERTIFICATES: u8 = 1;
const SECTION_EXPLICIT_KEY: u8 = 2;
const SECTION_FINGERPRINT_SHA1: u8 = 3;
const SECTION_SIGNATURE: u8 = 4;
const SECTION_FINGERPRINT_SHA256: u8 = 5;
const SECTION_EXTENSION: u8 = 255;

const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_SERIAL_RANGE: u8 = 0x21;
const CERT_SERIAL_BITMAP: u8 = 0x22;
const CERT_KEY_ID: u8 = 0x23;
const CERT_EXTENSION: u8 = 0x39;

/// What a KRL revokes, read from its file.
#[derive(Debug, Default)]
pub struct Krl {
    /// Per CA key blob (empty: any CA).
    certs: Vec<CertRevocations>,
    explicit_keys: Vec<Vec<u8>>,
    sha1: Vec<Vec<u8>>,
    sha256: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct CertRevocations {
    ca_key: Vec<u8>,
    serial_ranges: Vec<(u64, u64)>,
    key_ids: Vec<String>,
}

impl Krl {
    /// Whether `cert` is revoked: by serial or key ID under its CA (or any
    /// CA), by its key, or by its CA's key (as sshd checks both).
    pub fn revokes(&self, cert: &Certificate) -> bool {
        let ca = cert.signature_key();
        let ca_blob = key_blob(ca);
        let by_cert = self
            .certs
            .iter()
            .filter(|c| c.ca_key.is_empty() || c.ca_key == ca_blob)
            .any(|c| {
                // Serial 0 is "no serial": a KRL cannot name it (as in OpenSSH).
                let serial = cert.serial();
                let by_serial = serial != 0
                    && c.serial_ranges
                        .iter()
                        .any(|(lo, hi)| (*lo..=*hi).contains(&serial));
                by_serial || c.key_ids.iter().any(|id| id == cert.key_id())
            });
        by_cert || self.revokes_key(cert.public_key()) || self.revokes_key(ca)
    }

    fn revokes_key(&self, key: &KeyData) -> bool {
        let blob = key_blob(key);
        self.explicit_keys.contains(&blob)
            || self.sha256.iter().any(|h| *h == sha256(&blob))
            || self.sha1.iter().any(|h| *h == sha1(&blob))
    }
}

/// The wire form of a plain public key.
fn key_blob(key: &KeyData) -> Vec<u8> {
    PublicKey::from(key.clone()).to_bytes().unwrap_or_default()
}

fn sha256(blob: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(blob).to_vec()
}

fn sha1(blob: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(blob).to_vec()
}

/// The raw SHA-256 hash an OpenSSH `SHA256:...` fingerprint stands for.
pub fn fingerprint_hash(fingerprint: &str) -> Option<Vec<u8>> {
    let fingerprint: russh::keys::ssh_key::Fingerprint = fingerprint.parse().ok()?;
    (fingerprint.algorithm() == HashAlg::Sha256).then(|| fingerprint.as_bytes().to_vec())
}
