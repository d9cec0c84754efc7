//! The server config file (`portcullis.toml`).
//!
//! Invariant: every path a loaded [`Config`] hands out is absolute, resolved
//! against the directory of the config file, so a setup directory moves as one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cidr::Cidr;

mod archive;
mod cluster;
mod limits;
mod notify;
mod syslog;
mod web;
pub use archive::ArchiveSettings;
pub use cluster::{is_replica_name, ClusterSettings, DEFAULT_DEAD_AFTER};
use limits::LimitsFile;
pub use limits::{Limits, Rate};
pub use notify::{NotifySecret, NotifyTarget, DEFAULT_NOTIFY_TIMEOUT};
pub use syslog::{SyslogTarget, SyslogTransport};
pub use web::{WebTls, DEFAULT_WEB_LISTEN};

/// How long live sessions may go on after SIGTERM, when the config does
/// not say: long enough for a command in flight, short for a restart.
pub const DEFAULT_SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

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
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
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
    #[serde(default)]
    limits: LimitsFile,
    worker_threads: Option<usize>,
    shutdown_drain: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    metrics: MetricsFile,
    #[serde(default)]
    web: web::WebFile,
    #[serde(default)]
    syslog: syslog::SyslogFile,
    #[serde(default)]
    notify: notify::NotifyFile,
    #[serde(default)]
    cluster: cluster::ClusterFile,
    #[serde(default)]
    archive: archive::ArchiveFile,
}

/// `[metrics]`: the Prometheus endpoint, off unless `listen` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    task_key: PathBuf,
    upstream_key: PathBuf,
    #[serde(default)]
    trusted: Vec<PathBuf>,
    revoked_keys: Option<PathBuf>,
    write_krl: Option<PathBuf>,
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
    /// An OpenSSH KRL whose revocations are refused at authentication.
    pub revoked_keys: Option<PathBuf>,
    /// Where to keep the KRL of the store's revocations, for targets.
    pub write_krl: Option<PathBuf>,
    pub limits: Limits,
    /// Threads of the async runtime (the network side).
    pub worker_threads: usize,
    /// On SIGTERM/SIGINT, how long live sessions may go on before they
    /// are ended.
    pub shutdown_drain: Duration,
    /// Load balancers whose PROXY protocol header names the real client;
    /// from them the header is required, from anyone else refused.
    pub trusted_proxies: Vec<Cidr>,
    /// Where Prometheus scrapes `/metrics`; `None`: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the web viewer listens (`[web] listen`, else
    /// [`DEFAULT_WEB_LISTEN`]); `serve` prints review links to it.
    pub web_listen: SocketAddr,
    /// `[web] tls_cert`/`tls_key`: the viewer speaks HTTPS; `None`: plain HTTP.
    pub web_tls: Option<WebTls>,
    /// `[web] serve = true`: `serve` runs the viewer too, in its process.
    pub web_serve: bool,
    /// Where `serve` forwards each chained event; `None`: nowhere.
    pub syslog: Option<SyslogTarget>,
    /// Where `serve` POSTs pending requests and held commands; `None`: nowhere.
    pub notify: Option<NotifyTarget>,
    /// `[cluster]`: the shared PostgreSQL control state; `None`: this
    /// machine's SQLite store holds everything.
    pub cluster: Option<ClusterSettings>,
    /// `[archive]`: where ended sessions are sealed (with `[cluster]`).
    pub archive: Option<ArchiveSettings>,
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
        let limits = parsed
            .limits
            .resolve()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        let worker_threads = match parsed.worker_threads {
            None => default_worker_threads(),
            Some(n) if (1..=1024).contains(&n) => n,
            Some(n) => {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("worker_threads = {n}: must be 1 to 1024"),
                })
            }
        };
        let shutdown_drain = match &parsed.shutdown_drain {
            None => DEFAULT_SHUTDOWN_DRAIN,
            Some(text) => {
                crate::policy::parse_duration(text).map_err(|e| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("shutdown_drain: {e}"),
                })?
            }
        };
        let trusted_proxies = parsed
            .trusted_proxies
            .iter()
            .map(|block| {
                Cidr::parse(block).ok_or_else(|| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "trusted_proxies: {block:?} is not a CIDR block (e.g. 10.0.0.5/32)"
                    ),
                })
            })
            .collect::<Result<_, _>>()?;
        let metrics_listen = match &parsed.metrics.listen {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("[metrics] listen = {text:?}: not host:port"),
            })?),
        };
        let web = parsed
            .web
            .resolve(&base)
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        let syslog = parsed
            .syslog
            .resolve()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        let notify = parsed
            .notify
            .resolve(&base)
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        let cluster = parsed
            .cluster
            .resolve(&base)
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        let archive = parsed
            .archive
            .resolve(&base)
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        if archive.is_some() && cluster.is_none() {
            // The archive's seals are kept in the cluster's chain.
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "[archive] needs [cluster]: the seals of archived sessions are kept in its database".into(),
            });
        }
        Ok(Config {
            archive,
            cluster,
            syslog,
            notify,
            limits,
            worker_threads,
            shutdown_drain,
            trusted_proxies,
            metrics_listen,
            web_listen: web.listen,
            web_tls: web.tls,
            web_serve: web.serve,
            listen,
            host_keys: parsed.host_keys.iter().map(|p| base.join(p)).collect(),
            policy_dir: base.join(&parsed.policy),
            store: base.join(&parsed.store),
            task_ca_key: base.join(&parsed.ca.task_key),
            upstream_ca_key: base.join(&parsed.ca.upstream_key),
            trusted_ca_files: parsed.ca.trusted.iter().map(|p| base.join(p)).collect(),
            revoked_keys: parsed.ca.revoked_keys.as_ref().map(|p| base.join(p)),
            write_krl: parsed.ca.write_krl.as_ref().map(|p| base.join(p)),
            file,
        })
    }

    /// The config path from the flag, the environment, or the default.
    pub fn locate(flag: Option<PathBuf>) -> PathBuf {
        flag.or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE))
    }
}

/// The network side's threads when the config does not say: one per core
/// but one, which is left to the store's writer thread. The writer records
/// every byte the network side moves; sharing every core with it made both
/// slower (measured on 2 cores: one worker moved a recorded download as
/// fast for 0.3 CPU s per GiB less, as tasks no longer hop between cores).
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
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
# On SIGTERM/SIGINT, live sessions may go on this long, then are ended.
# shutdown_drain = "5s"
# Load balancers that send the PROXY protocol (v1 or v2): required from
# them, refused from anyone else.
# trusted_proxies = ["10.0.0.5/32"]

[ca]
# Signs task certificates (`portcullis grant`, the request flow).
task_key = "ca/task_ca"
# Signs per-session upstream certificates; targets trust ca/upstream_ca.pub
# with sshd's TrustedUserCAKeys.
upstream_key = "ca/upstream_ca"
# Public keys of further CAs (ssh-keygen -s, step-ca, Vault) whose user
# certificates are accepted under the same policy.
trusted = []
# An OpenSSH KRL (ssh-keygen -k) whose revoked certs and keys are refused.
# revoked_keys = "revoked_keys.krl"
# Keep a KRL of every cert revoked here, for targets' sshd RevokedKeys.
# write_krl = "portcullis.krl"

[limits]
# Abuse limits (these are the defaults).
# pre_auth_timeout = "30s"          # authenticate within this long
# max_unauthenticated = 64          # connections not yet authenticated
# auth_failures_per_source = 20     # failed connections a minute, then a doubling back-off
# auth_failures_exempt = []         # networks never backed off, e.g. ["10.1.0.0/16"]
# max_sessions_per_identity = 64
# max_channels_per_session = 16
# idle_timeout = "30m"              # no channel traffic for this long ends a session
# keepalive_interval = "30s"
# max_command_bytes = 32768
# request_expiry = "1h"             # pending grant requests and held commands expire
# held_command_wait = "120s"        # an ssh holding a command waits this long, then exits 75
# grant_request_burst = 5           # grant requests per identity: a burst,
# grant_request_every = "6s"        #   then one per period
# held_command_burst = 5            # held commands per identity: a burst,
# held_command_every = "12s"        #   then one per period

[metrics]
# A Prometheus endpoint (GET /metrics); off unless set.
# listen = "127.0.0.1:9191"

[web]
# Where the reviewers' viewer (`portcullis web`) listens. Plain HTTP unless
# tls_cert and tls_key are set: without them keep it on loopback or behind
# a TLS reverse proxy.
# listen = "127.0.0.1:2280"
# tls_cert = "web/cert.pem"         # PEM certificate chain, server's first
# tls_key = "web/key.pem"           # PEM private key; mode 0600
# serve = false                     # true: `portcullis serve` runs the viewer too

[syslog]
# Forward each chained event from `serve` as an RFC 5424 message (the
# event's JSON line as the message, its kind as MSGID); off unless set.
# address = "udp:127.0.0.1:514"     # or "tcp:HOST:PORT", "unix:/dev/log"
# facility = "auth"                 # user, daemon, auth, authpriv, local0-7

[notify]
# POST each grant request awaiting approval and each held command as JSON,
# signed with HMAC-SHA256 (X-Portcullis-Signature); off unless url is set.
# url = "https://chat.example/hooks/portcullis"
# secret_file = "notify.secret"     # the key; mode 0600 (openssl rand -hex 32)
# timeout = "5s"                    # per attempt; failures are retried, then recorded
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

    #[test]
    fn worker_threads_default_to_all_cores_but_one_and_reject_zero() {
        let path = Path::new("/etc/portcullis/portcullis.toml");
        let with = |line: &str| {
            let text = default_config_text("127.0.0.1:2222")
                .replace("store = ", &format!("{line}\nstore = "));
            Config::parse(path, &text)
        };
        let default = with("").map(|c| c.worker_threads).ok();
        assert_eq!(default, Some(default_worker_threads()));
        assert!(default_worker_threads() >= 1);
        assert_eq!(
            with("worker_threads = 3").map(|c| c.worker_threads).ok(),
            Some(3)
        );
        let error = with("worker_threads = 0").err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("worker_threads = 0")),
            "{error:?}"
        );
    }
}
