//! TLS for the viewer (`[web] tls_cert`, `tls_key`): rustls on the ring
//! provider the rest of the binary uses, HTTP/1.1 only.
//!
//! Invariant: a key file group or others may access refuses the start (as
//! ssh refuses such private keys, and `[notify]` such secrets); nothing
//! read from the key file is ever put in an error or a log.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::WebTls;

/// Larger than any certificate chain or key; a bound on what is read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The acceptor for `tls`: the chain and key read, checked and paired.
pub fn acceptor(tls: &WebTls) -> anyhow::Result<TlsAcceptor> {
    let certs = read_chain(&tls.cert)?;
    let key = read_key(&tls.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("[web] TLS: no protocol version")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "[web] tls_cert {} with tls_key {}",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    // Only HTTP/1 is served: a client must not be told h2 will do.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("[web] tls_cert {shown}"))?;
    let pem = read_bounded(file).with_context(|| format!("[web] tls_cert {shown}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("[web] tls_cert {shown}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(anyhow!("[web] tls_cert {shown}: no CERTIFICATE in it"));
    }
    Ok(certs)
}

/// The private key; refused unless a regular file only its owner may
/// access.
fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("[web] tls_key {shown}"))?;
    // The opened file's own metadata: no swap between check and read.
    let meta = file
        .metadata()
        .with_context(|| format!("[web] tls_key {shown}"))?;
    if !meta.is_file() {
        return Err(anyhow!("[web] tls_key {shown}: not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(anyhow!(
            "[web] tls_key {shown}: mode {mode:04o} lets group or others at the key; chmod 600 it"
        ));
    }
    let pem = read_bounded(file).with_context(|| format!("[web] tls_key {shown}"))?;
    // The parser's error may quote a line of the file: not shown.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        anyhow!("[web] tls_key {shown}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")
    })
}

fn read_bounded(file: File) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(anyhow!("larger than {MAX_PEM_BYTES} bytes"));
    }
    Ok(bytes)
}
