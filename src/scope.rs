//! The effective scope of a session: the certificate's scope ∩ the policy
//! ceiling of the identity's roles.
//!
//! Invariant: an [`ExecDecision`], [`ForwardDecision`], [`SftpDecision`]
//! or [`ListenDecision`] can only be made here, and only for an action both
//! the certificate and the policy allow; proxy code needs one to act.

mod files;
mod forward;

pub use files::{ListenDecision, ListenRefusal, SftpDecision, SftpRefusal};
pub use forward::{is_special, ForwardDecision, ForwardRefusal};

use crate::cert::VerifiedCert;
use crate::policy::{Ceiling, ChannelGrants, OpenPatternSet, PatternSet, Target};

/// Longest command accepted, in bytes: no real command needs more, and a
/// bound keeps matching and recording cheap.
pub const MAX_COMMAND_LEN: usize = 32 * 1024;

#[derive(Debug, Clone)]
pub struct Scope {
    target: Target,
    identity: String,
    cert_exec: Option<PatternSet>,
    role_exec: PatternSet,
    force_command: Option<String>,
    /// Interactive terminals: the cert's `permit-pty` and a role's `pty`.
    pty: bool,
    /// The cert's `permit-port-forwarding`: required for any forward.
    permit_port_forwarding: bool,
    /// `open@portcullis`; `None`: the cert does not narrow forwards.
    cert_open: Option<OpenPatternSet>,
    role_open: OpenPatternSet,
    /// sftp paths, listeners and capture, from the roles.
    channels: ChannelGrants,
}

/// A command that may run upstream: `run` is what the target executes
/// (the forced command when the cert has one), `requested` what the client sent.
#[derive(Debug, Clone)]
pub struct ExecDecision {
    requested: String,
    run: String,
}

impl ExecDecision {
    pub fn requested(&self) -> &str {
        &self.requested
    }
    pub fn run(&self) -> &str {
        &self.run
    }
    pub fn is_forced(&self) -> bool {
        self.requested != self.run
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecRefusal {
    #[error("command is not valid UTF-8")]
    NotUtf8,
    #[error("command is longer than {MAX_COMMAND_LEN} bytes")]
    TooLong,
    #[error("command {0} is not allowed by the certificate's exec@portcullis")]
    NotInCert(String),
    #[error(
        "command {command} is not allowed by the policy for identity {identity} on target {target}"
    )]
    NotInPolicy {
        command: String,
        identity: String,
        target: String,
    },
}

impl Scope {
    pub fn new(cert: &VerifiedCert, ceiling: Ceiling) -> Scope {
        Scope {
            target: ceiling.target,
            identity: cert.key_id.clone(),
            cert_exec: cert.scope.exec.clone(),
            role_exec: ceiling.exec,
            force_command: cert.scope.force_command.clone(),
            pty: cert.scope.permit_pty && ceiling.pty,
            permit_port_forwarding: cert.scope.permit_port_forwarding,
            cert_open: cert.scope.open.clone(),
            // Checked when the policy loaded; a pattern that failed would
            // only be dropped, which narrows.
            role_open: ceiling
                .open
                .iter()
                .filter_map(|p| OpenPatternSet::parse(&[p]).ok())
                .fold(OpenPatternSet::default(), |mut set, one| {
                    set.extend(one);
                    set
                }),
            channels: ceiling.channels,
        }
    }

    /// Whether forward and sftp payload bytes are recorded.
    pub fn captures_payload(&self) -> bool {
        self.channels.capture
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Whether a PTY may be requested (both the cert and the policy grant it).
    pub fn allows_pty(&self) -> bool {
        self.pty
    }

    /// Decides whether the exec request `raw` may run.
    pub fn authorize_exec(&self, raw: &[u8]) -> Result<ExecDecision, ExecRefusal> {
        if raw.len() > MAX_COMMAND_LEN {
            return Err(ExecRefusal::TooLong);
        }
        let requested = std::str::from_utf8(raw).map_err(|_| ExecRefusal::NotUtf8)?;
        // OpenSSH's force-command: the client's command is replaced, and the
        // replacement must itself be within scope.
        let run = self.force_command.as_deref().unwrap_or(requested);
        if let Some(cert_exec) = &self.cert_exec {
            if !cert_exec.matches_any(run) {
                return Err(ExecRefusal::NotInCert(shown(run)));
            }
        }
        if !self.role_exec.matches_any(run) {
            return Err(ExecRefusal::NotInPolicy {
                command: shown(run),
                identity: self.identity.clone(),
                target: self.target.name.clone(),
            });
        }
        Ok(ExecDecision {
            requested: requested.to_string(),
            run: run.to_string(),
        })
    }
}

/// A command quoted for a one-line message: escaped, and cut to a length a
/// terminal line can hold.
fn shown(command: &str) -> String {
    const MAX_SHOWN: usize = 200;
    let quoted = format!("{command:?}");
    if quoted.chars().count() <= MAX_SHOWN {
        return quoted;
    }
    let cut: String = quoted.chars().take(MAX_SHOWN).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests;
