//! Certificates: verifying the ones agents present, signing the ones
//! portcullis issues (task certs and per-session upstream certs).

pub mod keyfile;
pub mod krl;
pub mod options;
pub mod sign;
pub mod verify;

pub use options::CertScope;
pub use verify::{cert_fingerprint, verify_user_cert, TrustedCas, VerifiedCert};

/// Why a presented certificate is refused, worded for the person at the
/// client's terminal and for the audit row: always one line, so text taken
/// from the cert or the client is quoted with its control characters escaped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CertRefusal {
    #[error("a host certificate was presented as a user certificate")]
    HostCertificate,
    #[error("certificate is signed by a CA that is not trusted ({0})")]
    UntrustedCa(String),
    #[error("certificate signature is invalid")]
    BadSignature,
    #[error(
        "certificate is signed with SHA-1 (ssh-rsa) by its CA; re-sign it with rsa-sha2-512 or another key type"
    )]
    Sha1CaSignature,
    #[error("certificate is not yet valid (valid from {0})")]
    NotYetValid(String),
    #[error("certificate has expired (valid until {0})")]
    Expired(String),
    #[error("certificate lists no principals")]
    NoPrincipals,
    #[error("login {0:?} is not a listed principal of the certificate")]
    WrongPrincipal(String),
    #[error("certificate has an unknown critical option {0:?}")]
    UnknownCriticalOption(String),
    #[error("critical option {option} is invalid: {reason}")]
    BadOption { option: String, reason: String },
    #[error("source address {0} is not allowed by the certificate's source-address")]
    WrongSourceAddress(String),
    #[error("certificate has no key id naming an identity")]
    NoKeyId,
    #[error("certificate is revoked by the KRL {0} (revoked_keys)")]
    RevokedByKrl(String),
    #[error("the KRL {0} (revoked_keys) cannot be read, so every certificate is refused: {1}")]
    KrlUnreadable(String, String),
}

impl CertRefusal {
    /// A fixed name for the kind of refusal (a metrics label).
    pub fn class(&self) -> &'static str {
        match self {
            CertRefusal::HostCertificate => "host_certificate",
            CertRefusal::UntrustedCa(_) => "untrusted_ca",
            CertRefusal::BadSignature => "bad_signature",
            CertRefusal::Sha1CaSignature => "sha1_ca_signature",
            CertRefusal::NotYetValid(_) => "not_yet_valid",
            CertRefusal::Expired(_) => "expired",
            CertRefusal::NoPrincipals => "no_principals",
            CertRefusal::WrongPrincipal(_) => "wrong_principal",
            CertRefusal::UnknownCriticalOption(_) => "unknown_critical_option",
            CertRefusal::BadOption { .. } => "bad_option",
            CertRefusal::WrongSourceAddress(_) => "wrong_source_address",
            CertRefusal::NoKeyId => "no_key_id",
            CertRefusal::RevokedByKrl(_) => "revoked_by_krl",
            CertRefusal::KrlUnreadable(..) => "krl_unreadable",
        }
    }
}
