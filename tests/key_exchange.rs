//! The agent's leg offers the post-quantum hybrid key exchange
//! `mlkem768x25519-sha256`, which OpenSSH clients from 9.9 on choose first:
//! such an agent does not fall back to a classical exchange. (The OpenSSH
//! 9.2 client of the tests offers `sntrup761x25519-sha512` instead, which
//! russh does not implement; it gets `curve25519-sha256`.)
mod common;

use std::borrow::Cow;
use std::sync::Arc;

use russh::keys::{PublicKey, PublicKeyOrCertificate};
use russh::{client, kex, Preferred};

use common::*;

/// Accepts exactly the bastion's host key.
struct Pinned(PublicKey);

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data() == self.0.key_data(),
            PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

/// Connects offering only `algorithm` (and the usual extension markers);
/// true when the key exchange completed and the host key matched.
async fn exchange_with_only(b: &Bastion, algorithm: kex::Name) -> bool {
    let config = client::Config {
        preferred: Preferred {
            kex: Cow::Owned(vec![
                algorithm,
                kex::EXTENSION_SUPPORT_AS_CLIENT,
                kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
            ]),
            ..Preferred::default()
        },
        ..client::Config::default()
    };
    let host_key = PublicKey::from_openssh(&b.host_key()).expect("the bastion's host key");
    client::connect(Arc::new(config), ("127.0.0.1", b.port), Pinned(host_key))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_client_offering_only_mlkem768x25519_completes_the_key_exchange() {
    let b = Bastion::start(Setup::standard());
    assert!(exchange_with_only(&b, kex::MLKEM768X25519_SHA256).await);
    // The same client offering only what the bastion does not speak fails:
    // the success above is the hybrid exchange, not a fallback.
    assert!(!exchange_with_only(&b, kex::DH_G1_SHA1).await);
}
