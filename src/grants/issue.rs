//! The one path that issues task certificates, for `portcullis grant` and
//! the `grant@` request flow alike.
//!
//! Invariant: a cert is signed only for an [`IssueOrder`] that
//! [`order_for`] checked against the policy (the identity holds the role,
//! the scope lies within it, the task key is no identity key), only for an
//! identity that is not suspended, and it names its role and carries every
//! dimension of its scope. Its grants row and `grant.issued` event are in
//! the same transaction, so a cert exists only once it is on record.

use russh::keys::{PrivateKey, PublicKey};

use super::db::{self, IssuedGrant};
use super::request;
use super::{GrantError, GrantScope, RequestRecord};
use crate::audit::{Abort, Event, Txn};
use crate::cert::cert_fingerprint;
use crate::cert::sign::{sign_task_cert, TaskCertSpec};
use crate::policy::{Policy, Role};

/// What to issue, checked against the policy by [`order_for`].
#[derive(Debug, Clone)]
pub struct IssueOrder {
    identity: String,
    role: String,
    task: Option<String>,
    reason: Option<String>,
    scope: GrantScope,
    pubkey: PublicKey,
    request_id: Option<i64>,
    /// Whether the request is a row of this store (else the cluster's
    /// database keeps it, and takes it for issuing there).
    request_in_store: bool,
    approver: String,
}

impl IssueOrder {
    pub fn identity(&self) -> &str {
        &self.identity
    }
    pub fn role(&self) -> &str {
        &self.role
    }
    pub fn scope(&self) -> &GrantScope {
        &self.scope
    }
    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
    pub fn pubkey(&self) -> &PublicKey {
        &self.pubkey
    }

    /// The same order, for the request `id`, approved by `approver`.
    pub fn for_request(mut self, id: i64, approver: &str) -> IssueOrder {
        self.request_id = Some(id);
        self.request_in_store = true;
        self.approver = approver.to_owned();
        self
    }

    /// The same order for a request the cluster's database keeps.
    pub fn for_cluster_request(mut self) -> IssueOrder {
        self.request_in_store = false;
        self
    }

    pub fn request_id(&self) -> Option<i64> {
        self.request_id
    }
}

/// The cert as handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    pub serial: u64,
    pub fingerprint: String,
    pub valid_before: u64,
    /// The OpenSSH text of the cert (`...-cert-v01@openssh.com AAAA...`).
    pub cert: String,
}

/// Who asks for what: the request's parts, as the requester or the
/// operator gave them.
pub struct Asked<'a> {
    pub identity: &'a str,
    pub role: &'a str,
    pub task: Option<String>,
    pub reason: Option<String>,
    pub scope: GrantScope,
    pub pubkey: PublicKey,
    /// `auto`, or the operator who signs or approves.
    pub approver: String,
}

/// Checks `asked` against the policy as it stands: the identity holds the
/// role, the scope lies within it, the key is no identity's.
pub fn order_for(policy: &Policy, asked: Asked<'_>) -> Result<IssueOrder, GrantError> {
    let identity = policy
        .identities
        .get(asked.identity)
        .ok_or_else(|| GrantError::UnknownIdentity(asked.identity.to_owned()))?;
    let role = policy
        .roles
        .get(asked.role)
        .ok_or_else(|| GrantError::UnknownRole(asked.role.to_owned()))?;
    request::check_within(role, &asked.scope)?;
    if !identity.roles.iter().any(|r| r == asked.role) {
        return Err(GrantError::RoleNotHeld {
            identity: identity.name.clone(),
            role: asked.role.to_owned(),
        });
    }
    // A task key that is any identity's key would turn a standing key into
    // a target credential.
    if policy.identity_for_key(&asked.pubkey).is_some() {
        return Err(GrantError::IdentityKeyAsTaskKey);
    }
    Ok(IssueOrder {
        identity: identity.name.clone(),
        role: asked.role.to_owned(),
        task: asked.task,
        reason: asked.reason,
        scope: asked.scope,
        pubkey: asked.pubkey,
        request_id: None,
        request_in_store: false,
        approver: asked.approver,
    })
}

/// The order of a stored request, checked again against the policy as it
/// stands now (a role taken away since the request is not issued).
pub fn order_for_request(
    policy: &Policy,
    record: &RequestRecord,
    approver: &str,
) -> Result<IssueOrder, GrantError> {
    let pubkey = PublicKey::from_openssh(&record.pubkey)
        .map_err(|_| GrantError::Corrupt("request public key"))?;
    let order = order_for(
        policy,
        Asked {
            identity: &record.identity,
            role: &record.role,
            task: record.task.clone(),
            reason: record.reason.clone(),
            scope: record.scope.clone(),
            pubkey,
            approver: approver.to_owned(),
        },
    )?;
    Ok(order.for_request(record.id, approver))
}

impl GrantScope {
    /// Everything `role` grants, for `ttl_secs`.
    pub fn of_role(role: &Role, ttl_secs: u64) -> GrantScope {
        GrantScope {
            targets: role.targets.clone(),
            exec: role.exec.to_strings(),
            open: role.open.to_strings(),
            listen: role.channels.listen.iter().map(|l| l.to_string()).collect(),
            sftp: role
                .channels
                .sftp
                .as_ref()
                .map(|paths| paths.to_strings())
                .unwrap_or_default(),
            capture: role.channels.capture,
            pty: role.pty,
            ttl_secs,
        }
    }
}

/// Signs the cert of `order` with `ca`, valid from the transaction's time,
/// and records it; refused for a suspended identity.
pub fn issue(
    txn: &mut Txn<'_>,
    ca: &PrivateKey,
    order: &IssueOrder,
) -> Result<Issued, Abort<GrantError>> {
    if db::is_suspended(txn.conn(), &order.identity)? {
        return Err(Abort::Refused(GrantError::Suspended(
            order.identity.clone(),
        )));
    }
    let now = u64::try_from(txn.at_us() / 1_000_000).unwrap_or(0);
    let scope = &order.scope;
    let spec = TaskCertSpec {
        key_id: order.identity.clone(),
        role: order.role.clone(),
        principals: scope.targets.clone(),
        valid_after: now,
        valid_before: now.saturating_add(scope.ttl_secs),
        exec: scope.exec.clone(),
        open: scope.open.clone(),
        listen: scope.listen.clone(),
        sftp: scope.sftp.clone(),
        capture: scope.capture,
        permit_pty: scope.pty,
        task: order.task.clone(),
    };
    let signing = |e: &dyn std::fmt::Display| Abort::Refused(GrantError::Sign(e.to_string()));
    let cert = sign_task_cert(ca, &order.pubkey, &spec).map_err(|e| signing(&e))?;
    let text = cert.to_openssh().map_err(|e| signing(&e))?;
    let fingerprint = cert_fingerprint(&cert);
    let grant = IssuedGrant {
        serial: cert.serial(),
        request_id: order.request_id,
        identity: order.identity.clone(),
        role: order.role.clone(),
        task: order.task.clone(),
        reason: order.reason.clone(),
        scope: scope.clone(),
        valid_after: spec.valid_after,
        valid_before: spec.valid_before,
        approver: order.approver.clone(),
        cert: text.clone(),
        fingerprint: fingerprint.clone(),
    };
    db::record_grant(txn, &grant, order.request_in_store)?;
    let event = Event::GrantIssued {
        serial: grant.serial,
        cert_fingerprint: Some(fingerprint.clone()),
        request_id: grant.request_id,
        identity: grant.identity,
        role: grant.role,
        task: grant.task,
        valid_before: grant.valid_before,
        approver: grant.approver,
    };
    txn.record(None, None, &event)?;
    Ok(Issued {
        serial: cert.serial(),
        fingerprint,
        valid_before: spec.valid_before,
        cert: text,
    })
}
