//! Scopes for unit tests, made the only way a scope is made: a policy
//! parsed from TOML text, a certificate signed and verified, the ceiling
//! asked of the policy.

use std::path::Path;

use super::Scope;
use crate::cert::verify::testing::verified;
use crate::cert::VerifiedCert;
use crate::policy::{Ceiling, Policy, RoleClaim};

/// Now, so that admitted sessions do not expire under a test.
fn now() -> u64 {
    crate::clock::now_unix()
}

/// Target `web1`; `roles` is the text of roles.toml (roles on `web1`),
/// all held by identity `agent-7`; the cert for `agent-7` on `web1` has
/// these critical options and extensions, and lives ten minutes.
pub(crate) fn scope(roles: &str, critical: &[(&str, &str)], extensions: &[(&str, &str)]) -> Scope {
    let (cert, ceiling) = cert_and_ceiling(roles, critical, extensions);
    Scope::new(&cert, ceiling, 1024)
}

/// The verified cert and its ceiling that [`scope`] makes a scope of.
pub(crate) fn cert_and_ceiling(
    roles: &str,
    critical: &[(&str, &str)],
    extensions: &[(&str, &str)],
) -> (VerifiedCert, Ceiling) {
    let names: Vec<String> = roles
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[roles."))
        .filter_map(|l| l.strip_suffix(']'))
        .map(|n| format!("{n:?}"))
        .collect();
    let identities = format!("[identities.agent-7]\nroles = [{}]\n", names.join(", "));
    let targets = "[targets.web1]\naddress = \"127.0.0.1:22\"\nuser = \"deploy\"\n";
    let policy = match Policy::parse(Path::new("/policy"), targets, roles, &identities) {
        Ok(policy) => policy,
        Err(errors) => panic!("test policy: {errors}"),
    };
    let cert = match verified("agent-7", &["web1"], critical, extensions, now(), 600) {
        Ok(cert) => cert,
        Err(e) => panic!("test cert: {e}"),
    };
    let claim = match &cert.scope().role {
        Some(role) => RoleClaim::Named(role),
        None => RoleClaim::Unnamed,
    };
    let ceiling = match policy.ceiling("agent-7", "web1", cert.lifetime(), claim) {
        Ok(ceiling) => ceiling,
        Err(refusal) => panic!("test ceiling: {refusal}"),
    };
    (cert, ceiling)
}
