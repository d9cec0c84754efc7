//! SSH transport parameters both legs share: window, packet size,
//! algorithm preferences.
//!
//! Invariant: the agent's leg and the upstream leg use the same values
//! from here, so tuning one leg never silently diverges from the other.

use std::borrow::Cow;

use russh::cipher;
use russh::Preferred;

/// Flow-control window per channel: bounds what one channel can have in
/// flight, and so the memory a slow reader can pin.
pub const WINDOW_SIZE: u32 = 2 * 1024 * 1024;
/// Largest channel data packet a peer may send us (russh's upper limit):
/// sshd on the upstream leg then sends 64 KiB packets instead of 32 KiB,
/// halving the per-packet work of the splice and the recorder.
pub const MAX_PACKET_SIZE: u32 = 65535;

/// Ciphers for both legs where the CPU has AES and carry-less multiply
/// instructions: AES-GCM runs about ten times faster than
/// chacha20-poly1305 there (ring, measured in bench/RESULTS.md), and russh's
/// default list lacks aes128-gcm, so a client forcing it could not connect.
const AES_GCM_FIRST: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];
/// Without AES in hardware, chacha20-poly1305 is the fast (and constant
/// time) choice.
const CHACHA_FIRST: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// Algorithm preferences of both legs. SSH picks the client's first choice
/// that the server also offers, so on the agent's leg this list only says
/// what a client may choose; on the upstream leg the bastion is the client
/// and its order decides. Key exchange keeps russh's order: the
/// post-quantum hybrid `mlkem768x25519-sha256` first (what OpenSSH 9.9 and
/// later choose), then `curve25519-sha256`; russh has no
/// `sntrup761x25519-sha512`, so older OpenSSH clients get curve25519.
pub fn preferred_algorithms() -> Preferred {
    let cipher = if aes_in_hardware() {
        AES_GCM_FIRST
    } else {
        CHACHA_FIRST
    };
    Preferred {
        cipher: Cow::Borrowed(cipher),
        ..Preferred::default()
    }
}

fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}
