//! Any certificate bytes: decoding and `verify_user_cert` never panic, and a
//! certificate is accepted only when every check holds.
//!
//! Input, by its first byte:
//! - `0x00` then raw bytes: the SSH wire encoding of a certificate, as a
//!   client presents it; mutations mostly exercise the decoder and the
//!   order of the checks before the signature.
//! - anything else, then `principals 0xFF key_id 0xFF valid_after 0xFF
//!   valid_before 0xFF critical 0xFF extensions 0xFF cert_type`: a cert
//!   signed here by the trusted CA, so that the checks after the signature
//!   (principals, options, source-address, key id) see fuzzed values.
//!   Principals are split at ','; times are decimal seconds.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::cert::verify::verify_user_cert;
use portcullis::cert::{CertRefusal, CertScope, TrustedCas};
use portcullis_fuzz::{fields, options, text};
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PrivateKey};

/// The fixed "now": 2026-11-28 07:40:00Z.
const NOW: u64 = 1_795_851_600;
const LOGIN: &str = "web1";

struct Keys {
    ca: PrivateKey,
    subject: PrivateKey,
    trusted: TrustedCas,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ca = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let subject = PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
        let trusted = TrustedCas::new(&[ca.public_key().clone()]);
        Keys {
            ca,
            subject,
            trusted,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let cert = if *mode == 0 {
        match Certificate::from_bytes(rest) {
            Ok(cert) => cert,
            Err(_) => return,
        }
    } else {
        match signed(rest) {
            Some(cert) => cert,
            None => return,
        }
    };
    let peers = [
        Some(IpAddr::from([127, 0, 0, 1])),
        Some(IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1])),
        None,
    ];
    for peer in peers {
        check(&cert, peer);
    }
});

/// Verify and hold the result to the contract.
fn check(cert: &Certificate, peer: Option<IpAddr>) {
    let keys = keys();
    match verify_user_cert(cert, LOGIN, peer, &keys.trusted, NOW) {
        Ok(verified) => {
            assert!(cert.cert_type().is_user());
            assert_eq!(
                cert.signature_key().fingerprint(HashAlg::Sha256),
                keys.ca.public_key().fingerprint(HashAlg::Sha256)
            );
            assert!(cert.valid_after() <= NOW && NOW < cert.valid_before());
            assert!(verified.principals().iter().any(|p| p == LOGIN));
            assert!(!verified.key_id().is_empty());
            if let Some(allowed) = &verified.scope().source_address {
                let peer = peer.expect("a source-address cert admitted an unknown peer");
                assert!(allowed.iter().any(|c| c.contains(peer)));
            }
            // The verified scope is exactly what the cert's options say.
            let direct = CertScope::from_cert(cert.critical_options(), cert.extensions());
            assert!(direct.is_ok());
        }
        Err(refusal) => {
            // One line for the client's terminal and the audit row.
            let shown = refusal.to_string();
            assert!(!shown.contains('\n'), "{refusal:?}");
            if matches!(refusal, CertRefusal::UntrustedCa(_)) {
                assert_ne!(
                    cert.signature_key().fingerprint(HashAlg::Sha256),
                    keys.ca.public_key().fingerprint(HashAlg::Sha256)
                );
            }
        }
    }
}

/// A cert built from the fields and signed by the trusted CA; `None` when
/// the builder refuses the fields (e.g. valid_before < valid_after).
fn signed(data: &[u8]) -> Option<Certificate> {
    let [principals, key_id, after, before, critical, extensions, cert_type] = fields::<7>(data);
    let time = |bytes: &[u8], default: u64| text(bytes).parse::<u64>().unwrap_or(default);
    let keys = keys();
    let mut builder = Builder::new(
        [0u8; 16],
        keys.subject.public_key().key_data().clone(),
        time(after, NOW - 60),
        time(before, NOW + 600),
    )
    .ok()?;
    let cert_type = if cert_type == b"host" {
        CertType::Host
    } else {
        CertType::User
    };
    builder
        .serial(1)
        .and_then(|b| b.cert_type(cert_type))
        .and_then(|b| b.key_id(text(key_id)))
        .ok()?;
    let principals = text(principals);
    if !principals.is_empty() {
        for principal in principals.split(',') {
            builder.valid_principal(principal).ok()?;
        }
    } else {
        builder.all_principals_valid().ok()?;
    }
    for (name, value) in options(critical).iter() {
        builder.critical_option(name, value).ok()?;
    }
    for (name, value) in options(extensions).iter() {
        builder.extension(name, value).ok()?;
    }
    let cert = builder.sign(&keys.ca).ok()?;
    // Through the wire encoding, as the gateway receives it.
    Certificate::from_bytes(&cert.to_bytes().ok()?).ok()
}
