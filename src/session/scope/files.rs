//! sftp and remote-forward decisions.
//!
//! Invariant: an [`SftpDecision`] exists only when a role grants `sftp`
//! and the cert does not withhold it (a plain cert, or an explicit one
//! carrying `sftp@portcullis`), and it is the only thing that answers
//! whether an sftp path is in scope: the role's paths ∩ the cert's. A
//! [`ListenDecision`] exists only for a listen address a role names
//! exactly, that the cert names too when it is explicit, and a cert that
//! carries `permit-port-forwarding`.

use super::{shown_name, Scope};
use crate::policy::{normalize, ListenAddress, PathError, PathScope};

/// The sftp subsystem may run, within these paths.
#[derive(Debug, Clone)]
pub struct SftpDecision {
    role: PathScope,
    /// `None` for a plain cert, which does not narrow paths.
    cert: Option<PathScope>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SftpRefusal {
    #[error("sftp is not allowed by the policy for identity {identity} on target {target}")]
    NotInPolicy { identity: String, target: String },
    #[error("sftp is not allowed by the certificate (it carries no sftp@portcullis)")]
    NotInCert,
    #[error("subsystem {0} is not supported (only sftp)")]
    Unsupported(String),
}

/// Why one sftp path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    #[error(transparent)]
    Unresolvable(#[from] PathError),
    #[error("path {0} is outside the sftp path scope")]
    OutOfScope(String),
}

impl SftpDecision {
    /// The normalised absolute path, when `raw` (as the client sent it) is
    /// in scope; `home` is the login's home directory once known.
    pub fn check_path(&self, raw: &[u8], home: Option<&str>) -> Result<String, PathRefusal> {
        self.check_normalized(normalize(raw, home)?)
    }

    /// The same for a path already made absolute and folded.
    pub fn check_normalized(&self, path: String) -> Result<String, PathRefusal> {
        let in_cert = self.cert.as_ref().is_none_or(|c| c.allows(&path));
        if in_cert && self.role.allows(&path) {
            Ok(path)
        } else {
            Err(PathRefusal::OutOfScope(path))
        }
    }

    /// The path patterns that bound this session (the role's, and the
    /// cert's when it narrows them), for the record.
    pub fn patterns(&self) -> Vec<String> {
        let mut patterns = self.role.to_strings();
        if let Some(cert) = &self.cert {
            patterns.retain(|p| cert.to_strings().contains(p));
            for p in cert.to_strings() {
                if !patterns.contains(&p) {
                    patterns.push(format!("{p} (cert)"));
                }
            }
        }
        patterns
    }

    /// A decision over `paths` alone, for unit tests and fuzz targets of
    /// the sftp gate.
    #[cfg(any(test, fuzzing))]
    pub fn for_paths(paths: PathScope) -> SftpDecision {
        SftpDecision {
            role: paths,
            cert: None,
        }
    }
}

/// A remote forward (`ssh -R`) listener the bastion may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenDecision {
    address: ListenAddress,
}

impl ListenDecision {
    pub fn address(&self) -> ListenAddress {
        self.address
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenRefusal {
    #[error("the certificate does not carry permit-port-forwarding")]
    NotPermitted,
    #[error("remote forwarding on {0} is not allowed by the certificate's listen@portcullis")]
    NotInCert(String),
    #[error(
        "remote forwarding on {address}:{port} is not allowed: no role of identity {identity} on target {target} lists it in `listen`"
    )]
    NotListed {
        address: String,
        port: u32,
        identity: String,
        target: String,
    },
}

impl Scope {
    /// Decides a `subsystem` request (a forced command replaces it first:
    /// see `Scope::decide_forced`).
    pub fn decide_sftp(&self, name: &str) -> Result<SftpDecision, SftpRefusal> {
        if name != "sftp" {
            return Err(SftpRefusal::Unsupported(shown_name(name)));
        }
        let Some(role) = self.ceiling.sftp() else {
            return Err(SftpRefusal::NotInPolicy {
                identity: self.identity.clone(),
                target: self.ceiling.target().name.clone(),
            });
        };
        if self.cert_sftp.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(SftpRefusal::NotInCert);
        }
        Ok(SftpDecision {
            role: role.clone(),
            cert: self.cert_sftp.clone(),
        })
    }

    /// Decides a `tcpip-forward` request: only an address a role lists
    /// (and the cert too, when it names its listeners).
    pub fn decide_listen(&self, address: &str, port: u32) -> Result<ListenDecision, ListenRefusal> {
        let listed = self
            .ceiling
            .listen()
            .iter()
            .find(|l| l.matches(address, port));
        let Some(listed) = listed else {
            return Err(ListenRefusal::NotListed {
                address: address.chars().take(80).collect(),
                port,
                identity: self.identity.clone(),
                target: self.ceiling.target().name.clone(),
            });
        };
        if !self.permit_port_forwarding {
            return Err(ListenRefusal::NotPermitted);
        }
        if let Some(cert) = &self.cert_listen {
            if !cert.contains(listed) {
                return Err(ListenRefusal::NotInCert(listed.to_string()));
            }
        }
        Ok(ListenDecision { address: *listed })
    }
}
