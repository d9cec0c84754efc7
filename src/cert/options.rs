//! What a task certificate restricts (critical options) and grants
//! (extensions).
//!
//! Invariant: a certificate with a critical option this module does not
//! know, or one it cannot parse, yields no [`CertScope`] at all, so that a
//! restriction can never be silently dropped. A certificate that carries
//! any scope option (`exec@`, `open@`, `listen@`, `sftp@portcullis`) is
//! *explicit*: every scope dimension it does not carry is empty (absent
//! means none), so a cert that narrows one dimension never keeps another
//! it did not name. Only a certificate with none of them leaves its
//! dimensions to the ceiling (which `role@portcullis` may name).

use russh::keys::ssh_key::certificate::OptionsMap;

use super::CertRefusal;
use crate::cidr::{self as source_address, Cidr};
use crate::policy::{ListenAddress, OpenPatternSet, PathPattern, PathScope, PatternSet};

pub const EXEC_OPTION: &str = "exec@portcullis";
pub const OPEN_OPTION: &str = "open@portcullis";
pub const LISTEN_OPTION: &str = "listen@portcullis";
pub const SFTP_OPTION: &str = "sftp@portcullis";
pub const CAPTURE_OPTION: &str = "capture@portcullis";
pub const FORCE_COMMAND: &str = "force-command";
pub const SOURCE_ADDRESS: &str = "source-address";
pub const TASK_EXTENSION: &str = "task@portcullis";
pub const ROLE_EXTENSION: &str = "role@portcullis";
pub const PERMIT_PTY: &str = "permit-pty";
pub const PERMIT_PORT_FORWARDING: &str = "permit-port-forwarding";

/// The options that name a scope dimension: a cert with any of them names
/// them all (absent means none).
const SCOPE_OPTIONS: [&str; 4] = [EXEC_OPTION, OPEN_OPTION, LISTEN_OPTION, SFTP_OPTION];

/// The scope a certificate carries, before the policy ceiling applies.
/// Each `Option` dimension is `None` only for a certificate without scope
/// options (the ceiling decides it); an explicit certificate has `Some`
/// everywhere, empty where it named nothing.
#[derive(Debug, Clone)]
pub struct CertScope {
    pub exec: Option<PatternSet>,
    pub open: Option<OpenPatternSet>,
    pub listen: Option<Vec<ListenAddress>>,
    pub sftp: Option<PathScope>,
    /// `capture@portcullis`: record forward and sftp payload.
    pub capture: bool,
    pub force_command: Option<String>,
    pub source_address: Option<Vec<Cidr>>,
    pub permit_pty: bool,
    pub permit_port_forwarding: bool,
    pub task: Option<String>,
    /// `role@portcullis`: the role this cert speaks for.
    pub role: Option<String>,
}

impl CertScope {
    pub fn from_cert(critical: &OptionsMap, extensions: &OptionsMap) -> Result<Self, CertRefusal> {
        let role = match extensions.get(ROLE_EXTENSION) {
            Some(name) => Some(parse_role(name)?),
            None => None,
        };
        let mut scope = CertScope {
            exec: None,
            open: None,
            listen: None,
            sftp: None,
            capture: false,
            force_command: None,
            source_address: None,
            permit_pty: extensions.contains_key(PERMIT_PTY),
            permit_port_forwarding: extensions.contains_key(PERMIT_PORT_FORWARDING),
            task: extensions
                .get(TASK_EXTENSION)
                .filter(|t| !t.is_empty())
                .cloned(),
            role,
        };
        let mut explicit = false;
        for (name, value) in critical.iter() {
            match name.as_str() {
                EXEC_OPTION => scope.exec = Some(parse_exec(value)?),
                OPEN_OPTION => scope.open = Some(parse_open(value)?),
                LISTEN_OPTION => scope.listen = Some(parse_listen(value)?),
                SFTP_OPTION => scope.sftp = Some(parse_sftp(value)?),
                CAPTURE_OPTION => scope.capture = true,
                FORCE_COMMAND => scope.force_command = Some(value.clone()),
                SOURCE_ADDRESS => {
                    scope.source_address =
                        Some(source_address::parse_list(value).ok_or_else(|| {
                            bad(SOURCE_ADDRESS, "not a list of CIDR blocks".to_string())
                        })?)
                }
                other => return Err(CertRefusal::UnknownCriticalOption(other.to_string())),
            }
            explicit |= SCOPE_OPTIONS.contains(&name.as_str());
        }
        if explicit {
            scope.exec.get_or_insert_with(PatternSet::new);
            scope.open.get_or_insert_with(OpenPatternSet::default);
            scope.listen.get_or_insert_with(Vec::new);
            scope.sftp.get_or_insert_with(PathScope::default);
        }
        Ok(scope)
    }

    /// Whether the cert names its scope itself (see the module doc).
    pub fn is_explicit(&self) -> bool {
        self.exec.is_some()
    }
}

fn bad(option: &str, reason: String) -> CertRefusal {
    CertRefusal::BadOption {
        option: option.to_string(),
        reason,
    }
}

fn parse_json_list(option: &str, value: &str) -> Result<Vec<String>, CertRefusal> {
    serde_json::from_str::<Vec<String>>(value)
        .map_err(|_| bad(option, "not a JSON array of strings".to_string()))
}

fn parse_exec(value: &str) -> Result<PatternSet, CertRefusal> {
    let patterns = parse_json_list(EXEC_OPTION, value)?;
    PatternSet::parse(&patterns).map_err(|e| bad(EXEC_OPTION, e.to_string()))
}

fn parse_open(value: &str) -> Result<OpenPatternSet, CertRefusal> {
    let patterns = parse_json_list(OPEN_OPTION, value)?;
    OpenPatternSet::parse(&patterns).map_err(|reason| bad(OPEN_OPTION, reason))
}

fn parse_listen(value: &str) -> Result<Vec<ListenAddress>, CertRefusal> {
    parse_json_list(LISTEN_OPTION, value)?
        .iter()
        .map(|a| ListenAddress::parse(a).map_err(|reason| bad(LISTEN_OPTION, reason)))
        .collect()
}

fn parse_sftp(value: &str) -> Result<PathScope, CertRefusal> {
    let paths = parse_json_list(SFTP_OPTION, value)?
        .iter()
        .map(|p| PathPattern::parse(p).map_err(|reason| bad(SFTP_OPTION, reason)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PathScope::new(paths))
}

/// A role name as the policy spells names; anything else is refused, so
/// the name is safe to quote on one line.
fn parse_role(name: &str) -> Result<String, CertRefusal> {
    crate::policy::check_name(name)
        .map(|()| name.to_owned())
        .map_err(|reason| bad(ROLE_EXTENSION, reason))
}

#[cfg(test)]
mod tests;
