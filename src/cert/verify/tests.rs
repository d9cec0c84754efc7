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
    let cert = sign(&ca, s);
    let verified = check(&ca, &cert).unwrap();
    assert_eq!(verified.key_id(), "agent-7");
    assert_eq!(verified.serial(), 7);
    assert_eq!(verified.fingerprint(), cert_fingerprint(&cert));
    assert!(verified.fingerprint().starts_with("SHA256:"));
    assert_ne!(verified.fingerprint(), verified.key_fingerprint());
    let uptime = crate::policy::CommandLine::parse("uptime").unwrap();
    assert!(verified.scope().exec.as_ref().unwrap().matches_any(&uptime));
}

#[test]
fn two_certs_with_the_same_serial_have_different_fingerprints() {
    let ca = generate_ed25519().unwrap();
    let (a, b) = (sign(&ca, spec()), sign(&ca, spec()));
    assert_eq!(a.serial(), b.serial());
    assert_ne!(cert_fingerprint(&a), cert_fingerprint(&b));
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
