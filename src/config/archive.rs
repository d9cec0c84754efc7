//! `[archive]`: the S3-compatible bucket ended sessions are sealed into,
//! so any replica (and any reviewer) can read a session recorded on another.
//!
//! Invariant: parsing touches no file and no network; the secret key is
//! read from its own file (mode 0600, never printed) when the archive is
//! opened.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ArchiveFile {
    url: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key_file: Option<PathBuf>,
}

/// What `[archive]` comes to. Credentials not given here come from the
/// standard `AWS_*` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// An S3-compatible server's address (`http://` only for loopback
    /// and tests); `None`: AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

impl ArchiveFile {
    pub(super) fn resolve(&self, base: &Path) -> Result<Option<ArchiveSettings>, String> {
        let Some(url) = &self.url else {
            if self.endpoint.is_some() || self.access_key_id.is_some() {
                return Err("[archive] needs url = \"s3://bucket[/prefix]\"".into());
            }
            return Ok(None);
        };
        let bucket = url.strip_prefix("s3://").unwrap_or("");
        if bucket.is_empty() || bucket.starts_with('/') {
            return Err(format!("[archive] url = {url:?}: not s3://bucket[/prefix]"));
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(format!(
                    "[archive] endpoint = {endpoint:?}: not an http(s) URL"
                ));
            }
        }
        Ok(Some(ArchiveSettings {
            url: url.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key_file: self.secret_access_key_file.as_ref().map(|p| base.join(p)),
        }))
    }
}
