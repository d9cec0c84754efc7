//! Writing a KRL.

use std::collections::{BTreeMap, BTreeSet};

use russh::keys::ssh_key::public::KeyData;

use super::*;

/// What a KRL will revoke; [`KrlBuilder::to_bytes`] writes it.
#[derive(Debug, Default)]
pub struct KrlBuilder {
    /// CA key blob (empty: any CA) -> serials and key IDs.
    by_ca: BTreeMap<Vec<u8>, (BTreeSet<u64>, BTreeSet<String>)>,
    sha256: BTreeSet<Vec<u8>>,
}

impl KrlBuilder {
    /// Revokes the cert with `serial` from `ca` (serial 0 cannot be named).
    pub fn serial(&mut self, ca: &KeyData, serial: u64) {
        if serial != 0 {
            self.by_ca.entry(key_blob(ca)).or_default().0.insert(serial);
        }
    }

    /// Revokes every cert with `key_id`, from any CA.
    pub fn key_id(&mut self, key_id: &str) {
        self.by_ca
            .entry(Vec::new())
            .or_default()
            .1
            .insert(key_id.to_owned());
    }

    /// Revokes a key (and so every cert of it) by its raw SHA-256 hash.
    pub fn key_hash(&mut self, sha256: Vec<u8>) {
        self.sha256.insert(sha256);
    }

    pub fn key(&mut self, key: &KeyData) {
        self.key_hash(sha256(&key_blob(key)));
    }

    pub fn is_empty(&self) -> bool {
        self.by_ca.is_empty() && self.sha256.is_empty()
    }

    /// The KRL file: `version` must grow with every change (sshd does not
    /// care, tools do), `generated` is unix seconds.
    pub fn to_bytes(&self, version: u64, generated: u64, comment: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&generated.to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        put_string(&mut out, b"");
        put_string(&mut out, comment.as_bytes());
        for (ca, (serials, key_ids)) in &self.by_ca {
            let mut section = Vec::new();
            put_string(&mut section, ca);
            put_string(&mut section, b"");
            if !serials.is_empty() {
                let list: Vec<u8> = serials.iter().flat_map(|s| s.to_be_bytes()).collect();
                section.push(CERT_SERIAL_LIST);
                put_string(&mut section, &list);
            }
            if !key_ids.is_empty() {
                let mut ids = Vec::new();
                for id in key_ids {
                    put_string(&mut ids, id.as_bytes());
                }
                section.push(CERT_KEY_ID);
                put_string(&mut section, &ids);
            }
            out.push(SECTION_CERTIFICATES);
            put_string(&mut out, &section);
        }
        if !self.sha256.is_empty() {
            // BTreeSet order is the big-endian numeric order the format asks for.
            let mut hashes = Vec::new();
            for hash in &self.sha256 {
                put_string(&mut hashes, hash);
            }
            out.push(SECTION_FINGERPRINT_SHA256);
            put_string(&mut out, &hashes);
        }
        out
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths come from our own small sets; a KRL never nears 4 GiB.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}
