//! The effective scope of a session: the certificate's scope ∩ the policy
//! ceiling of the identity's roles.
//!
//! Invariant: an [`ExecDecision`], [`ShellDecision`], [`ForwardDecision`],
//! [`SftpDecision`] or [`ListenDecision`] can only be made here, and only
//! for an action both the certificate and the policy allow (a shell only
//! when the certificate grants `permit-pty`, a role grants `pty`, and
//! neither restricts commands); proxy code needs one to act.

mod files;
mod forward;

pub use files::{ListenDecision, ListenRefusal, SftpDecision, SftpRefusal};
pub use forward::{is_special, ForwardDecision, ForwardRefusal};

use crate::cert::VerifiedCert;
use crate::policy::{Ceiling, ChannelGrants, OpenPatternSet, PatternSet, Target};

#[derive(Debug, Clone)]
pub struct Scope {
    target: Target,
    identity: String,
    cert_exec: Option<PatternSet>,
    role_exec: PatternSet,
    force_command: Option<String>,
    /// The cert's `permit-pty` extension.
    cert_pty: bool,
    /// Some role of the ceiling has `pty = true`.
    role_pty: bool,
    /// Longest command accepted, in bytes (`[limits] max_command_bytes`):
    /// a bound keeps matching and recording cheap.
    max_command_bytes: usize,
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
    #[error("command is longer than {0} bytes (max_command_bytes)")]
    TooLong(usize),
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

/// An interactive shell that may open. Only [`Scope::authorize_shell`]
/// makes one: the private field keeps other code from forging it.
#[derive(Debug, Clone)]
pub struct ShellDecision {
    _made_by_scope: (),
}

/// Why a terminal or a shell is refused; worded for the client's terminal
/// and the audit row.
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
}

impl Scope {
    pub fn new(cert: &VerifiedCert, ceiling: Ceiling, max_command_bytes: usize) -> Scope {
        Scope {
            target: ceiling.target,
            identity: cert.key_id.clone(),
            cert_exec: cert.scope.exec.clone(),
            role_exec: ceiling.exec,
            force_command: cert.scope.force_command.clone(),
            cert_pty: cert.scope.permit_pty,
            role_pty: ceiling.pty,
            max_command_bytes,
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
        self.authorize_pty().is_ok()
    }

    /// A terminal needs the cert's `permit-pty` and a role's `pty = true`.
    pub fn authorize_pty(&self) -> Result<(), TerminalRefusal> {
        if !self.cert_pty {
            return Err(TerminalRefusal::NoPermitPty);
        }
        if !self.role_pty {
            return Err(TerminalRefusal::NoPtyRole {
                identity: self.identity.clone(),
                target: self.target.name.clone(),
            });
        }
        Ok(())
    }

    /// Decides whether an interactive shell may open. A shell can run any
    /// command, so it needs what a terminal needs and an exec scope that is
    /// the lone `"*"` on both sides: an allow-list never opens a shell.
    pub fn authorize_shell(&self) -> Result<ShellDecision, TerminalRefusal> {
        self.authorize_pty()?;
        if !self.role_exec.is_unrestricted() {
            return Err(TerminalRefusal::PolicyRestrictsCommands {
                identity: self.identity.clone(),
                target: self.target.name.clone(),
            });
        }
        if let Some(cert_exec) = &self.cert_exec {
            if !cert_exec.is_unrestricted() {
                return Err(TerminalRefusal::CertRestrictsCommands);
            }
        }
        Ok(ShellDecision { _made_by_scope: () })
    }

    /// The cert's `force-command`: with OpenSSH's meaning it replaces a
    /// shell request too.
    pub fn forced_command(&self) -> Option<&str> {
        self.force_command.as_deref()
    }

    /// Decides whether the exec request `raw` may run.
    pub fn authorize_exec(&self, raw: &[u8]) -> Result<ExecDecision, ExecRefusal> {
        if raw.len() > self.max_command_bytes {
            return Err(ExecRefusal::TooLong(self.max_command_bytes));
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

#[cfg(test)]
mod forward_tests;

#[cfg(test)]
mod exec_tests {
    use super::*;
    use crate::cert::CertScope;
    use crate::policy::UpstreamAuth;

    fn scope(cert_exec: Option<&[&str]>, role_exec: &[&str], force: Option<&str>) -> Scope {
        let parse = |p: &[&str]| PatternSet::parse(p.iter().copied()).unwrap();
        let cert = VerifiedCert {
            key_id: "agent-7".into(),
            serial: 1,
            ca_fingerprint: "SHA256:x".into(),
            principals: vec!["web1".into()],
            valid_after: 0,
            valid_before: 600,
            scope: CertScope {
                exec: cert_exec.map(parse),
                open: None,
                force_command: force.map(str::to_string),
                source_address: None,
                permit_pty: false,
                permit_port_forwarding: false,
                task: None,
            },
        };
        let ceiling = Ceiling {
            target: Target {
                name: "web1".into(),
                address: "127.0.0.1:22".into(),
                user: "deploy".into(),
                host_key: None,
                auth: UpstreamAuth::Certificate,
            },
            roles: vec!["ops".into()],
            exec: parse(role_exec),
            open: vec![],
            pty: true,
            single_session: false,
            channels: Default::default(),
        };
        Scope::new(&cert, ceiling, 1024)
    }

    #[test]
    fn a_command_must_be_allowed_by_both_the_cert_and_the_role() {
        let s = scope(Some(&["systemctl status *"]), &["systemctl *"], None);
        assert!(s.authorize_exec(b"systemctl status nginx").is_ok());
        assert!(matches!(
            s.authorize_exec(b"systemctl restart nginx"),
            Err(ExecRefusal::NotInCert(_))
        ));
        let wide_cert = scope(Some(&["*"]), &["uptime"], None);
        assert!(matches!(
            wide_cert.authorize_exec(b"rm -rf /"),
            Err(ExecRefusal::NotInPolicy { .. })
        ));
    }

    #[test]
    fn a_cert_without_exec_option_is_bounded_by_the_role_alone() {
        let s = scope(None, &["uptime"], None);
        assert!(s.authorize_exec(b"uptime").is_ok());
        assert!(s.authorize_exec(b"uptime; id").is_err());
    }

    #[test]
    fn force_command_replaces_the_request_and_must_itself_be_in_scope() {
        let s = scope(None, &["uptime"], Some("uptime"));
        let decision = s.authorize_exec(b"rm -rf /").unwrap();
        assert_eq!(
            (decision.requested(), decision.run()),
            ("rm -rf /", "uptime")
        );
        assert!(decision.is_forced());
        let outside = scope(None, &["uptime"], Some("id"));
        assert!(outside.authorize_exec(b"uptime").is_err());
    }

    #[test]
    fn non_utf8_and_overlong_commands_are_refused() {
        let s = scope(None, &["*"], None);
        assert!(matches!(
            s.authorize_exec(b"\xff\xfe"),
            Err(ExecRefusal::NotUtf8)
        ));
        assert!(matches!(
            s.authorize_exec(&[b'a'; 1025]),
            Err(ExecRefusal::TooLong(1024))
        ));
    }

    #[test]
    fn refusal_messages_quote_and_cut_the_command() {
        let s = scope(None, &["uptime"], None);
        let long = format!("echo {}\n", "x".repeat(500));
        let message = s.authorize_exec(long.as_bytes()).unwrap_err().to_string();
        assert!(message.contains("\"echo xxx"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(message.len() < 400, "{message}");
    }
}
