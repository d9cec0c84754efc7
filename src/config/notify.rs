//! `[notify]`: the webhook `serve` POSTs each pending grant request and
//! each held command to, signed with a shared secret. Off unless `url` is
//! set.
//!
//! Invariant: parsing touches no file; [`NotifyTarget::read_secret`] reads
//! the secret and refuses one that group or others may access (as ssh
//! refuses such private keys), so a leaked key cannot forge notices.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How long one delivery may take when the config does not say.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// A shorter key is guessable; a longer file is not a key.
const MIN_SECRET: usize = 16;
const MAX_SECRET: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// `http://` or `https://`; may carry a token in its path, so it is
    /// never logged whole.
    pub url: String,
    /// The HMAC key (absolute path).
    pub secret_file: PathBuf,
    /// One delivery attempt, connect to response headers.
    pub timeout: Duration,
}

/// The HMAC key: the secret file's bytes less trailing whitespace.
#[derive(Clone)]
pub struct NotifySecret(Vec<u8>);

impl NotifySecret {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn for_tests(key: &[u8]) -> NotifySecret {
        NotifySecret(key.to_vec())
    }
}

impl std::fmt::Debug for NotifySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifySecret(..)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifyFile {
    url: Option<String>,
    secret_file: Option<PathBuf>,
    timeout: Option<String>,
}

impl NotifyFile {
    pub(super) fn resolve(&self, base: &Path) -> Result<Option<NotifyTarget>, String> {
        let Some(url) = &self.url else {
            if self.secret_file.is_some() || self.timeout.is_some() {
                return Err("[notify] secret_file or timeout is set but url is not".into());
            }
            return Ok(None);
        };
        check_url(url)?;
        let secret_file = self
            .secret_file
            .as_ref()
            .ok_or("[notify] url is set but secret_file is not: notices are always signed")?;
        let timeout = match &self.timeout {
            None => DEFAULT_NOTIFY_TIMEOUT,
            Some(text) => crate::policy::parse_duration(text)
                .map_err(|e| format!("[notify] timeout: {e}"))
                .and_then(
                    |t| match (1..=MAX_TIMEOUT.as_secs()).contains(&t.as_secs()) {
                        true => Ok(t),
                        false => Err(format!("[notify] timeout = {text:?}: must be 1s to 60s")),
                    },
                )?,
        };
        Ok(Some(NotifyTarget {
            url: url.clone(),
            secret_file: base.join(secret_file),
            timeout,
        }))
    }
}

/// `http://HOST[:PORT]/...` or `https://...`, without credentials.
fn check_url(url: &str) -> Result<(), String> {
    // The value is not echoed: a webhook URL often carries a token.
    let invalid = |why: &str| format!("[notify] url: {why}");
    let uri: ureq::http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("must start with http:// or https://")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("names no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "must not carry credentials (the signature authenticates)",
        ));
    }
    if authority.host().is_empty() {
        return Err(invalid("names no host"));
    }
    Ok(())
}

impl NotifyTarget {
    /// `scheme://host[:port]`: what may be logged of the URL.
    pub fn origin(&self) -> String {
        match self.url.parse::<ureq::http::Uri>() {
            Ok(uri) => format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("?"),
                uri.authority().map(|a| a.as_str()).unwrap_or("?")
            ),
            Err(_) => "?".into(),
        }
    }

    /// Reads the HMAC key; refused unless it is a regular file only its
    /// owner may access, of 16 to 4096 bytes.
    pub fn read_secret(&self) -> Result<NotifySecret, String> {
        let path = &self.secret_file;
        let shown = path.display();
        let file = File::open(path).map_err(|e| format!("[notify] secret_file {shown}: {e}"))?;
        // The opened file's own metadata: no swap between check and read.
        let meta = file
            .metadata()
            .map_err(|e| format!("[notify] secret_file {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("[notify] secret_file {shown}: not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "[notify] secret_file {shown}: mode {mode:04o} lets group or others at the key; \
                 chmod 600 it"
            ));
        }
        let mut bytes = Vec::new();
        file.take(MAX_SECRET + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("[notify] secret_file {shown}: {e}"))?;
        if bytes.len() as u64 > MAX_SECRET {
            return Err(format!(
                "[notify] secret_file {shown}: longer than {MAX_SECRET} bytes"
            ));
        }
        let key = bytes.trim_ascii_end();
        if key.len() < MIN_SECRET {
            return Err(format!(
                "[notify] secret_file {shown}: shorter than {MIN_SECRET} bytes \
                 (make one with: openssl rand -hex 32)"
            ));
        }
        Ok(NotifySecret(key.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        url: Option<&str>,
        secret: Option<&str>,
        timeout: Option<&str>,
    ) -> Result<Option<NotifyTarget>, String> {
        NotifyFile {
            url: url.map(Into::into),
            secret_file: secret.map(Into::into),
            timeout: timeout.map(Into::into),
        }
        .resolve(Path::new("/etc/portcullis"))
    }

    #[test]
    fn a_url_and_a_secret_file_make_a_target_relative_to_the_config() {
        let target = resolve(
            Some("https://hooks.example/x/TOKEN"),
            Some("notify.secret"),
            None,
        );
        assert_eq!(
            target,
            Ok(Some(NotifyTarget {
                url: "https://hooks.example/x/TOKEN".into(),
                secret_file: "/etc/portcullis/notify.secret".into(),
                timeout: DEFAULT_NOTIFY_TIMEOUT,
            }))
        );
        let origin = target.ok().flatten().map(|t| t.origin());
        assert_eq!(origin.as_deref(), Some("https://hooks.example"));
        let timed = resolve(Some("http://127.0.0.1:8080/hook"), Some("/k"), Some("10s"));
        assert_eq!(
            timed.ok().flatten().map(|t| (t.secret_file, t.timeout)),
            Some(("/k".into(), Duration::from_secs(10)))
        );
        assert_eq!(resolve(None, None, None), Ok(None));
    }

    #[test]
    fn bad_urls_timeouts_and_half_sections_are_refused() {
        for url in [
            "ftp://h/x",
            "127.0.0.1:8080/hook",
            "http://user:pw@h/x",
            "http:///x",
            "not a url",
        ] {
            let error = resolve(Some(url), Some("k"), None);
            assert!(error.is_err(), "{url}: {error:?}");
            // Never echoed: it may carry a token.
            assert!(!error.unwrap_err().contains(url), "{url}");
        }
        assert!(resolve(Some("http://h/x"), None, None).is_err());
        for timeout in ["0s", "2m", "five"] {
            assert!(
                resolve(Some("http://h/x"), Some("k"), Some(timeout)).is_err(),
                "{timeout}"
            );
        }
        assert!(resolve(None, Some("k"), None).is_err());
        assert!(resolve(None, None, Some("5s")).is_err());
    }

    fn target_for(path: &Path) -> NotifyTarget {
        NotifyTarget {
            url: "http://127.0.0.1:1/hook".into(),
            secret_file: path.to_path_buf(),
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        if let Err(e) = std::fs::write(path, text)
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        {
            panic!("cannot write {}: {e}", path.display());
        }
    }

    #[test]
    fn the_secret_is_the_file_less_its_newline_and_only_the_owners() {
        let dir = match tempfile::TempDir::new() {
            Ok(dir) => dir,
            Err(e) => panic!("{e}"),
        };
        let path = dir.path().join("notify.secret");
        write(&path, "0123456789abcdef0123\n", 0o600);
        let secret = target_for(&path).read_secret();
        assert_eq!(
            secret.as_ref().map(NotifySecret::bytes).ok(),
            Some(&b"0123456789abcdef0123"[..])
        );
        assert_eq!(
            format!("{:?}", secret.ok()),
            "Some(NotifySecret(..))",
            "never printed"
        );
        for mode in [0o640, 0o604, 0o660, 0o644] {
            write(&path, "0123456789abcdef0123\n", mode);
            let error = target_for(&path).read_secret().err().unwrap_or_default();
            assert!(error.contains("chmod 600"), "{mode:o}: {error}");
            assert!(
                !error.contains("0123456789"),
                "the key is never shown: {error}"
            );
        }
        write(&path, "short\n", 0o400);
        assert!(target_for(&path).read_secret().is_err());
        write(&path, &"k".repeat(5000), 0o600);
        assert!(target_for(&path).read_secret().is_err());
        assert!(target_for(dir.path()).read_secret().is_err());
        assert!(target_for(&dir.path().join("missing"))
            .read_secret()
            .is_err());
    }
}
