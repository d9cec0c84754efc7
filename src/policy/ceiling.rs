//! The ceiling: the most a certificate of one identity may do on one target.
//!
//! Invariant: a ceiling only ever contains what some role grants, and only
//! roles that the identity holds, that list the target, and whose `max_ttl`
//! covers the certificate's whole lifetime count. Which roles those are is
//! fixed by the role the certificate speaks for ([`RoleClaim`]): a named
//! role alone, or else the identity's `approval = "auto"` roles only, so a
//! manual-approval role is never reached by a certificate that does not
//! name it. The fields are private and [`Policy::ceiling`] is the only
//! maker: holding a `Ceiling` proves the policy was asked.
//!
//! ```compile_fail,E0451
//! let forged = portcullis::policy::Ceiling { pty: true, ..todo!() };
//! ```

use std::time::Duration;

use crate::policy::duration::format_duration;
use crate::policy::open::{ListenAddress, OpenPatternSet};
use crate::policy::paths::PathScope;
use crate::policy::pattern::PatternSet;
use crate::policy::{Approval, Policy, Role, Target};

/// The role a certificate speaks for, as its `role@portcullis` extension
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleClaim<'a> {
    /// The cert names this role: it alone is the ceiling.
    Named(&'a str),
    /// The cert names none: the identity's auto-approved roles are.
    Unnamed,
}

/// What a session of one identity on one target may do at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    target: Target,
    roles: Vec<String>,
    named: bool,
    exec: PatternSet,
    ask: PatternSet,
    open: OpenPatternSet,
    listen: Vec<ListenAddress>,
    sftp: Option<PathScope>,
    pty: bool,
    capture: bool,
    single_session: bool,
}

impl Ceiling {
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// The roles that make up this ceiling, in the identity's order.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
    /// The role the certificate named, when it named one.
    pub fn named_role(&self) -> Option<&str> {
        self.named.then(|| self.roles.first().map(String::as_str))?
    }
    /// Union of the roles' exec patterns.
    pub fn exec(&self) -> &PatternSet {
        &self.exec
    }
    /// Union of the roles' `ask` patterns: commands held for approval.
    pub fn ask(&self) -> &PatternSet {
        &self.ask
    }
    /// Union of the roles' forward patterns.
    pub fn open(&self) -> &OpenPatternSet {
        &self.open
    }
    /// Union of the roles' remote-forward listeners.
    pub fn listen(&self) -> &[ListenAddress] {
        &self.listen
    }
    /// Union of the sftp paths of the roles that grant sftp; `None` when
    /// none does.
    pub fn sftp(&self) -> Option<&PathScope> {
        self.sftp.as_ref()
    }
    /// Some role allows a terminal.
    pub fn pty(&self) -> bool {
        self.pty
    }
    /// Some role records forward and sftp payload (recording more is the
    /// stricter reading).
    pub fn capture(&self) -> bool {
        self.capture
    }
    /// Some role ends the grant with its first session (the stricter
    /// reading wins).
    pub fn single_session(&self) -> bool {
        self.single_session
    }

    /// Whether a session admitted under `was` may go on under this
    /// ceiling: the same target and named role, every pattern and address
    /// `was` had (by text: a superset of patterns allows all the subset
    /// did), and at least as much recorded and enforced. A widened ceiling
    /// covers; any narrowing does not, whether or not the session used
    /// what was taken away.
    pub fn covers(&self, was: &Ceiling) -> bool {
        fn superset(mine: Vec<String>, theirs: Vec<String>) -> bool {
            theirs.iter().all(|p| mine.contains(p))
        }
        let sftp = match (&self.sftp, &was.sftp) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => superset(mine.to_strings(), theirs.to_strings()),
        };
        self.target == was.target
            && self.named_role() == was.named_role()
            && superset(self.exec.to_strings(), was.exec.to_strings())
            && superset(self.open.to_strings(), was.open.to_strings())
            && was.listen.iter().all(|l| self.listen.contains(l))
            && sftp
            && (self.pty || !was.pty)
            && (was.capture || !self.capture)
            && (was.single_session || !self.single_session)
    }

    fn empty(target: &Target, named: bool) -> Ceiling {
        Ceiling {
            target: target.clone(),
            roles: Vec::new(),
            named,
            exec: PatternSet::new(),
            ask: PatternSet::new(),
            open: OpenPatternSet::default(),
            listen: Vec::new(),
            sftp: None,
            pty: false,
            capture: false,
            single_session: false,
        }
    }

    fn add(&mut self, role: &Role) {
        self.roles.push(role.name.clone());
        self.exec.extend(&role.exec);
        self.ask.extend(&role.ask);
        self.open.extend(&role.open);
        for listen in &role.channels.listen {
            if !self.listen.contains(listen) {
                self.listen.push(*listen);
            }
        }
        if let Some(paths) = &role.channels.sftp {
            self.sftp
                .get_or_insert_with(PathScope::default)
                .extend(paths);
        }
        self.pty |= role.pty;
        self.capture |= role.channels.capture;
        self.single_session |= role.single_session;
    }
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
    #[error("the certificate names role {role:?}, which identity {identity:?} does not hold")]
    RoleNotHeld { identity: String, role: String },
    #[error("the certificate names role {role:?}, which does not reach target {target:?}")]
    RoleNotForTarget { role: String, target: String },
    #[error(
        "identity {identity:?} reaches target {target:?} only through manual-approval roles; \
         a certificate for one must name it (role@portcullis)"
    )]
    OnlyManualRoles { identity: String, target: String },
    #[error(
        "certificate lifetime {} exceeds max_ttl {} of {}",
        format_duration(*lifetime),
        format_duration(*max_ttl),
        role_list(roles)
    )]
    LifetimeExceedsMaxTtl {
        lifetime: Duration,
        /// The largest max_ttl among the candidate roles.
        max_ttl: Duration,
        /// The candidate roles that have that largest max_ttl.
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
    /// `target`, valid for `cert_lifetime` (valid_before − valid_after),
    /// speaking for `claim`.
    pub fn ceiling(
        &self,
        identity: &str,
        target: &str,
        cert_lifetime: Duration,
        claim: RoleClaim<'_>,
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
        let candidates: Vec<&Role> = match claim {
            RoleClaim::Named(name) => {
                if !holder.roles.iter().any(|r| r == name) || !self.roles.contains_key(name) {
                    return Err(CeilingRefusal::RoleNotHeld {
                        identity: identity.to_owned(),
                        role: name.to_owned(),
                    });
                }
                let named: Vec<&Role> = reaching.into_iter().filter(|r| r.name == name).collect();
                if named.is_empty() {
                    return Err(CeilingRefusal::RoleNotForTarget {
                        role: name.to_owned(),
                        target: target.to_owned(),
                    });
                }
                named
            }
            RoleClaim::Unnamed => {
                if reaching.is_empty() {
                    return Err(CeilingRefusal::NoRoleForTarget {
                        identity: identity.to_owned(),
                        target: target.to_owned(),
                    });
                }
                let auto: Vec<&Role> = reaching
                    .into_iter()
                    .filter(|r| r.approval == Approval::Auto)
                    .collect();
                if auto.is_empty() {
                    return Err(CeilingRefusal::OnlyManualRoles {
                        identity: identity.to_owned(),
                        target: target.to_owned(),
                    });
                }
                auto
            }
        };
        let largest = candidates
            .iter()
            .map(|role| role.max_ttl)
            .max()
            .unwrap_or_default();
        if cert_lifetime > largest {
            return Err(CeilingRefusal::LifetimeExceedsMaxTtl {
                lifetime: cert_lifetime,
                max_ttl: largest,
                roles: candidates
                    .iter()
                    .filter(|role| role.max_ttl == largest)
                    .map(|role| role.name.clone())
                    .collect(),
            });
        }
        let mut ceiling = Ceiling::empty(target_entry, matches!(claim, RoleClaim::Named(_)));
        for role in candidates
            .into_iter()
            .filter(|r| r.max_ttl >= cert_lifetime)
        {
            ceiling.add(role);
        }
        Ok(ceiling)
    }
}
