//! Authentication decisions: which presented certificate opens which session.
//!
//! Invariant: an [`AuthorizedSession`] exists only for a certificate that
//! passed every check and a policy ceiling that lets its identity reach the
//! login's target, and only after its start is committed to the store.

use std::net::SocketAddr;

use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PublicKey};

use super::ServerContext;
use crate::audit::{Event, NewSession, SessionId, Store};
use crate::cert::verify::verify_user_cert;
use crate::cert::{CertRefusal, VerifiedCert};
use crate::clock;
use crate::grants::CertFacts;
use crate::policy::{CeilingRefusal, Identity, Policy, RESERVED_LOGIN};
use crate::scope::Scope;

/// A session the bastion has admitted. Only [`admit`] makes one: its
/// fields are private so no other code can forge one.
#[derive(Debug)]
pub struct AuthorizedSession {
    id: SessionId,
    cert: VerifiedCert,
    scope: Scope,
    single_use: bool,
}

impl AuthorizedSession {
    pub fn id(&self) -> SessionId {
        self.id
    }
    /// The identity, as the cert's key id names it.
    pub fn identity(&self) -> &str {
        &self.cert.key_id
    }
    pub fn cert(&self) -> &VerifiedCert {
        &self.cert
    }
    pub fn scope(&self) -> &Scope {
        &self.scope
    }
    /// Whether the grant ends with this session (a role's `single_session`).
    pub fn single_use(&self) -> bool {
        self.single_use
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthRefusal {
    #[error(transparent)]
    Cert(#[from] CertRefusal),
    #[error(transparent)]
    Policy(#[from] CeilingRefusal),
    #[error("a plain public key is not accepted: present a task certificate")]
    PlainKey,
    /// russh refuses a cert that is outside its validity window or badly
    /// signed before the handler sees it; the plain-key retry that follows
    /// is all that reaches us.
    #[error(
        "no usable certificate was presented and a plain public key is not accepted \
         (a certificate that is expired, not yet valid or badly signed is refused before inspection)"
    )]
    NoUsableCertificate,
    #[error("the audit store cannot record the session, so none is opened")]
    StoreUnavailable,
    #[error("certificate serial {serial} was revoked ({selector}) by {by}")]
    Revoked {
        serial: u64,
        selector: String,
        by: String,
    },
    #[error("certificate serial {0} is a single-session grant that was already used")]
    SingleUseSpent(u64),
    #[error("a certificate cannot log in as \"grant\": request grants with the identity key")]
    CertOnGrantLogin,
    #[error("this key is not an identity key in the policy")]
    UnknownIdentityKey,
    #[error("identity keys only log in as \"grant\" to request a task certificate")]
    IdentityKeyOnTarget,
    #[error("identity {identity} already has {open} sessions open (max_sessions_per_identity)")]
    TooManySessions { identity: String, open: usize },
}

/// Checks `cert` for `login` from `peer`; on success commits the session
/// start and returns the admitted session, on refusal records why.
pub async fn admit(
    ctx: &ServerContext,
    cert: &Certificate,
    login: &str,
    peer: Option<SocketAddr>,
) -> Result<AuthorizedSession, AuthRefusal> {
    let client_addr = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let decided = match decide(ctx, cert, login, peer) {
        Ok(decided) => check_grant_state(ctx, decided).await,
        Err(refusal) => Err(refusal),
    };
    let (verified, scope, single_use) = match decided {
        Ok(ok) => ok,
        Err(refusal) => {
            record_refusal(&ctx.store, Some(cert), login, &client_addr, &refusal).await;
            return Err(refusal);
        }
    };
    let started = ctx
        .store
        .begin_session(NewSession {
            identity: verified.key_id.clone(),
            key_id: verified.key_id.clone(),
            task: verified.scope.task.clone(),
            cert_serial: verified.serial,
            ca_fingerprint: verified.ca_fingerprint.clone(),
            client_addr: client_addr.clone(),
            target: scope.target().name.clone(),
            login: login.to_string(),
        })
        .await;
    let Ok(id) = started else {
        let refusal = AuthRefusal::StoreUnavailable;
        record_refusal(&ctx.store, Some(cert), login, &client_addr, &refusal).await;
        return Err(refusal);
    };
    let accepted = Event::AuthAccepted {
        key_id: verified.key_id.clone(),
        serial: verified.serial,
        ca_fingerprint: verified.ca_fingerprint.clone(),
        principals: verified.principals.clone(),
        login: login.to_string(),
    };
    if ctx.store.record(Some(id), None, accepted).await.is_err() {
        return Err(AuthRefusal::StoreUnavailable);
    }
    Ok(AuthorizedSession {
        id,
        cert: verified,
        scope,
        single_use,
    })
}

type Decided = (VerifiedCert, Scope, bool);

fn decide(
    ctx: &ServerContext,
    cert: &Certificate,
    login: &str,
    peer: Option<SocketAddr>,
) -> Result<Decided, AuthRefusal> {
    if login == RESERVED_LOGIN {
        return Err(AuthRefusal::CertOnGrantLogin);
    }
    let now = clock::now_unix();
    let verified = verify_user_cert(cert, login, peer.map(|p| p.ip()), &ctx.trusted, now)?;
    let ceiling = ctx
        .policy
        .ceiling(&verified.key_id, login, verified.lifetime())?;
    let single_use = ceiling.single_session;
    let scope = Scope::new(&verified, ceiling, ctx.limits.max_command_bytes);
    Ok((verified, scope, single_use))
}

/// Revocation, then the single-use claim: both read the grants tables, so
/// a store that cannot answer refuses (fail closed).
async fn check_grant_state(ctx: &ServerContext, decided: Decided) -> Result<Decided, AuthRefusal> {
    let (verified, _, single_use) = &decided;
    let open = ctx.live.count_identity(&verified.key_id);
    if open >= ctx.limits.max_sessions_per_identity {
        return Err(AuthRefusal::TooManySessions {
            identity: verified.key_id.clone(),
            open,
        });
    }
    if !ctx.store.is_healthy() {
        return Err(AuthRefusal::StoreUnavailable);
    }
    let facts = CertFacts {
        ca_fingerprint: verified.ca_fingerprint.clone(),
        serial: verified.serial,
        key_id: verified.key_id.clone(),
        task: verified.scope.task.clone(),
        valid_after: verified.valid_after,
    };
    let lookup = facts.clone();
    let revoked = ctx
        .grants
        .run(move |db| db.revocation_of(&lookup))
        .await
        .map_err(|_| AuthRefusal::StoreUnavailable)?;
    if let Some(revocation) = revoked {
        return Err(AuthRefusal::Revoked {
            serial: facts.serial,
            selector: revocation.selector.to_string(),
            by: revocation.by,
        });
    }
    if *single_use {
        let won = ctx
            .grants
            .run(move |db| db.claim_single_use(&facts.ca_fingerprint, facts.serial))
            .await
            .map_err(|_| AuthRefusal::StoreUnavailable)?;
        if !won {
            return Err(AuthRefusal::SingleUseSpent(verified.serial));
        }
    }
    Ok(decided)
}

/// Records a refused authentication; a store failure here changes nothing
/// (the attempt is refused either way) but is logged.
pub async fn record_refusal(
    store: &Store,
    cert: Option<&Certificate>,
    login: &str,
    client_addr: &str,
    refusal: &AuthRefusal,
) {
    tracing::info!(login, client_addr, reason = %refusal, "authentication refused");
    let event = Event::AuthRefused {
        login: login.to_string(),
        key_id: cert.map(|c| c.key_id().to_string()),
        serial: cert.map(|c| c.serial()),
        ca_fingerprint: cert.map(|c| c.signature_key().fingerprint(HashAlg::Sha256).to_string()),
        client_addr: client_addr.to_string(),
        reason: refusal.to_string(),
    };
    if let Err(e) = store.record(None, None, event).await {
        tracing::error!(error = %e, "could not record a refused authentication");
    }
}

/// The policy identity whose listed key is `key`, if any.
pub fn identity_for_key<'p>(policy: &'p Policy, key: &PublicKey) -> Option<&'p Identity> {
    policy.identities.values().find(|identity| {
        identity
            .keys
            .iter()
            .filter_map(|line| PublicKey::from_openssh(line.trim()).ok())
            .any(|k| k.key_data() == key.key_data())
    })
}
