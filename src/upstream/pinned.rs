//! The russh client handler: accepts exactly the pinned host key.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{HashAlg, PublicKey, PublicKeyOrCertificate};

/// What the target showed when it did not match, kept for the error message.
pub struct Mismatch {
    pub seen: String,
    pub pinned: String,
}

pub struct PinnedHostKey {
    pinned: PublicKey,
    mismatch: Arc<Mutex<Option<Mismatch>>>,
}

impl PinnedHostKey {
    pub fn new(pinned: PublicKey, mismatch: Arc<Mutex<Option<Mismatch>>>) -> Self {
        PinnedHostKey { pinned, mismatch }
    }
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key_data = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data().clone(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key().clone(),
        };
        if key_data == *self.pinned.key_data() {
            return Ok(true);
        }
        let seen = PublicKey::from(key_data)
            .fingerprint(HashAlg::Sha256)
            .to_string();
        if let Ok(mut slot) = self.mismatch.lock() {
            *slot = Some(Mismatch {
                seen,
                pinned: self.pinned.fingerprint(HashAlg::Sha256).to_string(),
            });
        }
        Ok(false)
    }
}
