//! The ceiling: the most a certificate of one identity may do on one target.
//!
//! Invariant: a ceiling only ever contains what some role grants, and only
//! roles that the identity holds, that list the target, and whose `max_ttl`
//! covers the certificate's whole lifetime count. A certificate can narrow
//! the ceiling, never widen it; the caller intersects the two.

use std::time::Duration;

use crate::policy::duration::format_duration;
use crate::policy::pattern::PatternSet;
use crate::policy::{ChannelGrants, Policy, Role, Target};

/// What a session of `identity` on `target` may do at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    pub target: Target,
    /// The roles that granted this ceiling, in the identity's order.
    pub roles: Vec<String>,
    /// Union of those roles' exec patterns.
    pub exec: PatternSet,
    /// Union of those roles' forward patterns.
    pub open: Vec<String>,
    /// Any of those roles allows an interactive shell.
    pub pty: bool,
    /// Any of those roles ends the grant with its first session; the
    /// stricter reading wins.
    pub single_session: bool,
    /// Union of those roles' sftp paths and listeners; capture if any asks.
    pub channels: ChannelGrants,
}

/// Why the policy gives a certificate no ceiling at all. Display is one line
/// for the person at the client's terminal and for the audit row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CeilingRefusal {
    #[error("identity {0:?} is not in the policy")]
    UnknownIdentity(String),
    #[error("target {0:?} is not in the policy")]
    UnknownTarget(String),
    #[error("identity {identity:?} holds no role that reaches target {target:?}")]
    NoRoleForTarget { identity: String, target: String },
    #[error(
        "certificate lifetime {} exceeds max_ttl {} of {}",
        format_duration(*lifetime),
        format_duration(*max_ttl),
        role_list(roles)
    )]
    LifetimeExceedsMaxTtl {
        lifetime: Duration,
        /// The largest max_ttl among the roles that reach the target.
        max_ttl: Duration,
        /// The roles that have that largest max_ttl.
        roles: Vec<String>,
    },
}

fn role_list(roles: &[String]) -> String {
    match roles {
        [one] => format!("role {one}"),
        many => format!("roles {}", many.join(", ")),
    }
}

impl Policy {
    /// The ceiling for a certificate with key id `identity`, logging in to
    /// `target`, valid for `cert_lifetime` (valid_before − valid_after).
    pub fn ceiling(
        &self,
        identity: &str,
        target: &str,
        cert_lifetime: Duration,
    ) -> Result<Ceiling, CeilingRefusal> {
        let holder = self
            .identities
            .get(identity)
            .ok_or_else(|| CeilingRefusal::UnknownIdentity(identity.to_owned()))?;
        let target_entry = self
            .targets
            .get(target)
            .ok_or_else(|| CeilingRefusal::UnknownTarget(target.to_owned()))?;

        // A role name the policy lacks cannot occur after `load`; skipping it
        // keeps a hand-built policy deny-by-default too.
        let reaching: Vec<&Role> = holder
            .roles
            .iter()
            .filter_map(|name| self.roles.get(name))
            .filter(|role| role.targets.iter().any(|t| t == target))
            .collect();
        let Some(largest) = reaching.iter().map(|role| role.max_ttl).max() else {
            return Err(CeilingRefusal::NoRoleForTarget {
                identity: identity.to_owned(),
                target: target.to_owned(),
            });
        };
        if cert_lifetime > largest {
            return Err(CeilingRefusal::LifetimeExceedsMaxTtl {
                lifetime: cert_lifetime,
                max_ttl: largest,
                roles: reaching
                    .iter()
                    .filter(|role| role.max_ttl == largest)
                    .map(|role| role.name.clone())
                    .collect(),
            });
        }

        let mut ceiling = Ceiling {
            target: target_entry.clone(),
            roles: Vec::new(),
            exec: PatternSet::new(),
            open: Vec::new(),
            pty: false,
            single_session: false,
            channels: ChannelGrants::default(),
        };
        for role in reaching.into_iter().filter(|r| r.max_ttl >= cert_lifetime) {
            ceiling.roles.push(role.name.clone());
            ceiling.exec.extend(&role.exec);
            for pattern in &role.open {
                if !ceiling.open.contains(pattern) {
                    ceiling.open.push(pattern.clone());
                }
            }
            ceiling.pty |= role.pty;
            ceiling.single_session |= role.single_session;
            ceiling.channels.extend(&role.channels);
        }
        Ok(ceiling)
    }
}
