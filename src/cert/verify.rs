//! Verifying a user certificate presented to the bastion.
//!
//! russh has only checked that the cert's signature matches the key inside
//! it and that the client holds the cert's key. Everything that makes the
//! cert trustworthy is checked here, and a [`VerifiedCert`] exists only when
//! every check passed.

use std::net::IpAddr;
use std::path::PathBuf;

use russh::keys::ssh_key::{Certificate, Fingerprint};
use russh::keys::{HashAlg, PublicKey};

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
    pub key_id: String,
    pub serial: u64,
    pub ca_fingerprint: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub scope: CertScope,
}

impl VerifiedCert {
    /// `valid_before - valid_after`, the lifetime the role's max_ttl bounds.
    pub fn lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.valid_before.saturating_sub(self.valid_after))
    }
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
    Ok(VerifiedCert {
        key_id: cert.key_id().to_string(),
        serial: cert.serial(),
        ca_fingerprint: ca.to_string(),
        principals: principals.to_vec(),
        valid_after: cert.valid_after(),
        valid_before: cert.valid_before(),
        scope,
    })
}
