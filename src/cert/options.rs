//! What a task certificate restricts (critical options) and grants
//! (extensions).
//!
//! Invariant: a certificate with a critical option this module does not
//! know, or one it cannot parse, yields no [`CertScope`] at all, so that a
//! restriction can never be silently dropped.

use russh::keys::ssh_key::certificate::OptionsMap;

use super::source_address::{self, Cidr};
use super::CertRefusal;
use crate::policy::{OpenPatternSet, PatternSet};

pub const EXEC_OPTION: &str = "exec@portcullis";
pub const OPEN_OPTION: &str = "open@portcullis";
pub const FORCE_COMMAND: &str = "force-command";
pub const SOURCE_ADDRESS: &str = "source-address";
pub const TASK_EXTENSION: &str = "task@portcullis";
pub const PERMIT_PTY: &str = "permit-pty";
pub const PERMIT_PORT_FORWARDING: &str = "permit-port-forwarding";

/// The scope a certificate carries, before the policy ceiling applies.
#[derive(Debug, Clone)]
pub struct CertScope {
    /// `exec@portcullis`; `None` means the cert does not narrow commands.
    pub exec: Option<PatternSet>,
    /// `open@portcullis`; `None` means the cert does not narrow forwards.
    pub open: Option<OpenPatternSet>,
    pub force_command: Option<String>,
    pub source_address: Option<Vec<Cidr>>,
    pub permit_pty: bool,
    pub permit_port_forwarding: bool,
    pub task: Option<String>,
}

impl CertScope {
    pub fn from_cert(critical: &OptionsMap, extensions: &OptionsMap) -> Result<Self, CertRefusal> {
        let mut scope = CertScope {
            exec: None,
            open: None,
            force_command: None,
            source_address: None,
            permit_pty: extensions.contains_key(PERMIT_PTY),
            permit_port_forwarding: extensions.contains_key(PERMIT_PORT_FORWARDING),
            task: extensions
                .get(TASK_EXTENSION)
                .filter(|t| !t.is_empty())
                .cloned(),
        };
        for (name, value) in critical.iter() {
            match name.as_str() {
                EXEC_OPTION => scope.exec = Some(parse_exec(value)?),
                OPEN_OPTION => scope.open = Some(parse_open(value)?),
                FORCE_COMMAND => scope.force_command = Some(value.clone()),
                SOURCE_ADDRESS => {
                    scope.source_address =
                        Some(source_address::parse_list(value).ok_or_else(|| {
                            CertRefusal::BadOption {
                                option: SOURCE_ADDRESS.to_string(),
                                reason: "not a list of CIDR blocks".to_string(),
                            }
                        })?)
                }
                other => return Err(CertRefusal::UnknownCriticalOption(other.to_string())),
            }
        }
        Ok(scope)
    }
}

fn parse_json_list(option: &str, value: &str) -> Result<Vec<String>, CertRefusal> {
    serde_json::from_str::<Vec<String>>(value).map_err(|_| CertRefusal::BadOption {
        option: option.to_string(),
        reason: "not a JSON array of strings".to_string(),
    })
}

fn parse_exec(value: &str) -> Result<PatternSet, CertRefusal> {
    let patterns = parse_json_list(EXEC_OPTION, value)?;
    PatternSet::parse(&patterns).map_err(|e| CertRefusal::BadOption {
        option: EXEC_OPTION.to_string(),
        reason: e.to_string(),
    })
}

fn parse_open(value: &str) -> Result<OpenPatternSet, CertRefusal> {
    let patterns = parse_json_list(OPEN_OPTION, value)?;
    OpenPatternSet::parse(&patterns).map_err(|reason| CertRefusal::BadOption {
        option: OPEN_OPTION.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> OptionsMap {
        let mut map = OptionsMap::new();
        for (name, value) in entries {
            map.insert((*name).to_owned(), (*value).to_owned());
        }
        map
    }

    fn refusal(critical: &[(&str, &str)]) -> CertRefusal {
        match CertScope::from_cert(&map(critical), &OptionsMap::new()) {
            Ok(scope) => panic!("accepted {scope:?}"),
            Err(refusal) => refusal,
        }
    }

    #[test]
    fn unknown_critical_option_is_refused_on_one_line() {
        // Found by fuzz/cert_verify: the option name went into the refusal
        // raw, so a newline in it split the client's and the audit's line.
        let shown = refusal(&[("evil\nportcullis: accepted", "")]).to_string();
        assert_eq!(
            shown,
            r#"certificate has an unknown critical option "evil\nportcullis: accepted""#
        );
        let shown = refusal(&[("no-touch-required", "")]).to_string();
        assert_eq!(
            shown,
            r#"certificate has an unknown critical option "no-touch-required""#
        );
    }

    #[test]
    fn wrong_principal_refusal_quotes_the_login_on_one_line() {
        let shown = CertRefusal::WrongPrincipal("web1\r\nroot".to_owned()).to_string();
        assert_eq!(
            shown,
            r#"login "web1\r\nroot" is not a listed principal of the certificate"#
        );
    }

    #[test]
    fn every_known_option_is_kept_in_the_scope() {
        let critical = map(&[
            (EXEC_OPTION, r#"["systemctl status *"]"#),
            (OPEN_OPTION, r#"["127.0.0.1:5432"]"#),
            (FORCE_COMMAND, "uptime"),
            (SOURCE_ADDRESS, "10.0.0.0/8,::1"),
        ]);
        let extensions = map(&[(PERMIT_PTY, ""), (TASK_EXTENSION, "T-1")]);
        let scope = match CertScope::from_cert(&critical, &extensions) {
            Ok(scope) => scope,
            Err(refusal) => panic!("{refusal}"),
        };
        assert!(scope
            .exec
            .is_some_and(|exec| exec.matches_any("systemctl status nginx")));
        assert!(scope.open.is_some());
        assert_eq!(scope.force_command.as_deref(), Some("uptime"));
        assert_eq!(scope.source_address.map(|list| list.len()), Some(2));
        assert!(scope.permit_pty && !scope.permit_port_forwarding);
        assert_eq!(scope.task.as_deref(), Some("T-1"));
    }

    #[test]
    fn malformed_known_options_are_refused() {
        for (option, value) in [
            (EXEC_OPTION, r#"["", "ls"]"#),
            (EXEC_OPTION, "ls"),
            (OPEN_OPTION, r#"[1]"#),
            (SOURCE_ADDRESS, "10.0.0.0/33"),
        ] {
            assert!(
                matches!(refusal(&[(option, value)]), CertRefusal::BadOption { .. }),
                "{option}={value}"
            );
        }
    }
}
