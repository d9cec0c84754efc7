use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::PrivateKey;

use super::*;
use crate::cert::keyfile::generate_ed25519;

fn cert(ca: &PrivateKey, serial: u64, key_id: &str) -> Certificate {
    let subject = generate_ed25519().unwrap();
    let mut b = Builder::new_with_random_nonce(
        &mut rand::rng(),
        subject.public_key().key_data().clone(),
        1_800_000_000,
        1_800_000_600,
    )
    .unwrap();
    b.serial(serial).unwrap();
    b.cert_type(CertType::User).unwrap();
    b.key_id(key_id).unwrap();
    b.valid_principal("web1").unwrap();
    b.sign(ca).unwrap()
}

fn round_trip(builder: &KrlBuilder) -> Krl {
    Krl::parse(&builder.to_bytes(3, 1_800_000_000, "test")).unwrap()
}

#[test]
fn a_krl_revokes_what_it_names_and_nothing_else() {
    let ca = generate_ed25519().unwrap();
    let other_ca = generate_ed25519().unwrap();
    let by_serial = cert(&ca, 42, "agent-7");
    let same_serial_other_ca = cert(&other_ca, 42, "agent-7");
    let by_key_id = cert(&other_ca, 5, "agent-9");
    let by_key = cert(&ca, 6, "agent-8");
    let spared = cert(&ca, 43, "agent-7");
    let serial_zero = cert(&ca, 0, "agent-7");

    let mut builder = KrlBuilder::default();
    builder.serial(ca.public_key().key_data(), 42);
    builder.serial(ca.public_key().key_data(), 0);
    builder.key_id("agent-9");
    builder.key(by_key.public_key());
    let krl = round_trip(&builder);

    assert!(krl.revokes(&by_serial));
    assert!(!krl.revokes(&same_serial_other_ca), "a serial is per CA");
    assert!(krl.revokes(&by_key_id), "a key ID from any CA");
    assert!(krl.revokes(&by_key), "every cert of a revoked key");
    assert!(!krl.revokes(&spared));
    assert!(!krl.revokes(&serial_zero), "serial 0 names no cert");
}

#[test]
fn revoking_a_ca_key_revokes_its_certs() {
    let ca = generate_ed25519().unwrap();
    let mut builder = KrlBuilder::default();
    builder.key(ca.public_key().key_data());
    assert!(round_trip(&builder).revokes(&cert(&ca, 1, "agent-7")));
}

#[test]
fn an_empty_krl_revokes_nothing() {
    let ca = generate_ed25519().unwrap();
    let krl = round_trip(&KrlBuilder::default());
    assert!(!krl.revokes(&cert(&ca, 1, "agent-7")));
}

#[test]
fn every_truncation_and_every_flipped_byte_is_handled_without_panic() {
    let ca = generate_ed25519().unwrap();
    let mut builder = KrlBuilder::default();
    builder.serial(ca.public_key().key_data(), 42);
    builder.key_id("agent-9");
    builder.key(ca.public_key().key_data());
    let bytes = builder.to_bytes(1, 1, "");
    let header = 8 + 4 + 8 + 8 + 8 + 4 + 4;
    for len in 0..bytes.len() {
        let parsed = Krl::parse(&bytes[..len]);
        // Sections are optional: a cut between two is a smaller KRL.
        assert!(len >= header || parsed.is_err(), "a prefix of {len} bytes");
    }
    for i in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0xff;
        let _ = Krl::parse(&flipped);
    }
}

#[test]
fn signed_krls_and_unknown_critical_extensions_are_refused() {
    let mut bytes = KrlBuilder::default().to_bytes(1, 1, "");
    let mut signed = bytes.clone();
    signed.push(SECTION_SIGNATURE);
    assert_eq!(Krl::parse(&signed).err(), Some(KrlError::Signed));

    let name = b"future@example.org";
    let mut ext = Vec::new();
    ext.extend_from_slice(&(name.len() as u32).to_be_bytes());
    ext.extend_from_slice(name);
    ext.push(1);
    ext.extend_from_slice(&0u32.to_be_bytes());
    bytes.push(SECTION_EXTENSION);
    bytes.extend_from_slice(&(ext.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&ext);
    assert!(matches!(
        Krl::parse(&bytes),
        Err(KrlError::CriticalExtension(name)) if name == "future@example.org"
    ));
}

#[test]
fn a_bitmap_revokes_the_serials_of_its_set_bits() {
    let mut out = Vec::new();
    parse_bitmap_for_test(100, &[0b0000_0101, 0b1000_0000], &mut out);
    out.sort();
    assert_eq!(out, [(107, 107), (108, 108), (110, 110)]);
}

fn parse_bitmap_for_test(offset: u64, bitmap: &[u8], out: &mut Vec<(u64, u64)>) {
    super::parse::bitmap_serials(offset, bitmap, out).unwrap();
}
