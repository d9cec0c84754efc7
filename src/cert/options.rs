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
