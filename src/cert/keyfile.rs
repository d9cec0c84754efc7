//! Reading and writing OpenSSH key files.
//!
//! Invariant: a private key this module writes is created with mode 0600
//! before any secret byte reaches it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey, PublicKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an OpenSSH key: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("generating a key failed: {0}")]
    Generate(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A fresh Ed25519 key pair (thread RNG, seeded from the OS).
pub fn generate_ed25519() -> Result<PrivateKey, KeyFileError> {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| KeyFileError::Generate(e.to_string()))
}

pub fn read_private(path: &Path) -> Result<PrivateKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    PrivateKey::from_openssh(text).map_err(|e| KeyFileError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub fn read_public(path: &Path) -> Result<PublicKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    PublicKey::from_openssh(text.trim()).map_err(|e| KeyFileError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A CA's public key from `[ca] task_key`: the `.pub` file itself (a
/// replica kept without the private key), or the private key's public half.
pub fn read_ca_public(path: &Path) -> Result<PublicKey, KeyFileError> {
    match path.extension() {
        Some(ext) if ext == "pub" => read_public(path),
        _ => Ok(read_private(path)?.public_key().clone()),
    }
}

/// Writes `key` to `path` (0600) and its public half to `path.pub` (0644).
pub fn write_key_pair(path: &Path, key: &PrivateKey, comment: &str) -> Result<(), KeyFileError> {
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyFileError::Generate(e.to_string()))?;
    write_file(path, text.as_bytes(), 0o600)?;
    let mut public = key.public_key().clone();
    public.set_comment(comment);
    let line = public
        .to_openssh()
        .map_err(|e| KeyFileError::Generate(e.to_string()))?;
    write_file(&public_path(path), format!("{line}\n").as_bytes(), 0o644)
}

/// `KEY` -> `KEY.pub`.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Creates `path` with `mode` (never widening an existing file) and writes `bytes`.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))
}
