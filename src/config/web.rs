//! `[web]`: where the reviewers' viewer listens, whether over TLS, and
//! whether `serve` runs it in its own process.
//!
//! Invariant: parsing touches no file; the key file is read (and refused
//! when group or others may access it) only when the viewer starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the viewer listens when neither `--listen` nor `[web]` says:
/// loopback only.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:2280";

/// `[web] tls_cert` and `tls_key`, absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTls {
    /// PEM: the server's certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1); mode 0600.
    pub key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebFile {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    serve: bool,
}

/// What `[web]` comes to.
pub(super) struct WebSettings {
    pub listen: SocketAddr,
    pub tls: Option<WebTls>,
    pub serve: bool,
}

impl WebFile {
    pub(super) fn resolve(&self, base: &Path) -> Result<WebSettings, String> {
        let text = self.listen.as_deref().unwrap_or(DEFAULT_WEB_LISTEN);
        let listen = text
            .parse()
            .map_err(|_| format!("[web] listen = {text:?}: not host:port"))?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(WebTls {
                cert: base.join(cert),
                key: base.join(key),
            }),
            // Half a TLS setup must not quietly serve plain HTTP.
            _ => return Err("[web] tls_cert and tls_key: set both or neither".into()),
        };
        Ok(WebSettings {
            listen,
            tls,
            serve: self.serve,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(cert: Option<&str>, key: Option<&str>) -> Result<Option<WebTls>, String> {
        WebFile {
            listen: None,
            tls_cert: cert.map(Into::into),
            tls_key: key.map(Into::into),
            serve: false,
        }
        .resolve(Path::new("/etc/portcullis"))
        .map(|web| web.tls)
    }

    #[test]
    fn tls_paths_resolve_against_the_config_directory() {
        let tls = resolve(Some("web/cert.pem"), Some("/keys/web.key"));
        assert_eq!(
            tls,
            Ok(Some(WebTls {
                cert: "/etc/portcullis/web/cert.pem".into(),
                key: "/keys/web.key".into(),
            }))
        );
        assert_eq!(resolve(None, None), Ok(None));
    }

    #[test]
    fn half_a_tls_setup_is_an_error_naming_both_keys() {
        for half in [resolve(Some("c.pem"), None), resolve(None, Some("k.pem"))] {
            let error = half.err().unwrap_or_default();
            assert!(
                error.contains("tls_cert") && error.contains("tls_key"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_bad_listen_address_is_named() {
        let web = WebFile {
            listen: Some("nowhere".into()),
            ..WebFile::default()
        };
        let error = web.resolve(Path::new("/")).err().unwrap_or_default();
        assert!(error.contains("[web] listen = \"nowhere\""), "{error}");
    }
}
