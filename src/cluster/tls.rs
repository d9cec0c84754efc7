//! TLS to the database: with `[cluster] ca_file`, every connection is
//! TLS (`sslmode=require` whatever the URL says: no silent downgrade),
//! verified against that file's CA certificates and the URL's host name.
//! Without it, connections are plaintext (loopback or a private link) and
//! a URL that asks for TLS is refused at start rather than left unverified.

use std::path::Path;
use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::ClusterError;

/// Sets the config's TLS mode; the connector every connection uses.
pub(super) fn connector(
    config: &mut tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> Result<MakeRustlsConnect, ClusterError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(file) => {
            config.ssl_mode(SslMode::Require);
            let shown = file.display();
            let pem = std::fs::read(file)
                .map_err(|e| ClusterError::Tls(format!("ca_file {shown}: {e}")))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ClusterError::Tls(format!("ca_file {shown}: not PEM certificates: {e}"))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ClusterError::Tls(format!(
                    "ca_file {shown}: no usable CA certificate"
                )));
            }
        }
        None if config.get_ssl_mode() == SslMode::Require => {
            return Err(ClusterError::Tls(
                "the database URL asks for TLS: name the server's CA in [cluster] ca_file".into(),
            ));
        }
        // `prefer` (the default) would try TLS with nothing to verify it by.
        None => {
            config.ssl_mode(SslMode::Disable);
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClusterError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(tls))
}
