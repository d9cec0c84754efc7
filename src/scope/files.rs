//! sftp and remote-forward decisions.
//!
//! Invariant: an [`SftpDecision`] exists only when a role grants `sftp`,
//! and it is the only thing that answers whether an sftp path is in scope;
//! a [`ListenDecision`] only for a listen address a role names exactly and
//! a certificate that carries `permit-port-forwarding`.

use super::Scope;
use crate::policy::{normalize, ListenAddress, PathError, PathScope};

/// The sftp subsystem may run, within these paths.
#[derive(Debug, Clone)]
pub struct SftpDecision {
    paths: PathScope,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SftpRefusal {
    #[error("sftp is not allowed by the policy for identity {identity} on target {target}")]
    NotInPolicy { identity: String, target: String },
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
        let path = normalize(raw, home)?;
        if self.paths.allows(&path) {
            Ok(path)
        } else {
            Err(PathRefusal::OutOfScope(path))
        }
    }

    pub fn patterns(&self) -> Vec<String> {
        self.paths
            .patterns()
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
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
    /// Decides a `subsystem` request.
    pub fn authorize_subsystem(&self, name: &str) -> Result<SftpDecision, SftpRefusal> {
        if name != "sftp" {
            return Err(SftpRefusal::Unsupported(name.chars().take(64).collect()));
        }
        match &self.channels.sftp {
            Some(paths) => Ok(SftpDecision {
                paths: paths.clone(),
            }),
            None => Err(SftpRefusal::NotInPolicy {
                identity: self.identity.clone(),
                target: self.target.name.clone(),
            }),
        }
    }

    /// Decides a `tcpip-forward` request: only an address a role lists.
    pub fn authorize_listen(
        &self,
        address: &str,
        port: u32,
    ) -> Result<ListenDecision, ListenRefusal> {
        let listed = self
            .channels
            .listen
            .iter()
            .find(|l| l.matches(address, port));
        match listed {
            Some(_) if !self.permit_port_forwarding => Err(ListenRefusal::NotPermitted),
            Some(address) => Ok(ListenDecision { address: *address }),
            None => Err(ListenRefusal::NotListed {
                address: address.chars().take(80).collect(),
                port,
                identity: self.identity.clone(),
                target: self.target.name.clone(),
            }),
        }
    }
}
