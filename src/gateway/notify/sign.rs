//! The signature of a notice: HMAC-SHA256 keyed with `[notify]
//! secret_file`, over `TIMESTAMP.BODY` (the decimal unix seconds of the
//! `X-Portcullis-Timestamp` header, a full stop, the body's bytes).
//!
//! Invariant: the timestamp is inside the MAC, so a receiver that refuses
//! old timestamps cannot be fed a captured request again later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::NotifySecret;

pub const SIGNATURE_HEADER: &str = "X-Portcullis-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Portcullis-Timestamp";

/// `sha256=HEX` (lower-case hex of the MAC); `None` only if the key is
/// refused, which HMAC never does.
pub fn signature(secret: &NotifySecret, timestamp: u64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}
