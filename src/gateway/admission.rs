//! Authentication decisions: which presented certificate opens which
//! session, and why every other attempt is refused.
//!
//! Invariant: a session opens only for a certificate that passed every
//! check (`cert::verify_user_cert`), whose identity's ceiling for the login's
//! target exists for the role it speaks for (`Policy::ceiling`), within the
//! identity's session limit, and whose admission transaction
//! (`session::admit`) found it neither revoked, nor suspended, nor spent.
//! Every refusal is one `auth.refused` row with the reason.

use std::net::SocketAddr;

use russh::keys::ssh_key::Certificate;
use russh::keys::HashAlg;

use super::connection;
use super::limits::Limit;
use super::ServerContext;
use crate::audit::{Event, Store};
use crate::cert::{cert_fingerprint, verify_user_cert, CertRefusal};
use crate::clock;
use crate::metrics::{metrics, ReasonLabel};
use crate::policy::{CeilingRefusal, RoleClaim, RESERVED_LOGIN, REVIEW_LOGIN};
use crate::session::admit::{self, AdmitRefusal, Arrival, Opened};
use crate::session::hold::HoldSettings;
use crate::session::SessionLimits;

#[derive(Debug, thiserror::Error)]
pub enum AuthRefusal {
    #[error(transparent)]
    Cert(#[from] CertRefusal),
    #[error(transparent)]
    Policy(#[from] CeilingRefusal),
    #[error(transparent)]
    Admit(#[from] AdmitRefusal),
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
    #[error("SHA-1 signatures (ssh-rsa) are refused; use rsa-sha2-256/512 or another key type")]
    Sha1Signature,
    #[error("a certificate cannot log in as \"grant\" or \"review\": those take the identity key")]
    CertOnGrantLogin,
    #[error("this key is not an identity key in the policy")]
    UnknownIdentityKey,
    #[error("identity keys only log in as \"grant\" to request a task certificate (or \"review\" to sign in to the web viewer)")]
    IdentityKeyOnTarget,
    #[error("identity {identity} already has {open} sessions open (max_sessions_per_identity)")]
    TooManySessions { identity: String, open: usize },
}

impl AuthRefusal {
    /// A fixed name for the kind of refusal (a metrics label).
    pub fn class(&self) -> &'static str {
        match self {
            AuthRefusal::Cert(refusal) => refusal.class(),
            AuthRefusal::Policy(_) => "policy",
            AuthRefusal::Admit(_) => "admission",
            AuthRefusal::PlainKey => "plain_key",
            AuthRefusal::NoUsableCertificate => "no_usable_certificate",
            AuthRefusal::Sha1Signature => "sha1_signature",
            AuthRefusal::CertOnGrantLogin => "cert_on_grant_login",
            AuthRefusal::UnknownIdentityKey => "unknown_identity_key",
            AuthRefusal::IdentityKeyOnTarget => "identity_key_on_target",
            AuthRefusal::TooManySessions { .. } => "max_sessions_per_identity",
        }
    }
}

/// Checks `cert` for `login` from `peer`; on success the session is open
/// (its start committed), on refusal why is recorded.
pub async fn admit(
    ctx: &ServerContext,
    cert: &Certificate,
    login: &str,
    peer: Option<SocketAddr>,
) -> Result<Admission, AuthRefusal> {
    let client_addr = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let opened = decide_and_open(ctx, cert, login, peer, &client_addr).await;
    if let Err(refusal) = &opened {
        record_refusal(&ctx.store, Some(cert), login, &client_addr, refusal).await;
        if let (AuthRefusal::TooManySessions { identity, .. }, Some(peer)) = (refusal, peer) {
            let reason = refusal.to_string();
            let limit = Limit::MaxSessionsPerIdentity;
            connection::record_limit(ctx, limit, peer, Some(identity), &reason).await;
        }
    }
    opened
}

async fn decide_and_open(
    ctx: &ServerContext,
    cert: &Certificate,
    login: &str,
    peer: Option<SocketAddr>,
    client_addr: &str,
) -> Result<Admission, AuthRefusal> {
    // Both reserved logins take identity keys only.
    if login == RESERVED_LOGIN || login == REVIEW_LOGIN {
        return Err(AuthRefusal::CertOnGrantLogin);
    }
    let now = clock::now_unix();
    let verified = verify_user_cert(cert, login, peer.map(|p| p.ip()), &ctx.trusted, now)?;
    if let Some(revoked_keys) = &ctx.revoked_keys {
        revoked_keys.check(cert)?;
    }
    let claim = match &verified.scope().role {
        Some(role) => RoleClaim::Named(role),
        None => RoleClaim::Unnamed,
    };
    let (policy_generation, policy) = ctx.policy_now();
    let ceiling = policy.ceiling(verified.key_id(), login, verified.lifetime(), claim)?;
    let open = ctx.live.count_identity(verified.key_id());
    if open >= ctx.limits.max_sessions_per_identity {
        return Err(AuthRefusal::TooManySessions {
            identity: verified.key_id().to_owned(),
            open,
        });
    }
    if verified.serial() == 0 {
        tracing::warn!(
            key_id = verified.key_id(),
            fingerprint = verified.fingerprint(),
            "certificate has serial 0 (ssh-keygen -s without -z): revoke it by --fingerprint, not --serial"
        );
    }
    let limits = SessionLimits {
        idle_timeout: ctx.limits.idle_timeout,
        max_command_bytes: ctx.limits.max_command_bytes,
        holds: HoldSettings {
            wait: ctx.limits.held_command_wait,
            expiry: ctx.limits.request_expiry,
            book: ctx.book.clone(),
        },
    };
    let arrival = Arrival {
        login: login.to_owned(),
        client_addr: client_addr.to_owned(),
    };
    let opened = admit::open(
        &ctx.store,
        ctx.cluster.as_ref(),
        verified,
        ceiling,
        arrival,
        limits,
    )
    .await?;
    Ok(Admission {
        opened,
        policy_generation,
    })
}

/// An admitted session, and the generation of the policy that admitted it
/// (a reload in between is caught up with at registration).
pub struct Admission {
    pub opened: Opened,
    pub policy_generation: u64,
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
    let class = ReasonLabel {
        reason: refusal.class(),
    };
    metrics().auth_refused.get_or_create(&class).inc();
    let event = Event::AuthRefused {
        login: login.to_string(),
        key_id: cert.map(|c| c.key_id().to_string()),
        serial: cert.map(|c| c.serial()),
        ca_fingerprint: cert.map(|c| c.signature_key().fingerprint(HashAlg::Sha256).to_string()),
        cert_fingerprint: cert.map(cert_fingerprint),
        client_addr: client_addr.to_string(),
        reason: refusal.to_string(),
    };
    if let Err(e) = store.record(None, None, event).await {
        tracing::error!(error = %e, "could not record a refused authentication");
    }
}
