//! The policy: targets, roles and identities read from the policy directory,
//! and the ceiling they put over every certificate.
//!
//! Invariant: a loaded [`Policy`] is internally consistent. Every role names
//! only known targets, every identity only known roles, every pattern,
//! duration, address and name has been checked, so code that holds a
//! `Policy` never meets a dangling reference. Anything the policy does not
//! grant is refused ([`Policy::ceiling`] is the only way to learn what a
//! session may do).

mod ceiling;
mod check;
mod command;
mod duration;
mod load;
mod open;
mod paths;
mod pattern;
mod raw;
#[cfg(any(test, fuzzing))]
pub mod reference;
mod star;
mod syntax;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use russh::keys::PublicKey;

pub use ceiling::{Ceiling, CeilingRefusal, RoleClaim};
pub use command::{CommandLine, CommandRefusal};
pub use duration::{format_duration, parse_duration, DurationError};
pub use load::{PolicyError, PolicyErrors};
pub use open::{ListenAddress, OpenPattern, OpenPatternSet};
pub use paths::{normalize, PathError, PathPattern, PathScope};
pub use pattern::{CommandPattern, PatternError, PatternSet};
pub(crate) use syntax::{check_name, is_host_char};

/// The target name reserved for the bastion's own request flow
/// (`ssh grant@bastion request ...`); no target may take it.
pub const RESERVED_LOGIN: &str = "grant";

/// The login of the web viewer's sign-in: an identity key with `review =
/// true` gets a one-time link. Like `grant`, no target may be named so.
pub const REVIEW_LOGIN: &str = "review";

/// Everything in the policy directory, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub targets: BTreeMap<String, Target>,
    pub roles: BTreeMap<String, Role>,
    pub identities: BTreeMap<String, Identity>,
}

/// A host the bastion proxies to; its name is the login agents use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// `host:port`, IPv6 hosts in brackets.
    pub address: String,
    /// The login used on the target.
    pub user: String,
    /// The pinned host key. `None` loads, but the connecting code refuses
    /// a target without a pinned key.
    pub host_key: Option<PublicKey>,
    pub auth: UpstreamAuth,
}

/// How the bastion authenticates to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// A per-session certificate from the upstream CA (the default).
    Certificate,
    /// A static private key file, already resolved to an absolute path.
    KeyFile(PathBuf),
}

/// What a holder of the role may do, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub targets: Vec<String>,
    pub exec: PatternSet,
    /// Commands outside `exec` that are held for an operator's approval
    /// instead of refused (same pattern language).
    pub ask: PatternSet,
    /// `host:port` patterns for forwards.
    pub open: OpenPatternSet,
    pub pty: bool,
    /// The longest certificate lifetime this role accepts.
    pub max_ttl: Duration,
    pub approval: Approval,
    /// The grant ends when its first session ends.
    pub single_session: bool,
    /// sftp, remote forwarding and payload capture.
    pub channels: ChannelGrants,
}

/// What a role grants beyond commands and forwards. The default grants
/// nothing and captures nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelGrants {
    /// `sftp = true` with its `sftp_paths`; `None`: no sftp subsystem.
    pub sftp: Option<PathScope>,
    /// `listen`: remote-forward (`ssh -R`) listeners the role allows.
    pub listen: Vec<ListenAddress>,
    /// `capture = true`: forward and sftp payload bytes go to the store.
    pub capture: bool,
}

/// Whether a request for a role is signed at once or waits for an operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Approval {
    Auto,
    /// The safe default: a person approves each request.
    #[default]
    Manual,
}

/// A holder of certificates (the cert's key id) and the roles it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    /// The identity's own keys; they may only request grants.
    pub keys: Vec<PublicKey>,
    pub roles: Vec<String>,
    /// Whether the identity may sign in to the web viewer (`review@`).
    pub review: Review,
    /// Whether, signed in, it may approve and deny requests there.
    pub approve: Approver,
}

/// An identity's power over pending requests in the web viewer
/// (`approve = true`, which needs `review = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approver {
    Allowed,
    #[default]
    Denied,
}

/// An identity's access to the web viewer (`review = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Review {
    Allowed,
    #[default]
    Denied,
}

impl Identity {
    /// Whether `key` is one of this identity's keys (comments aside).
    pub fn holds_key(&self, key: &PublicKey) -> bool {
        self.keys.iter().any(|k| k.key_data() == key.key_data())
    }
}

impl Policy {
    /// The identity whose listed key is `key`, if any (a key belongs to one
    /// identity at most: `load` checks it).
    pub fn identity_for_key(&self, key: &PublicKey) -> Option<&Identity> {
        self.identities
            .values()
            .find(|identity| identity.holds_key(key))
    }
}
