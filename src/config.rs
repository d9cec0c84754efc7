//! The server config file (`portcullis.toml`).
//!
//! Invariant: every path a loaded [`Config`] hands out is absolute, resolved
//! against the directory of the config file, so a setup directory moves as one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "portcullis.toml";
pub const CONFIG_ENV: &str = "PORTCULLIS_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: listen address {value:?} is not host:port")]
    Listen { path: PathBuf, value: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default = "default_listen")]
    listen: String,
    host_keys: Vec<PathBuf>,
    policy: PathBuf,
    store: PathBuf,
    ca: CaFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    task_key: PathBuf,
    upstream_key: PathBuf,
    #[serde(default)]
    trusted: Vec<PathBuf>,
}

fn default_listen() -> String {
    "127.0.0.1:2222".to_string()
}

/// A loaded config with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub listen: SocketAddr,
    pub host_keys: Vec<PathBuf>,
    pub policy_dir: PathBuf,
    pub store: PathBuf,
    /// Private key of the CA that signs task certificates.
    pub task_ca_key: PathBuf,
    /// Private key of the CA that signs per-session upstream certificates.
    pub upstream_ca_key: PathBuf,
    /// Public keys of further CAs whose user certificates are accepted.
    pub trusted_ca_files: Vec<PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// The config in `text`, as if read from `path`: errors name `path`,
    /// and relative paths resolve against its directory. The filesystem is
    /// not touched; [`Config::load`] is this after reading the file.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let parsed: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().to_string(),
        })?;
        let file = absolute(path);
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let listen = parsed.listen.parse().map_err(|_| ConfigError::Listen {
            path: path.to_path_buf(),
            value: parsed.listen.clone(),
        })?;
        Ok(Config {
            listen,
            host_keys: parsed.host_keys.iter().map(|p| base.join(p)).collect(),
            policy_dir: base.join(&parsed.policy),
            store: base.join(&parsed.store),
            task_ca_key: base.join(&parsed.ca.task_key),
            upstream_ca_key: base.join(&parsed.ca.upstream_key),
            trusted_ca_files: parsed.ca.trusted.iter().map(|p| base.join(p)).collect(),
            file,
        })
    }

    /// The config path from the flag, the environment, or the default.
    pub fn locate(flag: Option<PathBuf>) -> PathBuf {
        flag.or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE))
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The config file `init` writes; paths relative to it.
pub fn default_config_text(listen: &str) -> String {
    format!(
        r#"# portcullis server config. Paths are relative to this file.
listen = "{listen}"
host_keys = ["hostkeys/ssh_host_ed25519_key"]
policy = "policy"
store = "portcullis.db"

[ca]
# Signs task certificates (`portcullis grant`, the request flow).
task_key = "ca/task_ca"
# Signs per-session upstream certificates; targets trust ca/upstream_ca.pub
# with sshd's TrustedUserCAKeys.
upstream_key = "ca/upstream_ca"
# Public keys of further CAs (ssh-keygen -s, step-ca, Vault) whose user
# certificates are accepted under the same policy.
trusted = []
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_text_is_the_config_loaded_from_the_file() {
        let dir = match tempfile::TempDir::new() {
            Ok(dir) => dir,
            Err(error) => panic!("cannot make a temp dir: {error}"),
        };
        let path = dir.path().join(DEFAULT_CONFIG_FILE);
        let text = default_config_text("127.0.0.1:2022");
        if let Err(error) = std::fs::write(&path, &text) {
            panic!("cannot write the config: {error}");
        }
        let (loaded, parsed) = match (Config::load(&path), Config::parse(&path, &text)) {
            (Ok(loaded), Ok(parsed)) => (loaded, parsed),
            other => panic!("{other:?}"),
        };
        assert_eq!(format!("{parsed:?}"), format!("{loaded:?}"));
        assert_eq!(parsed.policy_dir, dir.path().join("policy"));
        assert_eq!(parsed.listen.port(), 2022);
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        let path = Path::new("/etc/portcullis/portcullis.toml");
        let text = default_config_text("127.0.0.1:2222").replace("store =", "stor =");
        let error = match Config::parse(path, &text) {
            Ok(config) => panic!("parsed {config:?}"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.starts_with("/etc/portcullis/portcullis.toml:5: unknown field `stor`"),
            "{error}"
        );
    }
}
