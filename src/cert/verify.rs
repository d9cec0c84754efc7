//! Verifying a user certificate presented to the bastion.
//!
//! russh has only checked that the cert's signature matches the key inside
//! it and that the client holds the cert's key. Everything that makes the
//! cert trustworthy is checked here.
//!
//! Invariant: a [`VerifiedCert`] exists only when every check passed: its
//! fields are private and [`verify_user_cert`] is its only maker.
//!
//! ```compile_fail,E0451
//! let forged = portcullis::cert::VerifiedCert { key_id: "agent-7".into(), ..todo!() };
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use base64::Engine;
use russh::keys::ssh_key::{Algorithm, Certificate, Fingerprint};
use russh::keys::{HashAlg, PublicKey};
use sha2::{Digest, Sha256};

use super::keyfile::{self, KeyFileError};
use super::{CertRefusal, CertScope};
use crate::clock;

/// The CAs whose user certificates the bastion accepts.
#[derive(Debug, Clone)]
pub struct TrustedCas {
    fingerprints: Vec<Fingerprint>,
}

impl TrustedCas {
    pub fn new(keys: &[PublicKey]) -> Self {
        TrustedCas {
            fingerprints: keys
                .iter()
                .map(|k| k.fingerprint(HashAlg::Sha256))
                .collect(),
        }
    }

    pub fn load(files: &[PathBuf]) -> Result<Self, KeyFileError> {
        let keys = files
            .iter()
            .map(|f| keyfile::read_public(f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(&keys))
    }

    fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.fingerprints.contains(fingerprint)
    }
}

/// A certificate that passed every check, with what it carries.
#[derive(Debug, Clone)]
pub struct VerifiedCert {
    key_id: String,
    serial: u64,
    fingerprint: String,
    key_fingerprint: String,
    ca_fingerprint: String,
    principals: Vec<String>,
    valid_after: u64,
    valid_before: u64,
    scope: CertScope,
    /// The critical options and extensions as the cert carries them, for
    /// the record (`auth.accepted`); decisions use `scope`.
    critical_options: BTreeMap<String, String>,
    extensions: BTreeMap<String, String>,
}

impl VerifiedCert {
    /// The key id: the identity the cert is for.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    pub fn serial(&self) -> u64 {
        self.serial
    }
    /// The cert's own fingerprint ([`cert_fingerprint`]): what single use
    /// and revocation by fingerprint key on, unique per cert whatever its
    /// serial.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    /// The fingerprint of the key the cert certifies (`ssh-keygen -l`).
    pub fn key_fingerprint(&self) -> &str {
        &self.key_fingerprint
    }
    pub fn ca_fingerprint(&self) -> &str {
        &self.ca_fingerprint
    }
    pub fn principals(&self) -> &[String] {
        &self.principals
    }
    pub fn critical_options(&self) -> &BTreeMap<String, String> {
        &self.critical_options
    }
    pub fn extensions(&self) -> &BTreeMap<String, String> {
        &self.extensions
    }
    pub fn valid_after(&self) -> u64 {
        self.valid_after
    }
    pub fn valid_before(&self) -> u64 {
        self.valid_before
    }
    pub fn scope(&self) -> &CertScope {
        &self.scope
    }
    /// `valid_before - valid_after`, the lifetime the role's max_ttl bounds.
    pub fn lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.valid_before.saturating_sub(self.valid_after))
    }
}

/// `SHA256:` and the unpadded base64 of the SHA-256 of the cert's wire
/// encoding, as OpenSSH writes fingerprints. Two certs never share one
/// (each carries a random nonce), unlike serials.
pub fn cert_fingerprint(cert: &Certificate) -> String {
    let digest = Sha256::digest(cert.to_bytes().unwrap_or_default());
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Checks `cert` for a login as `login` from `peer`, at time `now`.
pub fn verify_user_cert(
    cert: &Certificate,
    login: &str,
    peer: Option<IpAddr>,
    trusted: &TrustedCas,
    now: u64,
) -> Result<VerifiedCert, CertRefusal> {
    let ca = cert.signature_key().fingerprint(HashAlg::Sha256);
    if !cert.cert_type().is_user() {
        return Err(CertRefusal::HostCertificate);
    }
    if !trusted.contains(&ca) {
        return Err(CertRefusal::UntrustedCa(ca.to_string()));
    }
    if now < cert.valid_after() {
        return Err(CertRefusal::NotYetValid(clock::format_unix(
            cert.valid_after(),
        )));
    }
    if now >= cert.valid_before() {
        return Err(CertRefusal::Expired(clock::format_unix(
            cert.valid_before(),
        )));
    }
    // Signature, CA and window once more in one library call, so a gap in
    // the checks above cannot let a tampered cert through.
    if cert.validate_at(now, [&ca]).is_err() {
        return Err(CertRefusal::BadSignature);
    }
    // OpenSSH refuses SHA-1 RSA signatures since 8.8; a CA signing with one
    // is as weak as the hash.
    if cert.signature().algorithm() == (Algorithm::Rsa { hash: None }) {
        return Err(CertRefusal::Sha1CaSignature);
    }
    let principals = cert.valid_principals();
    if principals.is_empty() {
        return Err(CertRefusal::NoPrincipals);
    }
    if !principals.iter().any(|p| p == login) {
        return Err(CertRefusal::WrongPrincipal(login.to_string()));
    }
    let scope = CertScope::from_cert(cert.critical_options(), cert.extensions())?;
    if let Some(allowed) = &scope.source_address {
        let permitted = peer.is_some_and(|ip| allowed.iter().any(|c| c.contains(ip)));
        if !permitted {
            let shown = peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
            return Err(CertRefusal::WrongSourceAddress(shown));
        }
    }
    if cert.key_id().is_empty() {
        return Err(CertRefusal::NoKeyId);
    }
    let key = PublicKey::from(cert.public_key().clone());
    Ok(VerifiedCert {
        key_id: cert.key_id().to_string(),
        serial: cert.serial(),
        fingerprint: cert_fingerprint(cert),
        key_fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        ca_fingerprint: ca.to_string(),
        principals: principals.to_vec(),
        valid_after: cert.valid_after(),
        valid_before: cert.valid_before(),
        scope,
        critical_options: options_of(cert.critical_options()),
        extensions: options_of(cert.extensions()),
    })
}

fn options_of(map: &russh::keys::ssh_key::certificate::OptionsMap) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Real certificates for unit tests and fuzz targets: signed by a fresh
/// CA and verified, so a test holds a [`VerifiedCert`] made the only way
/// one is made.
#[cfg(any(test, fuzzing))]
pub mod testing {
    use super::*;
    use crate::cert::keyfile::generate_ed25519;
    use russh::keys::ssh_key::certificate::{Builder, CertType};

    /// A user cert for `key_id` on `principals`, valid for `ttl` seconds
    /// from `now`, with these critical options and extensions, verified
    /// for a login as the first principal from 127.0.0.1.
    pub fn verified(
        key_id: &str,
        principals: &[&str],
        critical: &[(&str, &str)],
        extensions: &[(&str, &str)],
        now: u64,
        ttl: u64,
    ) -> Result<VerifiedCert, String> {
        let ca = generate_ed25519().map_err(|e| e.to_string())?;
        let subject = generate_ed25519().map_err(|e| e.to_string())?;
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rng(),
            subject.public_key().key_data().clone(),
            now,
            now + ttl,
        )
        .map_err(|e| e.to_string())?;
        b.serial(1)
            .and_then(|b| b.cert_type(CertType::User))
            .and_then(|b| b.key_id(key_id))
            .map_err(|e| e.to_string())?;
        for p in principals {
            b.valid_principal(*p).map_err(|e| e.to_string())?;
        }
        for (name, value) in critical {
            b.critical_option(*name, *value)
                .map_err(|e| e.to_string())?;
        }
        for (name, value) in extensions {
            b.extension(*name, *value).map_err(|e| e.to_string())?;
        }
        let cert = b.sign(&ca).map_err(|e| e.to_string())?;
        let trusted = TrustedCas::new(&[ca.public_key().clone()]);
        let login = principals.first().copied().unwrap_or("");
        verify_user_cert(&cert, login, "127.0.0.1".parse().ok(), &trusted, now + 1)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
