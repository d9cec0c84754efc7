//! `portcullis init`: a working setup directory in one step.
//!
//! Invariant: init never overwrites anything; it only creates what is
//! missing, so running it again (or `serve` on a partial setup) is safe.

use std::path::{Path, PathBuf};

use crate::cert::keyfile::{self, KeyFileError};
use crate::config::{self, DEFAULT_CONFIG_FILE};

/// The example policy that ships in the repository's `policy/`.
const EXAMPLE_POLICY: [(&str, &str); 3] = [
    ("targets.toml", include_str!("../policy/targets.toml")),
    ("roles.toml", include_str!("../policy/roles.toml")),
    ("identities.toml", include_str!("../policy/identities.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates whatever of the default setup is missing in `dir`; returns the
/// files it created.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>, SetupError> {
    let mut created = Vec::new();
    let config_file = dir.join(DEFAULT_CONFIG_FILE);
    if !config_file.exists() {
        let text = config::default_config_text("127.0.0.1:2222");
        keyfile::write_file(&config_file, text.as_bytes(), 0o644)?;
        created.push(config_file);
    }
    let keys = [
        ("hostkeys/ssh_host_ed25519_key", "portcullis host key"),
        ("ca/task_ca", "portcullis task CA"),
        ("ca/upstream_ca", "portcullis upstream CA"),
    ];
    for (relative, comment) in keys {
        let path = dir.join(relative);
        if !path.exists() {
            let key = keyfile::generate_ed25519()?;
            keyfile::write_key_pair(&path, &key, comment)?;
            created.push(path);
        }
    }
    // The CA directory holds signing keys: nobody else needs to list it.
    let ca_dir = dir.join("ca");
    std::fs::set_permissions(&ca_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|source| SetupError::Io {
            path: ca_dir.clone(),
            source,
        })?;
    for (name, text) in EXAMPLE_POLICY {
        let path = dir.join("policy").join(name);
        if !path.exists() {
            keyfile::write_file(&path, text.as_bytes(), 0o644)?;
            created.push(path);
        }
    }
    Ok(created)
}
