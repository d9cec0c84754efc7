//! Signing certificates: task certs for agents, and the per-session
//! upstream certs the bastion uses to reach targets.
//!
//! Invariant: every cert signed here carries a bounded validity window and
//! a fresh random serial; restrictions are critical options, so a plain sshd
//! trusting the same CA refuses a task cert instead of granting it more. A
//! task cert names its role and carries every dimension of its scope
//! (commands, forwards, listeners, sftp paths; capture when on), so nothing
//! it does not name is left to the ceiling.

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Certificate, PublicKey};
use russh::keys::PrivateKey;

use super::keyfile::{self, KeyFileError};
use super::options::{
    CAPTURE_OPTION, EXEC_OPTION, LISTEN_OPTION, OPEN_OPTION, PERMIT_PORT_FORWARDING, PERMIT_PTY,
    ROLE_EXTENSION, SFTP_OPTION, TASK_EXTENSION,
};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing the certificate failed: {0}")]
    Sign(String),
    #[error(transparent)]
    Key(#[from] KeyFileError),
}

fn sign_error(e: impl std::fmt::Display) -> SignError {
    SignError::Sign(e.to_string())
}

/// Unguessable, never zero (zero means "no serial" to OpenSSH's KRL tools).
pub fn random_serial() -> u64 {
    loop {
        let serial: u64 = rand::random();
        if serial != 0 {
            return serial;
        }
    }
}

/// What a task certificate says.
#[derive(Debug, Clone)]
pub struct TaskCertSpec {
    pub key_id: String,
    pub role: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub exec: Vec<String>,
    pub open: Vec<String>,
    pub listen: Vec<String>,
    pub sftp: Vec<String>,
    pub capture: bool,
    pub permit_pty: bool,
    pub task: Option<String>,
}

impl TaskCertSpec {
    /// Forwards in either direction need OpenSSH's grant too.
    pub fn permit_port_forwarding(&self) -> bool {
        !self.open.is_empty() || !self.listen.is_empty()
    }
}

pub fn sign_task_cert(
    ca: &PrivateKey,
    subject: &PublicKey,
    spec: &TaskCertSpec,
) -> Result<Certificate, SignError> {
    let mut builder = Builder::new_with_random_nonce(
        &mut rand::rng(),
        subject.key_data().clone(),
        spec.valid_after,
        spec.valid_before,
    )
    .map_err(sign_error)?;
    builder
        .serial(random_serial())
        .and_then(|b| b.cert_type(CertType::User))
        .and_then(|b| b.key_id(spec.key_id.clone()))
        .map_err(sign_error)?;
    for principal in &spec.principals {
        builder
            .valid_principal(principal.clone())
            .map_err(sign_error)?;
    }
    for (option, list) in [
        (EXEC_OPTION, &spec.exec),
        (OPEN_OPTION, &spec.open),
        (LISTEN_OPTION, &spec.listen),
        (SFTP_OPTION, &spec.sftp),
    ] {
        let json = serde_json::to_string(list).map_err(sign_error)?;
        builder.critical_option(option, json).map_err(sign_error)?;
    }
    if spec.capture {
        builder
            .critical_option(CAPTURE_OPTION, "")
            .map_err(sign_error)?;
    }
    builder
        .extension(ROLE_EXTENSION, spec.role.clone())
        .map_err(sign_error)?;
    if spec.permit_pty {
        builder.extension(PERMIT_PTY, "").map_err(sign_error)?;
    }
    if spec.permit_port_forwarding() {
        builder
            .extension(PERMIT_PORT_FORWARDING, "")
            .map_err(sign_error)?;
    }
    if let Some(task) = &spec.task {
        builder
            .extension(TASK_EXTENSION, task.clone())
            .map_err(sign_error)?;
    }
    builder.sign(ca).map_err(sign_error)
}

/// A throwaway key and a short-lived cert for one upstream login.
pub struct UpstreamCredential {
    pub key: PrivateKey,
    pub cert: Certificate,
}

/// How long an upstream cert lives: long enough to log in, no longer.
pub const UPSTREAM_CERT_LIFETIME_SECS: u64 = 300;
/// Tolerated clock skew between the bastion and its targets.
const UPSTREAM_CLOCK_SKEW_SECS: u64 = 60;

/// What the upstream cert lets the bastion do on the target beyond exec.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamGrants {
    pub pty: bool,
}

pub fn issue_upstream_credential(
    ca: &PrivateKey,
    user: &str,
    key_id: &str,
    grants: UpstreamGrants,
    now: u64,
) -> Result<UpstreamCredential, SignError> {
    let key = keyfile::generate_ed25519()?;
    let mut builder = Builder::new_with_random_nonce(
        &mut rand::rng(),
        key.public_key().key_data().clone(),
        now.saturating_sub(UPSTREAM_CLOCK_SKEW_SECS),
        now.saturating_add(UPSTREAM_CERT_LIFETIME_SECS),
    )
    .map_err(sign_error)?;
    builder
        .serial(random_serial())
        .and_then(|b| b.cert_type(CertType::User))
        .and_then(|b| b.key_id(key_id.to_string()))
        .and_then(|b| b.valid_principal(user.to_string()))
        .map_err(sign_error)?;
    // sshd grants nothing a cert does not list: the target allocates a PTY
    // only for sessions whose scope allows one.
    if grants.pty {
        builder.extension(PERMIT_PTY, "").map_err(sign_error)?;
    }
    let cert = builder.sign(ca).map_err(sign_error)?;
    Ok(UpstreamCredential { key, cert })
}
