//! Terminal, environment and shell decisions.
//!
//! Invariant: a [`PtyDecision`] exists only when the cert carries
//! `permit-pty` and a role grants `pty`; a [`ShellDecision`] only when, on
//! top of that, neither the cert nor the ceiling restricts commands (a
//! shell can run anything); an [`EnvDecision`] only for a variable like
//! sshd's `AcceptEnv TERM LANG LC_*` would pass.

use super::Scope;
use crate::session::setup::PtyRequest;

/// Longest accepted environment value, in bytes.
pub const MAX_ENV_VALUE: usize = 1024;

/// An interactive shell that may open.
#[derive(Debug, Clone)]
pub struct ShellDecision {
    pty: bool,
}

impl ShellDecision {
    /// Whether the shell runs on a granted terminal.
    pub fn on_terminal(&self) -> bool {
        self.pty
    }
}

/// A terminal the target may allocate, as the client asked for it.
#[derive(Debug, Clone)]
pub struct PtyDecision {
    request: PtyRequest,
}

impl PtyDecision {
    pub fn request(&self) -> &PtyRequest {
        &self.request
    }
}

/// An environment variable the target may see.
#[derive(Debug, Clone)]
pub struct EnvDecision {
    name: String,
    value: String,
}

impl EnvDecision {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Why a terminal, a variable or a shell is refused; worded for the
/// client's terminal and the audit row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminalRefusal {
    #[error("the certificate does not grant a terminal (no permit-pty)")]
    NoPermitPty,
    #[error("no role of identity {identity} on target {target} grants a terminal (pty = true)")]
    NoPtyRole { identity: String, target: String },
    #[error(
        "a shell needs unrestricted commands, but the certificate's exec@portcullis limits them"
    )]
    CertRestrictsCommands,
    #[error(
        "a shell needs unrestricted commands, but the policy limits those of identity {identity} on target {target}"
    )]
    PolicyRestrictsCommands { identity: String, target: String },
    #[error("environment variable {0:?} is not passed on (only TERM, LANG and LC_*, values up to 1 KiB)")]
    Environment(String),
}

/// Like sshd's `AcceptEnv TERM LANG LC_*`: the locale and terminal type
/// help an agent read output; anything else (`LD_PRELOAD`, `PATH`, ...)
/// could change what a command does on the target.
pub fn env_is_forwarded(name: &str, value: &str) -> bool {
    let known = name == "TERM" || name == "LANG" || name.starts_with("LC_");
    let plain_name = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    known && plain_name && value.len() <= MAX_ENV_VALUE
}

impl Scope {
    /// Whether a terminal may be requested (the handler's immediate answer
    /// to pty-req; the channel's decision is [`Scope::decide_pty`]).
    pub fn allows_pty(&self) -> bool {
        self.check_pty().is_ok()
    }

    /// Why a terminal is refused, if it is.
    pub fn pty_refusal(&self) -> Option<TerminalRefusal> {
        self.check_pty().err()
    }

    fn check_pty(&self) -> Result<(), TerminalRefusal> {
        if !self.cert_pty {
            return Err(TerminalRefusal::NoPermitPty);
        }
        if !self.ceiling.pty() {
            return Err(TerminalRefusal::NoPtyRole {
                identity: self.identity.clone(),
                target: self.ceiling.target().name.clone(),
            });
        }
        Ok(())
    }

    /// A terminal needs the cert's `permit-pty` and a role's `pty = true`.
    pub fn decide_pty(&self, request: PtyRequest) -> Result<PtyDecision, TerminalRefusal> {
        self.check_pty()?;
        Ok(PtyDecision { request })
    }

    /// A variable passes when sshd's usual `AcceptEnv` would pass it.
    pub fn decide_env(&self, name: &str, value: &str) -> Result<EnvDecision, TerminalRefusal> {
        if !env_is_forwarded(name, value) {
            let shown: String = name.chars().take(64).collect();
            return Err(TerminalRefusal::Environment(shown));
        }
        Ok(EnvDecision {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Decides whether an interactive shell may open. A shell can run any
    /// command, so it needs what a terminal needs and an exec scope that is
    /// the lone `"*"` on both sides: an allow-list never opens a shell.
    pub fn decide_shell(&self, on_terminal: bool) -> Result<ShellDecision, TerminalRefusal> {
        self.check_pty()?;
        if !self.ceiling.exec().is_unrestricted() {
            return Err(TerminalRefusal::PolicyRestrictsCommands {
                identity: self.identity.clone(),
                target: self.ceiling.target().name.clone(),
            });
        }
        if let Some(cert_exec) = &self.cert_exec {
            if !cert_exec.is_unrestricted() {
                return Err(TerminalRefusal::CertRestrictsCommands);
            }
        }
        Ok(ShellDecision { pty: on_terminal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_term_lang_and_lc_variables_pass() {
        for (name, ok) in [
            ("TERM", true),
            ("LANG", true),
            ("LC_ALL", true),
            ("LC_CTYPE", true),
            ("LD_PRELOAD", false),
            ("PATH", false),
            ("LANGUAGE", false),
            ("LC_=x", false),
            ("lang", false),
        ] {
            assert_eq!(env_is_forwarded(name, "C.UTF-8"), ok, "{name}");
        }
        assert!(!env_is_forwarded("LANG", &"x".repeat(MAX_ENV_VALUE + 1)));
    }
}
