//! Shape checks for the small strings the policy is made of: names,
//! addresses and OpenSSH public keys (forward patterns: `open.rs`).
//!
//! Invariant: each check accepts only text that later code can use without
//! re-validating its shape; messages say what a good value looks like.

use std::net::Ipv6Addr;

use russh::keys::PublicKey;

/// Public key algorithms accepted for identity keys and pinned host keys.
/// Certificate types are absent on purpose: a pin or an identity is a key.
const KEY_ALGORITHMS: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Target, role and identity names become SSH login names and certificate
/// key ids, so they are kept to a set no tool misreads: `[A-Za-z0-9._-]`,
/// not starting with `-` (which `ssh` would take for an option).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "name {name:?} contains {c:?}; use only letters, digits, '.', '_' and '-'"
        ));
    }
    if name.starts_with('-') {
        return Err(format!("name {name:?} must not start with '-'"));
    }
    Ok(())
}

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    let fine = match split_host_port(address) {
        Some((Host::V6(_), port)) => port_number(port).is_some(),
        Some((Host::Plain(host), port)) => {
            !host.is_empty() && host.chars().all(is_host_char) && port_number(port).is_some()
        }
        None => false,
    };
    if fine {
        Ok(())
    } else {
        Err(format!(
            "address {address:?} is not host:port (e.g. 10.0.0.5:22, db.internal:22 or [::1]:22)"
        ))
    }
}

/// Parses `line` as `algorithm base64 [comment]` for a known algorithm:
/// the key, parsed once here so later code never meets a bad one.
pub(crate) fn check_public_key(line: &str) -> Result<PublicKey, String> {
    let mut words = line.split_whitespace();
    let (Some(algorithm), Some(blob)) = (words.next(), words.next()) else {
        return Err(
            "is not an OpenSSH public key (expected \"ssh-ed25519 AAAA... comment\")".to_owned(),
        );
    };
    if !KEY_ALGORITHMS.contains(&algorithm) {
        return Err(format!(
            "has unsupported key type {algorithm:?} (expected e.g. ssh-ed25519)"
        ));
    }
    let base64 = blob
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if !base64 || blob.len() < 16 || blob.len() % 4 != 0 {
        return Err("has a key blob that is not base64".to_owned());
    }
    PublicKey::from_openssh(&format!("{algorithm} {blob}"))
        .map_err(|e| format!("is not a valid {algorithm} key ({e})"))
}

pub(crate) enum Host<'a> {
    /// A bracketed host that parsed as an IPv6 address.
    V6(Ipv6Addr),
    /// Anything else, for the caller's own host rule.
    Plain(&'a str),
}

/// Split `host:port` or `[v6]:port`; `None` if there is no port, or the
/// brackets do not hold an IPv6 address.
pub(crate) fn split_host_port(text: &str) -> Option<(Host<'_>, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        let addr = host.parse::<Ipv6Addr>().ok()?;
        return Some((Host::V6(addr), port));
    }
    let (host, port) = text.rsplit_once(':')?;
    // A colon left in the host is an unbracketed IPv6 address: ambiguous,
    // and the host rule refuses it.
    Some((Host::Plain(host), port))
}

pub(crate) fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

pub(crate) fn port_number(text: &str) -> Option<u16> {
    // `parse` alone would accept a leading '+'.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|port| *port != 0)
}
