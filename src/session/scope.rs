//! The effective scope of a session: the certificate's scope ∩ the ceiling
//! of the role(s) it speaks for.
//!
//! Invariant: a [`Scope`] is made only by the session layer, from a
//! `VerifiedCert` and a `Ceiling` (both made only by their own modules),
//! and every decision type ([`ExecDecision`], [`ShellDecision`],
//! [`PtyDecision`], [`EnvDecision`], [`ForwardDecision`], [`ListenDecision`],
//! [`SftpDecision`]) has private fields and is made only here, and only for
//! an action both the certificate and the ceiling allow. Each dimension of
//! the cert is `None` only for a plain cert (the ceiling decides); an
//! explicit cert's empty dimension allows nothing. A forced command applies
//! to every channel kind: exec, shell and subsystem alike.
//!
//! Only the session layer makes a scope (at admission):
//!
//! ```compile_fail,E0624
//! fn widen(cert: &portcullis::cert::VerifiedCert, ceiling: portcullis::policy::Ceiling) {
//!     let _ = portcullis::session::Scope::new(cert, ceiling, 1 << 20);
//! }
//! ```

mod files;
mod forward;
mod terminal;

pub use files::{ListenDecision, ListenRefusal, SftpDecision, SftpRefusal};
pub use forward::{is_special, ForwardDecision, ForwardRefusal};
pub use terminal::{env_is_forwarded, EnvDecision, PtyDecision, ShellDecision, TerminalRefusal};

use crate::cert::VerifiedCert;
use crate::policy::{
    Ceiling, CommandLine, CommandRefusal, ListenAddress, OpenPatternSet, PathScope, PatternSet,
    Target,
};

#[derive(Debug, Clone)]
pub struct Scope {
    /// The policy's side: the target, the named role, what the roles allow.
    ceiling: Ceiling,
    identity: String,
    cert_exec: Option<PatternSet>,
    force_command: Option<String>,
    /// The cert's `permit-pty`.
    cert_pty: bool,
    /// Longest command accepted, in bytes (`[limits] max_command_bytes`):
    /// a bound keeps matching and recording cheap.
    max_command_bytes: usize,
    /// The cert's `permit-port-forwarding`: required for any forward.
    permit_port_forwarding: bool,
    cert_open: Option<OpenPatternSet>,
    cert_listen: Option<Vec<ListenAddress>>,
    cert_sftp: Option<PathScope>,
    /// The ceiling's or the cert's `capture`.
    capture: bool,
}

/// What an exec channel runs instead of a shell or a subsystem when the
/// cert forces a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Shell,
    Subsystem,
}

/// A command that may run upstream: `run` is what the target executes
/// (the forced command when the cert has one), `requested` what the client
/// sent (empty when it asked for a shell or a subsystem instead).
#[derive(Debug, Clone)]
pub struct ExecDecision {
    requested: String,
    run: String,
    instead_of: Option<String>,
}

impl ExecDecision {
    pub fn requested(&self) -> &str {
        &self.requested
    }
    pub fn run(&self) -> &str {
        &self.run
    }
    pub fn forced_command(&self) -> Option<&str> {
        (self.requested != self.run || self.instead_of.is_some()).then_some(self.run.as_str())
    }
    /// `shell` or `subsystem NAME` when a forced command replaced one.
    pub fn instead_of(&self) -> Option<&str> {
        self.instead_of.as_deref()
    }
}

/// A command outside the scope that an `ask` pattern of the ceiling's
/// roles holds for an operator's approval instead of refusing it. Made
/// only by [`Scope::holdable`]; it runs only once approved, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdable {
    command: String,
}

impl Holdable {
    /// The exact command, as the client sent it.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The permit's decision for the approved command: it runs as sent.
    pub(in crate::session) fn approved(&self) -> ExecDecision {
        ExecDecision {
            requested: self.command.clone(),
            run: self.command.clone(),
            instead_of: None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecRefusal {
    #[error("command is not valid UTF-8")]
    NotUtf8,
    #[error("command is longer than {0} bytes (max_command_bytes)")]
    TooLong(usize),
    #[error("command {command}: {refusal}")]
    ShellSyntax {
        command: String,
        refusal: CommandRefusal,
    },
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
    pub(super) fn new(cert: &VerifiedCert, ceiling: Ceiling, max_command_bytes: usize) -> Scope {
        let c = cert.scope();
        Scope {
            identity: cert.key_id().to_owned(),
            cert_exec: c.exec.clone(),
            force_command: c.force_command.clone(),
            cert_pty: c.permit_pty,
            max_command_bytes,
            permit_port_forwarding: c.permit_port_forwarding,
            cert_open: c.open.clone(),
            cert_listen: c.listen.clone(),
            cert_sftp: c.sftp.clone(),
            capture: ceiling.capture() || c.capture,
            ceiling,
        }
    }

    pub fn target(&self) -> &Target {
        self.ceiling.target()
    }

    /// The ceiling the session was admitted under (a reload checks that
    /// the new policy still covers it).
    pub fn ceiling(&self) -> &Ceiling {
        &self.ceiling
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The role the cert speaks for, when it names one.
    pub fn role(&self) -> Option<&str> {
        self.ceiling.named_role()
    }

    /// Whether forward and sftp payload bytes are recorded.
    pub fn captures_payload(&self) -> bool {
        self.capture
    }

    /// Whether the grant ends with this session (a role's `single_session`).
    pub fn single_session(&self) -> bool {
        self.ceiling.single_session()
    }

    /// The cert's `force-command`: with OpenSSH's meaning it replaces a
    /// shell and a subsystem request too.
    pub fn forced_command(&self) -> Option<&str> {
        self.force_command.as_deref()
    }

    /// Decides whether the exec request `raw` may run.
    pub fn decide_exec(&self, raw: &[u8]) -> Result<ExecDecision, ExecRefusal> {
        if raw.len() > self.max_command_bytes {
            return Err(ExecRefusal::TooLong(self.max_command_bytes));
        }
        let requested = std::str::from_utf8(raw).map_err(|_| ExecRefusal::NotUtf8)?;
        // OpenSSH's force-command: the client's command is replaced, and the
        // replacement must itself be within scope.
        let run = self.force_command.as_deref().unwrap_or(requested);
        self.check_command(run)?;
        Ok(ExecDecision {
            requested: requested.to_owned(),
            run: run.to_owned(),
            instead_of: None,
        })
    }

    /// Whether a command `decide_exec` refused may be held for approval:
    /// only when the refusal is that the command lies outside the cert's
    /// or the policy's patterns (never its size, encoding or syntax), the
    /// cert forces no command, and an `ask` pattern allows it.
    pub fn holdable(&self, raw: &[u8], refusal: &ExecRefusal) -> Option<Holdable> {
        if !matches!(
            refusal,
            ExecRefusal::NotInCert(_) | ExecRefusal::NotInPolicy { .. }
        ) || self.force_command.is_some()
        {
            return None;
        }
        let command = std::str::from_utf8(raw).ok()?;
        let ask = self.ceiling.ask();
        let asked = ask.is_unrestricted()
            || CommandLine::parse(command).is_ok_and(|line| ask.matches_any(&line));
        asked.then(|| Holdable {
            command: command.to_owned(),
        })
    }

    /// Decides the forced command that runs instead of a shell or a
    /// subsystem; `None` when the cert forces none.
    pub fn decide_forced(
        &self,
        replaced: Replaced,
        name: &str,
    ) -> Option<Result<ExecDecision, ExecRefusal>> {
        let run = self.force_command.as_deref()?;
        let instead_of = match replaced {
            Replaced::Shell => "shell".to_owned(),
            Replaced::Subsystem => format!("subsystem {}", shown_name(name)),
        };
        Some(self.check_command(run).map(|()| ExecDecision {
            requested: String::new(),
            run: run.to_owned(),
            instead_of: Some(instead_of),
        }))
    }

    /// The command must be allowed by the cert's patterns (when it has
    /// any) and the ceiling's. A set holding the lone `*` allows anything;
    /// otherwise the command must parse as plain words.
    fn check_command(&self, run: &str) -> Result<(), ExecRefusal> {
        let parsed = CommandLine::parse(run);
        let allows = |set: &PatternSet| -> Result<bool, ExecRefusal> {
            if set.is_unrestricted() {
                return Ok(true);
            }
            match &parsed {
                Ok(line) => Ok(set.matches_any(line)),
                Err(refusal) => Err(ExecRefusal::ShellSyntax {
                    command: shown(run),
                    refusal: refusal.clone(),
                }),
            }
        };
        if let Some(cert_exec) = &self.cert_exec {
            if !allows(cert_exec)? {
                return Err(ExecRefusal::NotInCert(shown(run)));
            }
        }
        if !allows(self.ceiling.exec())? {
            return Err(ExecRefusal::NotInPolicy {
                command: shown(run),
                identity: self.identity.clone(),
                target: self.ceiling.target().name.clone(),
            });
        }
        Ok(())
    }
}

/// A command quoted for a one-line message: escaped, and cut to a length a
/// terminal line can hold.
pub(crate) fn shown(command: &str) -> String {
    const MAX_SHOWN: usize = 200;
    let quoted = format!("{command:?}");
    if quoted.chars().count() <= MAX_SHOWN {
        return quoted;
    }
    let cut: String = quoted.chars().take(MAX_SHOWN).collect();
    format!("{cut}...")
}

/// A subsystem name as a client sent it, bounded and escaped.
pub(crate) fn shown_name(name: &str) -> String {
    let cut: String = name.chars().take(64).collect();
    if cut.chars().all(|c| c.is_ascii_graphic()) {
        cut
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod forward_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
