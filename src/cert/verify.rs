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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::keyfile::generate_ed25519;
    use russh::keys::ssh_key::certificate::{Builder, CertType};
    use russh::keys::PrivateKey;

    const NOW: u64 = 1_800_000_000;

    struct Spec {
        cert_type: CertType,
        principals: Vec<&'static str>,
        critical: Vec<(&'static str, &'static str)>,
        window: (u64, u64),
    }

    fn spec() -> Spec {
        Spec {
            cert_type: CertType::User,
            principals: vec!["web1"],
            critical: vec![],
            window: (NOW - 60, NOW + 600),
        }
    }

    fn sign(ca: &PrivateKey, spec: Spec) -> Certificate {
        let subject = generate_ed25519().unwrap();
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rng(),
            subject.public_key().key_data().clone(),
            spec.window.0,
            spec.window.1,
        )
        .unwrap();
        b.serial(7)
            .unwrap()
            .cert_type(spec.cert_type)
            .unwrap()
            .key_id("agent-7")
            .unwrap();
        if spec.principals.is_empty() {
            // An empty list: "any principal" to OpenSSH's signer, refused here.
            b.all_principals_valid().unwrap();
        }
        for p in spec.principals {
            b.valid_principal(p).unwrap();
        }
        for (name, value) in spec.critical {
            b.critical_option(name, value).unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn check(ca: &PrivateKey, cert: &Certificate) -> Result<VerifiedCert, CertRefusal> {
        let trusted = TrustedCas::new(&[ca.public_key().clone()]);
        verify_user_cert(
            cert,
            "web1",
            Some("127.0.0.1".parse().unwrap()),
            &trusted,
            NOW,
        )
    }

    #[test]
    fn a_good_cert_verifies_with_its_scope() {
        let ca = generate_ed25519().unwrap();
        let mut s = spec();
        s.critical = vec![
            ("exec@portcullis", r#"["uptime"]"#),
            ("source-address", "127.0.0.0/8"),
        ];
        let verified = check(&ca, &sign(&ca, s)).unwrap();
        assert_eq!(verified.key_id, "agent-7");
        assert!(verified.scope.exec.unwrap().matches_any("uptime"));
    }

    #[test]
    fn each_bad_cert_is_refused_with_its_reason() {
        let ca = generate_ed25519().unwrap();
        let other_ca = generate_ed25519().unwrap();
        let refused = |cert: Certificate| check(&ca, &cert).unwrap_err();
        assert!(matches!(
            refused(sign(&other_ca, spec())),
            CertRefusal::UntrustedCa(_)
        ));
        let mut s = spec();
        s.cert_type = CertType::Host;
        assert!(matches!(
            refused(sign(&ca, s)),
            CertRefusal::HostCertificate
        ));
        let mut s = spec();
        s.window = (NOW + 10, NOW + 600);
        assert!(matches!(refused(sign(&ca, s)), CertRefusal::NotYetValid(_)));
        let mut s = spec();
        s.window = (NOW - 600, NOW);
        assert!(matches!(refused(sign(&ca, s)), CertRefusal::Expired(_)));
        let mut s = spec();
        s.principals = vec![];
        assert!(matches!(refused(sign(&ca, s)), CertRefusal::NoPrincipals));
        let mut s = spec();
        s.principals = vec!["db1"];
        assert!(matches!(
            refused(sign(&ca, s)),
            CertRefusal::WrongPrincipal(_)
        ));
        let mut s = spec();
        s.critical = vec![("no-touch-required", "")];
        assert!(matches!(
            refused(sign(&ca, s)),
            CertRefusal::UnknownCriticalOption(_)
        ));
        let mut s = spec();
        s.critical = vec![("source-address", "10.0.0.0/8")];
        assert!(matches!(
            refused(sign(&ca, s)),
            CertRefusal::WrongSourceAddress(_)
        ));
        let mut s = spec();
        s.critical = vec![("exec@portcullis", "uptime")];
        assert!(matches!(
            refused(sign(&ca, s)),
            CertRefusal::BadOption { .. }
        ));
    }

    #[test]
    fn a_tampered_cert_is_refused() {
        let ca = generate_ed25519().unwrap();
        let cert = sign(&ca, spec());
        let mut bytes = cert.to_bytes().unwrap();
        // Flip a byte of the serial (it sits inside the signed data).
        let serial = 7u64.to_be_bytes();
        let at = bytes.windows(8).position(|w| w == serial).unwrap();
        bytes[at + 7] ^= 0x01;
        let tampered = Certificate::from_bytes(&bytes).unwrap();
        assert!(matches!(
            check(&ca, &tampered).unwrap_err(),
            CertRefusal::BadSignature
        ));
    }
}
