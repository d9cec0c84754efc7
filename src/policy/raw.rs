//! The policy files exactly as written, before any semantic check.
//!
//! Invariant: these types only mirror the TOML shape; unknown keys are
//! rejected here (`deny_unknown_fields`), and every value that a later check
//! may complain about keeps its byte span so the complaint names its line.
//! Values with a fixed set of spellings (`auth`, `approval`) stay strings
//! here so that a misspelling is one more reported problem, not the end of
//! the file's checks.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type Name = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetsFile {
    #[serde(default)]
    pub targets: BTreeMap<Name, RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub address: Spanned<String>,
    pub user: Spanned<String>,
    pub host_key: Option<Spanned<String>>,
    pub auth: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolesFile {
    #[serde(default)]
    pub roles: BTreeMap<Name, RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub exec: Vec<Spanned<String>>,
    #[serde(default)]
    pub ask: Vec<Spanned<String>>,
    #[serde(default)]
    pub open: Vec<Spanned<String>>,
    #[serde(default)]
    pub pty: bool,
    pub max_ttl: Spanned<String>,
    pub approval: Option<Spanned<String>>,
    #[serde(default)]
    pub single_session: bool,
    #[serde(default)]
    pub sftp: bool,
    #[serde(default)]
    pub sftp_paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub listen: Vec<Spanned<String>>,
    #[serde(default)]
    pub capture: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentitiesFile {
    #[serde(default)]
    pub identities: BTreeMap<Name, RawIdentity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    pub roles: Vec<Spanned<String>>,
    /// May sign in to the web viewer (`review@`); TOML checks it is a bool.
    #[serde(default)]
    pub review: bool,
    /// May also approve and deny requests in the web viewer (needs review).
    #[serde(default)]
    pub approve: bool,
}
