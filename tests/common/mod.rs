//! The end-to-end harness: the real `portcullis` binary, real OpenSSH `sshd`
//! targets and the real `ssh` client, all on 127.0.0.1.
//!
//! Invariant: a test shares nothing with any other test. Every bastion, target
//! and key lives in its own temporary directory and on its own loopback port,
//! every process it starts is killed when its handle drops, so tests run in
//! parallel. A test states only what differs from [`Setup::standard`].
//!
//! When a test panics, the handles print the bastion's and the targets' logs
//! on drop (libtest shows them with the failure). Set `PORTCULLIS_KEEP_TMP=1`
//! to keep the temporary directories for a look afterwards.
#![allow(dead_code)]

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The target name, role and identity of [`Setup::standard`].
pub const TARGET: &str = "web1";
pub const ROLE: &str = "ops";
pub const AGENT: &str = "agent-7";
/// Commands the standard role allows.
pub const STANDARD_EXEC: &[&str] = &["echo *", "printf *", "cat", "true", "false"];

const SSHD: &str = "/usr/sbin/sshd";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const SSH_TIMEOUT: Duration = Duration::from_secs(30);
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The binary under test. Cargo sets this for the integration tests of the
/// crate that builds the `portcullis` binary.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_portcullis"))
}

/// The local user: the login every target sshd is reached with.
pub fn whoami() -> String {
    let out = run_ok(Command::new("id").arg("-un"), "id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loopback port that was free a moment ago (bind :0, read, drop).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn tempdir() -> TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("portcullis-e2e-")
        .tempdir()
        .expect("create a temporary directory");
    if std::env::var_os("PORTCULLIS_KEEP_TMP").is_some() {
        dir.disable_cleanup(true);
    }
    dir
}

/// Runs a command to completion; panics with its output unless it succeeded.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Writes an executable `#!/bin/sh` script and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
    path
}

/// The last `max` lines of a log file, for failure messages.
fn tail(path: &Path, max: usize) -> String {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max)..].join("\n")
}

/// A long-running child process, killed (and reaped) on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(cmd: &mut Command, log: &Path) -> Daemon {
        let file = File::create(log).expect("create log file");
        let out = file.try_clone().expect("clone log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Waits until `port` accepts a TCP connection, or the process exits, or
    /// the start timeout passes.
    fn wait_listening(&mut self, port: u16) -> Result<(), StartFailure> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartFailure::Exited(status));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartFailure::Timeout);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
enum StartFailure {
    Exited(ExitStatus),
    Timeout,
}

impl StartFailure {
    /// Someone else took the port between `free_port` and our bind: retry.
    fn lost_port_race(&self, log: &Path) -> bool {
        let text = fs::read_to_string(log).unwrap_or_default();
        matches!(self, StartFailure::Exited(_))
            && (text.contains("in use") || text.contains("Cannot bind any address"))
    }
}

// ---------------------------------------------------------------------------
// Targets: one real sshd each
// ---------------------------------------------------------------------------

/// A real OpenSSH sshd on 127.0.0.1, with its own Ed25519 host key, that
/// accepts only user certificates signed by the given (upstream) CA, for the
/// local user.
pub struct Target {
    pub name: String,
    pub port: u16,
    /// The host key line (`ssh-ed25519 AAAA...`) to pin in targets.toml.
    pub host_key: String,
    pub log_path: PathBuf,
    upstream_ca_pub: PathBuf,
    daemon: Option<Daemon>,
    dir: TempDir,
}

impl Target {
    /// Starts a target sshd on a fresh loopback port.
    pub fn start(name: &str, upstream_ca_pub: &Path) -> Target {
        for _ in 0..5 {
            match Target::try_start(name, upstream_ca_pub, free_port()) {
                Ok(target) => return target,
                Err((_, true)) => continue,
                Err((msg, false)) => panic!("{msg}"),
            }
        }
        panic!("target {name}: no free port after 5 tries")
    }

    /// Starts a target sshd on the given port, with a host key of its own
    /// (for instance an impostor where a pinned target used to be).
    pub fn start_on_port(name: &str, upstream_ca_pub: &Path, port: u16) -> Target {
        // The port may still be held for a moment by the process just killed.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match Target::try_start(name, upstream_ca_pub, port) {
                Ok(target) => return target,
                Err((_, true)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50))
                }
                Err((msg, _)) => panic!("{msg}"),
            }
        }
    }

    fn try_start(name: &str, upstream_ca_pub: &Path, port: u16) -> Result<Target, (String, bool)> {
        fs::create_dir_all("/run/sshd")
            .expect("create /run/sshd (sshd's privilege separation directory)");
        let dir = tempdir();
        let host_key = dir.path().join("ssh_host_ed25519_key");
        run_ok(
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    &format!("target-{name}"),
                    "-f",
                ])
                .arg(&host_key),
            "ssh-keygen (target host key)",
        );
        let config = dir.path().join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host_key}\n\
                 PidFile {pid}\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 TrustedUserCAKeys {ca}\n\
                 AuthorizedKeysFile none\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 SetEnv SHLVL=1\n\
                 LogLevel VERBOSE\n\
                 MaxStartups 200\n\
                 PrintMotd no\n\
                 Subsystem sftp internal-sftp\n",
                host_key = host_key.display(),
                pid = dir.path().join("sshd.pid").display(),
                ca = upstream_ca_pub.display(),
            ),
        )
        .expect("write sshd_config");
        let log_path = dir.path().join("sshd.log");
        let mut daemon = Daemon::spawn(
            Command::new(SSHD).arg("-f").arg(&config).args(["-D", "-e"]),
            &log_path,
        );
        if let Err(failure) = daemon.wait_listening(port) {
            let retry = failure.lost_port_race(&log_path);
            return Err((
                format!(
                    "target {name}: sshd on 127.0.0.1:{port} did not start ({failure:?})\n--- sshd log\n{}",
                    tail(&log_path, 50)
                ),
                retry,
            ));
        }
        Ok(Target {
            name: name.to_string(),
            port,
            host_key: pub_key_line(&host_key.with_extension("pub")),
            log_path,
            upstream_ca_pub: upstream_ca_pub.to_path_buf(),
            daemon: Some(daemon),
            dir,
        })
    }

    /// Stops the sshd: the target is down.
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop();
        }
    }

    /// Stops this sshd and starts another one on the same port with a new
    /// host key: what the bastion pinned no longer matches.
    pub fn replace_with_new_host_key(&mut self) {
        self.stop();
        let impostor = Target::start_on_port(&self.name, &self.upstream_ca_pub, self.port);
        assert_ne!(impostor.host_key, self.host_key);
        *self = impostor;
    }

    /// The login every target is reached with: the local user.
    pub fn user(&self) -> String {
        whoami()
    }

    /// The sshd log so far (`LogLevel VERBOSE`).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Every login this sshd accepted with a certificate, in order.
    pub fn cert_logins(&self) -> Vec<CertLogin> {
        cert_logins(&self.log())
    }
}

/// One `Accepted publickey for USER from ... ssh2: ED25519-CERT SHA256:... ID KEY_ID (serial N) CA ...`
/// line of an sshd log (`LogLevel VERBOSE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertLogin {
    pub user: String,
    pub key_id: String,
    pub serial: u64,
}

/// Parses the certificate logins out of an sshd log.
pub fn cert_logins(log: &str) -> Vec<CertLogin> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split("Accepted publickey for ").nth(1)?;
            let user = rest.split(' ').next()?.to_string();
            let (_, cert) = rest.split_once("-CERT ")?;
            let (_, id) = cert.split_once(" ID ")?;
            let (key_id, serial) = id.rsplit_once(" (serial ")?;
            let serial = serial.split(')').next()?.parse().ok()?;
            Some(CertLogin {
                user,
                key_id: key_id.to_string(),
                serial,
            })
        })
        .collect()
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- sshd log of target {} (port {})\n{}",
                self.name,
                self.port,
                tail(&self.log_path, 60)
            );
        }
    }
}

/// The `TYPE BASE64` part of an OpenSSH public key file (no comment).
pub fn pub_key_line(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Keys and certificates
// ---------------------------------------------------------------------------

/// A client key pair made by `ssh-keygen`: `DIR/NAME` and `DIR/NAME.pub`.
/// A certificate for it lands in `DIR/NAME-cert.pub`, which `ssh` also picks
/// up by itself: one key, one certificate.
pub struct AgentKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl AgentKey {
    pub fn generate(dir: &Path, name: &str) -> AgentKey {
        let private = dir.join(name);
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(&private),
            "ssh-keygen (agent key)",
        );
        AgentKey {
            public: private.with_extension("pub"),
            private,
        }
    }

    /// Where `grant` and `ssh-keygen -s` write this key's certificate.
    pub fn cert_path(&self) -> PathBuf {
        let mut name = self
            .private
            .file_name()
            .expect("key file name")
            .to_os_string();
        name.push("-cert.pub");
        self.private.with_file_name(name)
    }
}

/// A CA key pair of its own: a CA the bastion trusts through `[ca] trusted`
/// (see [`Setup::trusted_ca_file`]) or one it has never heard of.
pub struct CaKey {
    pub private: PathBuf,
    pub public: PathBuf,
    _dir: TempDir,
}

impl CaKey {
    pub fn generate(name: &str) -> CaKey {
        let dir = tempdir();
        let key = AgentKey::generate(dir.path(), name);
        CaKey {
            private: key.private,
            public: key.public,
            _dir: dir,
        }
    }
}

/// Signs `pubkey` with `ssh-keygen -s` and returns the certificate path.
///
/// `validity` is ssh-keygen's `-V` (`"-5m:+10m"`, `"+1h"`: note that
/// ssh-keygen backdates a lone `+T` by a minute). The certificate starts from
/// `-O clear` (no extensions) and gets exactly `options`, each one `-O`
/// argument: `critical:exec@portcullis=["uptime"]`, `source-address=10.0.0.1/32`,
/// `force-command=...`, `extension:permit-pty`, ... An empty `principals`
/// list signs a certificate without principals.
#[allow(clippy::too_many_arguments)]
pub fn sign_with_ssh_keygen(
    ca_private_key: &Path,
    pubkey: &Path,
    key_id: &str,
    principals: &[&str],
    validity: &str,
    options: &[&str],
    host_cert: bool,
    serial: u64,
) -> PathBuf {
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q")
        .arg("-s")
        .arg(ca_private_key)
        .args(["-I", key_id]);
    if !principals.is_empty() {
        cmd.args(["-n", &principals.join(",")]);
    }
    cmd.args(["-V", validity, "-z", &serial.to_string()]);
    if host_cert {
        cmd.arg("-h");
    }
    cmd.args(["-O", "clear"]);
    for option in options {
        cmd.args(["-O", option]);
    }
    cmd.arg(pubkey);
    run_ok(&mut cmd, "ssh-keygen -s");
    let pubkey = pubkey.to_string_lossy();
    let cert = PathBuf::from(format!(
        "{}-cert.pub",
        pubkey.strip_suffix(".pub").unwrap_or(&pubkey)
    ));
    assert!(cert.exists(), "ssh-keygen -s wrote no {}", cert.display());
    cert
}

/// What a certificate signed with `ssh-keygen` says; defaults to a valid
/// user certificate for the standard identity and target.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub key_id: String,
    pub principals: Vec<String>,
    pub validity: String,
    pub options: Vec<String>,
    pub host_cert: bool,
    pub serial: u64,
}

impl CertSpec {
    pub fn standard() -> CertSpec {
        CertSpec {
            key_id: AGENT.to_string(),
            principals: vec![TARGET.to_string()],
            validity: "-1m:+10m".to_string(),
            options: Vec::new(),
            host_cert: false,
            serial: 1,
        }
    }
    pub fn key_id(mut self, key_id: &str) -> Self {
        self.key_id = key_id.to_string();
        self
    }
    pub fn principals(mut self, principals: &[&str]) -> Self {
        self.principals = principals.iter().map(|p| p.to_string()).collect();
        self
    }
    pub fn validity(mut self, validity: &str) -> Self {
        self.validity = validity.to_string();
        self
    }
    /// One more `-O` option.
    pub fn option(mut self, option: &str) -> Self {
        self.options.push(option.to_string());
        self
    }
    /// `critical:exec@portcullis=<JSON array of patterns>`.
    pub fn exec(self, patterns: &[&str]) -> Self {
        let json = serde_json::to_string(patterns).expect("patterns to JSON");
        self.option(&format!("critical:exec@portcullis={json}"))
    }
    pub fn host_cert(mut self) -> Self {
        self.host_cert = true;
        self
    }
    pub fn serial(mut self, serial: u64) -> Self {
        self.serial = serial;
        self
    }

    pub fn sign(&self, ca_private_key: &Path, key: &AgentKey) -> PathBuf {
        let principals: Vec<&str> = self.principals.iter().map(String::as_str).collect();
        let options: Vec<&str> = self.options.iter().map(String::as_str).collect();
        sign_with_ssh_keygen(
            ca_private_key,
            &key.public,
            &self.key_id,
            &principals,
            &self.validity,
            &options,
            self.host_cert,
            self.serial,
        )
    }
}

// ---------------------------------------------------------------------------
// The policy a bastion starts with
// ---------------------------------------------------------------------------

/// A role in roles.toml.
#[derive(Clone, Debug)]
pub struct Role {
    pub targets: Vec<String>,
    pub exec: Vec<String>,
    pub open: Vec<String>,
    pub pty: bool,
    pub max_ttl: String,
    pub approval: String,
    pub single_session: bool,
}

impl Role {
    /// A role on these targets that allows nothing yet; max_ttl 15m, auto approval.
    pub fn on(targets: &[&str]) -> Role {
        Role {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            exec: Vec::new(),
            open: Vec::new(),
            pty: false,
            max_ttl: "15m".to_string(),
            approval: "auto".to_string(),
            single_session: false,
        }
    }
    pub fn exec(mut self, patterns: &[&str]) -> Self {
        self.exec.extend(patterns.iter().map(|p| p.to_string()));
        self
    }
    pub fn max_ttl(mut self, ttl: &str) -> Self {
        self.max_ttl = ttl.to_string();
        self
    }
    pub fn pty(mut self, pty: bool) -> Self {
        self.pty = pty;
        self
    }
    pub fn single_session(mut self, single: bool) -> Self {
        self.single_session = single;
        self
    }
}

/// What a bastion starts with: its targets (each a real sshd), the roles and
/// identities of its policy, and further trusted CA public key files.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub targets: Vec<String>,
    pub roles: Vec<(String, Role)>,
    pub identities: Vec<(String, Vec<String>)>,
    pub trusted_ca_files: Vec<PathBuf>,
}

impl Setup {
    /// The world most tests share: target `web1`, role `ops` on it allowing
    /// [`STANDARD_EXEC`] with max_ttl 15m, identity `agent-7` holding `ops`.
    pub fn standard() -> Setup {
        Setup::empty()
            .target(TARGET)
            .role(ROLE, Role::on(&[TARGET]).exec(STANDARD_EXEC))
            .identity(AGENT, &[ROLE])
    }

    pub fn empty() -> Setup {
        Setup::default()
    }

    /// A target backed by a fresh sshd.
    pub fn target(mut self, name: &str) -> Self {
        self.targets.push(name.to_string());
        self
    }

    /// Adds the role, or replaces the one of the same name.
    pub fn role(mut self, name: &str, role: Role) -> Self {
        self.roles.retain(|(n, _)| n != name);
        self.roles.push((name.to_string(), role));
        self
    }

    /// Further command patterns for the standard role.
    pub fn allow(mut self, patterns: &[&str]) -> Self {
        let (_, role) = self
            .roles
            .iter_mut()
            .find(|(n, _)| n == ROLE)
            .expect("Setup::allow needs the standard role");
        role.exec.extend(patterns.iter().map(|p| p.to_string()));
        self
    }

    pub fn identity(mut self, name: &str, roles: &[&str]) -> Self {
        self.identities.retain(|(n, _)| n != name);
        self.identities.push((
            name.to_string(),
            roles.iter().map(|r| r.to_string()).collect(),
        ));
        self
    }

    /// A CA public key file to list under `[ca] trusted` (copied into the setup dir).
    pub fn trusted_ca_file(mut self, path: &Path) -> Self {
        self.trusted_ca_files.push(path.to_path_buf());
        self
    }
}

/// A TOML basic string: JSON's escapes are a subset of TOML's.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

fn toml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

// ---------------------------------------------------------------------------
// The bastion
// ---------------------------------------------------------------------------

/// A `portcullis serve` set up by `portcullis init` in a fresh directory,
/// with the policy of a [`Setup`] and its targets running.
pub struct Bastion {
    pub port: u16,
    pub config: PathBuf,
    pub log_path: PathBuf,
    targets: Vec<Target>,
    daemon: Option<Daemon>,
    keys_made: Cell<u32>,
    dir: TempDir,
}

impl Bastion {
    pub fn start(setup: Setup) -> Bastion {
        let dir = tempdir();
        let root = dir.path();
        run_ok(
            Command::new(bin())
                .arg("init")
                .arg(root)
                .current_dir(root)
                .env_remove("PORTCULLIS_CONFIG"),
            "portcullis init",
        );
        let config = root.join("portcullis.toml");
        assert!(
            config.exists(),
            "portcullis init wrote no {}",
            config.display()
        );
        if !setup.trusted_ca_files.is_empty() {
            trust_cas(root, &config, &setup.trusted_ca_files);
        }

        let upstream_ca_pub = root.join("ca/upstream_ca.pub");
        assert!(
            upstream_ca_pub.exists(),
            "portcullis init wrote no {}",
            upstream_ca_pub.display()
        );
        let targets: Vec<Target> = setup
            .targets
            .iter()
            .map(|name| Target::start(name, &upstream_ca_pub))
            .collect();
        write_policy(&root.join("policy"), &setup, &targets);

        fs::create_dir_all(root.join("agents")).expect("create agents dir");
        let log_path = root.join("serve.log");
        for _ in 0..5 {
            let port = free_port();
            let mut daemon = Daemon::spawn(
                Command::new(bin())
                    .arg("serve")
                    .arg("--config")
                    .arg(&config)
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .current_dir(root)
                    .env_remove("PORTCULLIS_CONFIG")
                    .env("RUST_BACKTRACE", "1"),
                &log_path,
            );
            match daemon.wait_listening(port) {
                Ok(()) => {
                    return Bastion {
                        port,
                        config,
                        log_path,
                        targets,
                        daemon: Some(daemon),
                        keys_made: Cell::new(0),
                        dir,
                    }
                }
                Err(failure) if failure.lost_port_race(&log_path) => continue,
                Err(failure) => panic!(
                    "portcullis serve did not accept connections on 127.0.0.1:{port} ({failure:?})\n--- serve log\n{}",
                    tail(&log_path, 80)
                ),
            }
        }
        panic!("portcullis serve: no free port after 5 tries")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The bastion's host key, as the agent pins it.
    pub fn host_key(&self) -> String {
        pub_key_line(&self.dir().join("hostkeys/ssh_host_ed25519_key.pub"))
    }

    /// The task CA's private key (it signs agents' certificates).
    pub fn task_ca(&self) -> PathBuf {
        self.dir().join("ca/task_ca")
    }

    /// The upstream CA's public key (the targets' sshd trusts it).
    pub fn upstream_ca_pub(&self) -> PathBuf {
        self.dir().join("ca/upstream_ca.pub")
    }

    pub fn target(&self, name: &str) -> &Target {
        self.targets
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no target {name} in this setup"))
    }

    pub fn target_mut(&mut self, name: &str) -> &mut Target {
        self.targets
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no target {name} in this setup"))
    }

    /// What `serve` printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs `portcullis SUBCOMMAND --config C ARGS...` and returns its output
    /// whatever its status.
    pub fn cli(&self, subcommand: &str, args: &[&str]) -> Output {
        Command::new(bin())
            .arg(subcommand)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir())
            .env_remove("PORTCULLIS_CONFIG")
            .output()
            .unwrap_or_else(|e| panic!("cannot run portcullis {subcommand}: {e}"))
    }

    /// Like [`Bastion::cli`], panicking with the output unless it succeeded.
    pub fn cli_ok(&self, subcommand: &str, args: &[&str]) -> Output {
        let out = self.cli(subcommand, args);
        if !out.status.success() {
            panic!(
                "portcullis {subcommand} {args:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    /// A fresh client key pair in this setup's `agents/` directory.
    pub fn new_key(&self) -> AgentKey {
        let n = self.keys_made.get() + 1;
        self.keys_made.set(n);
        AgentKey::generate(&self.dir().join("agents"), &format!("key{n}"))
    }

    /// An agent with a fresh key and a cert from `portcullis grant` for the
    /// standard identity and role (ttl 10m, task `T-1`), logging in to the
    /// standard target.
    pub fn granted_agent(&self) -> Agent<'_> {
        let key = self.new_key();
        let cert = grant(self, AGENT, ROLE, "10m", &key, Some("T-1"));
        Agent {
            bastion: self,
            key,
            cert: Some(cert),
            login: TARGET.to_string(),
            via_ssh_agent: false,
        }
    }

    /// An agent with a fresh key and a cert signed by `ssh-keygen -s`.
    pub fn signed_agent(&self, ca_private_key: &Path, spec: &CertSpec) -> Agent<'_> {
        let key = self.new_key();
        let cert = spec.sign(ca_private_key, &key);
        Agent {
            bastion: self,
            key,
            cert: Some(cert),
            login: TARGET.to_string(),
            via_ssh_agent: false,
        }
    }

    /// An agent with a fresh key and no certificate at all.
    pub fn agent_without_cert(&self) -> Agent<'_> {
        Agent {
            bastion: self,
            key: self.new_key(),
            cert: None,
            login: TARGET.to_string(),
            via_ssh_agent: false,
        }
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop();
        }
        if thread::panicking() {
            eprintln!(
                "--- portcullis serve log (port {}, dir {})\n{}",
                self.port,
                self.dir().display(),
                tail(&self.log_path, 120)
            );
        }
    }
}

/// Lists the given CA public keys under `[ca] trusted` in portcullis.toml,
/// as copies inside the setup directory (paths relative to the config).
fn trust_cas(root: &Path, config: &Path, files: &[PathBuf]) {
    let mut names = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let name = format!("ca/trusted_{i}.pub");
        fs::copy(file, root.join(&name)).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        names.push(name);
    }
    let text = fs::read_to_string(config).expect("read portcullis.toml");
    let line = format!("trusted = {}", toml_list(&names));
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("trusted") && l.contains('=') {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        let ca = out
            .iter()
            .position(|l| l.trim() == "[ca]")
            .unwrap_or_else(|| panic!("portcullis.toml has no [ca] table:\n{text}"));
        out.insert(ca + 1, line);
    }
    fs::write(config, out.join("\n") + "\n").expect("write portcullis.toml");
}

fn write_policy(dir: &Path, setup: &Setup, targets: &[Target]) {
    fs::create_dir_all(dir).expect("create policy dir");
    let user = whoami();
    let mut t = String::new();
    for target in targets {
        t += &format!(
            "[targets.{}]\naddress = {}\nuser = {}\nhost_key = {}\nauth = \"certificate\"\n\n",
            toml_str(&target.name),
            toml_str(&format!("127.0.0.1:{}", target.port)),
            toml_str(&user),
            toml_str(&target.host_key)
        );
    }
    let mut r = String::new();
    for (name, role) in &setup.roles {
        r += &format!(
            "[roles.{}]\ntargets = {}\nexec = {}\nopen = {}\npty = {}\nmax_ttl = {}\napproval = {}\nsingle_session = {}\n\n",
            toml_str(name),
            toml_list(&role.targets),
            toml_list(&role.exec),
            toml_list(&role.open),
            role.pty,
            toml_str(&role.max_ttl),
            toml_str(&role.approval),
            role.single_session
        );
    }
    let mut i = String::new();
    for (name, roles) in &setup.identities {
        i += &format!(
            "[identities.{}]\nkeys = []\nroles = {}\n\n",
            toml_str(name),
            toml_list(roles)
        );
    }
    fs::write(dir.join("targets.toml"), t).expect("write targets.toml");
    fs::write(dir.join("roles.toml"), r).expect("write roles.toml");
    fs::write(dir.join("identities.toml"), i).expect("write identities.toml");
}

/// `portcullis grant`: signs a task cert for `key` and returns its path.
pub fn grant(
    bastion: &Bastion,
    identity: &str,
    role: &str,
    ttl: &str,
    key: &AgentKey,
    task: Option<&str>,
) -> PathBuf {
    let pubkey = key.public.to_string_lossy().into_owned();
    let mut args = vec![
        "--identity",
        identity,
        "--role",
        role,
        "--ttl",
        ttl,
        "--pubkey",
        &pubkey,
    ];
    if let Some(task) = task {
        args.extend(["--task", task]);
    }
    bastion.cli_ok("grant", &args);
    let cert = key.cert_path();
    assert!(
        cert.exists(),
        "portcullis grant wrote no {}",
        cert.display()
    );
    cert
}

// ---------------------------------------------------------------------------
// The real ssh client
// ---------------------------------------------------------------------------

/// What one `ssh` run gave back.
pub struct SshOutput {
    /// ssh's exit status: the remote command's, or 255 for ssh's own errors.
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl SshOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The stderr lines the bastion wrote (`portcullis: ...`).
    pub fn portcullis_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("portcullis:"))
            .collect()
    }
}

impl std::fmt::Debug for SshOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stdout = self.stdout_text();
        let shown: String = stdout.chars().take(2000).collect();
        write!(
            f,
            "ssh exited {}\n--- stdout ({} bytes)\n{shown}\n--- stderr\n{}",
            self.code,
            self.stdout.len(),
            self.stderr
        )
    }
}

/// One `ssh` connection, as an agent makes it.
pub struct SshCall<'a> {
    pub port: u16,
    /// The server's host key line, pinned in a known_hosts file of its own.
    pub host_key: &'a str,
    pub login: &'a str,
    pub key: &'a Path,
    pub cert: Option<&'a Path>,
    pub command: &'a str,
    pub stdin: Option<&'a [u8]>,
    /// Offer the key and its cert (`KEY-cert.pub`) from a private ssh-agent
    /// instead of from files: the only way to make OpenSSH's client offer a
    /// *host* certificate (from files it skips one: "not a user certificate").
    pub via_ssh_agent: bool,
}

impl SshCall<'_> {
    /// Runs the real OpenSSH client: no config file, no agent, only this key
    /// (and its cert), strict host key checking; killed after 30 s.
    pub fn run(&self) -> SshOutput {
        let scratch = tempdir();
        let known_hosts = scratch.path().join("known_hosts");
        fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_key),
        )
        .expect("write known_hosts");
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-T", "-p", &self.port.to_string()]);
        cmd.args(["-o", "BatchMode=yes"]);
        let _ssh_agent = if self.via_ssh_agent {
            let (agent, socket) = start_ssh_agent(scratch.path(), self.key);
            cmd.arg("-o")
                .arg(format!("IdentityAgent={}", socket.display()));
            cmd.args(["-o", "IdentitiesOnly=no", "-o", "IdentityFile=none"]);
            Some(agent)
        } else {
            cmd.args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]);
            cmd.arg("-o")
                .arg(format!("IdentityFile={}", self.key.display()));
            if let Some(cert) = self.cert {
                cmd.arg("-o")
                    .arg(format!("CertificateFile={}", cert.display()));
            }
            None
        };
        cmd.arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
            .arg(format!("{}@127.0.0.1", self.login))
            .arg("--")
            .arg(self.command)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run ssh");

        let writer = match (self.stdin, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => {
                let bytes = bytes.to_vec();
                // A refused command closes the channel early: EPIPE is fine here.
                Some(thread::spawn(move || drop(pipe.write_all(&bytes))))
            }
            _ => None,
        };
        let stdout = reader(child.stdout.take().expect("ssh stdout"));
        let stderr = reader(child.stderr.take().expect("ssh stderr"));

        let deadline = Instant::now() + SSH_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for ssh") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(5));
        };
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        let out = SshOutput {
            code: status.and_then(|s| s.code()).unwrap_or(-1),
            stdout: stdout.join().expect("stdout reader"),
            stderr: String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned(),
        };
        if status.is_none() {
            panic!(
                "ssh {}@127.0.0.1:{} {:?} did not finish within {SSH_TIMEOUT:?}; killed\n{out:?}",
                self.login, self.port, self.command
            );
        }
        out
    }
}

/// A private `ssh-agent -D` holding `key` (and `KEY-cert.pub` if present).
fn start_ssh_agent(dir: &Path, key: &Path) -> (Daemon, PathBuf) {
    let socket = dir.join("agent.sock");
    let log = dir.join("agent.log");
    let agent = Daemon::spawn(
        Command::new("ssh-agent").arg("-D").arg("-a").arg(&socket),
        &log,
    );
    let deadline = Instant::now() + START_TIMEOUT;
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "ssh-agent made no socket: {}",
            tail(&log, 20)
        );
        thread::sleep(Duration::from_millis(10));
    }
    run_ok(
        Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket),
        "ssh-add",
    );
    (agent, socket)
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// `ssh -p PORT LOGIN@127.0.0.1 -- COMMAND` through the bastion.
pub fn ssh(
    bastion: &Bastion,
    login: &str,
    key: &AgentKey,
    cert: Option<&Path>,
    command: &str,
) -> SshOutput {
    ssh_with_stdin(bastion, login, key, cert, command, None)
}

/// Like [`ssh`], feeding `stdin` to the remote command.
pub fn ssh_with_stdin(
    bastion: &Bastion,
    login: &str,
    key: &AgentKey,
    cert: Option<&Path>,
    command: &str,
    stdin: Option<&[u8]>,
) -> SshOutput {
    let host_key = bastion.host_key();
    SshCall {
        port: bastion.port,
        host_key: &host_key,
        login,
        key: &key.private,
        cert,
        command,
        stdin,
        via_ssh_agent: false,
    }
    .run()
}

/// A key, maybe a certificate, and the login it uses on the bastion.
pub struct Agent<'b> {
    pub bastion: &'b Bastion,
    pub key: AgentKey,
    pub cert: Option<PathBuf>,
    pub login: String,
    pub via_ssh_agent: bool,
}

impl Agent<'_> {
    pub fn login_as(mut self, login: &str) -> Self {
        self.login = login.to_string();
        self
    }

    /// Offer the key and cert from an ssh-agent (see [`SshCall::via_ssh_agent`]).
    pub fn through_ssh_agent(mut self) -> Self {
        self.via_ssh_agent = true;
        self
    }

    pub fn run(&self, command: &str) -> SshOutput {
        self.call(command, None)
    }

    pub fn run_with_stdin(&self, command: &str, stdin: &[u8]) -> SshOutput {
        self.call(command, Some(stdin))
    }

    fn call(&self, command: &str, stdin: Option<&[u8]>) -> SshOutput {
        let host_key = self.bastion.host_key();
        SshCall {
            port: self.bastion.port,
            host_key: &host_key,
            login: &self.login,
            key: &self.key.private,
            cert: self.cert.as_deref(),
            command,
            stdin,
            via_ssh_agent: self.via_ssh_agent,
        }
        .run()
    }
}

// ---------------------------------------------------------------------------
// Outcomes as the contract states them
// ---------------------------------------------------------------------------

/// The command ran: this exit status and exactly this stdout.
#[track_caller]
pub fn assert_output(out: &SshOutput, code: i32, stdout: &str) {
    assert_eq!(
        (out.code, out.stdout_text().as_str()),
        (code, stdout),
        "{out:?}"
    );
}

/// The command was refused: exit status 126, nothing on stdout, and stderr
/// starts with `portcullis: refused:`.
#[track_caller]
pub fn assert_refused(out: &SshOutput) {
    assert_eq!(out.code, 126, "a refused command exits 126\n{out:?}");
    assert!(
        out.stderr.starts_with("portcullis: refused:"),
        "stderr starts with `portcullis: refused:`\n{out:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "a refused command prints nothing on stdout\n{out:?}"
    );
}

/// The certificate was refused at authentication: ssh gave up (255),
/// nothing ran, no session opened, and `sessions --refused --json` holds an
/// auth.refused event for this login whose reason contains `word`
/// (case-insensitive).
#[track_caller]
pub fn assert_cert_refused(agent: &Agent<'_>, word: &str) {
    let out = agent.run("echo hello");
    assert_eq!(out.code, 255, "ssh fails to authenticate\n{out:?}");
    assert!(out.stdout.is_empty(), "nothing ran\n{out:?}");
    assert!(
        out.stderr.contains("Permission denied"),
        "ssh says permission denied\n{out:?}"
    );
    let word = word.to_lowercase();
    eventually(
        &format!(
            "an auth.refused event for login {} whose reason contains {word:?}",
            agent.login
        ),
        || {
            let refused = refused_json(agent.bastion);
            let events = refused
                .as_array()
                .ok_or_else(|| format!("not an array: {refused}"))?;
            let reasons: Vec<&str> = events
                .iter()
                .filter(|e| e["kind"] == "auth.refused" && e["login"] == agent.login.as_str())
                .map(|e| e["reason"].as_str().unwrap_or_default())
                .collect();
            if reasons.iter().any(|r| r.to_lowercase().contains(&word)) {
                Ok(())
            } else {
                Err(format!("refusals recorded: {refused:#}"))
            }
        },
    );
    let sessions = sessions_json(agent.bastion);
    assert_eq!(
        sessions.as_array().map(Vec::len),
        Some(0),
        "a refused certificate opens no session: {sessions:#}"
    );
}

// ---------------------------------------------------------------------------
// The store, read through the public CLI
// ---------------------------------------------------------------------------

fn json_of(bastion: &Bastion, subcommand: &str, args: &[&str]) -> Value {
    let out = bastion.cli_ok(subcommand, args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "portcullis {subcommand} {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `portcullis sessions --json`.
pub fn sessions_json(bastion: &Bastion) -> Value {
    json_of(bastion, "sessions", &["--json"])
}

/// `portcullis sessions --refused --json`: the auth.refused events.
pub fn refused_json(bastion: &Bastion) -> Value {
    json_of(bastion, "sessions", &["--refused", "--json"])
}

/// `portcullis show ID --json`: `{"session": {...}, "events": [...]}`.
pub fn show_json(bastion: &Bastion, id: i64) -> Value {
    json_of(bastion, "show", &[&id.to_string(), "--json"])
}

/// The events of one `show --json` transcript with this kind.
pub fn events_of_kind<'a>(show: &'a Value, kind: &str) -> Vec<&'a Value> {
    show["events"]
        .as_array()
        .map(|events| events.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

/// The ids of every session, oldest first as listed.
pub fn session_ids(bastion: &Bastion) -> Vec<i64> {
    sessions_json(bastion)
        .as_array()
        .expect("sessions --json is an array")
        .iter()
        .map(|s| s["id"].as_i64().expect("a session has an integer id"))
        .collect()
}

/// Every session's transcript (`show --json`).
pub fn all_transcripts(bastion: &Bastion) -> Vec<Value> {
    session_ids(bastion)
        .into_iter()
        .map(|id| show_json(bastion, id))
        .collect()
}

/// The first transcript with an event of this kind matching `pred`, and that event.
pub fn find_event(
    bastion: &Bastion,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Option<(Value, Value)> {
    all_transcripts(bastion).into_iter().find_map(|show| {
        let event = events_of_kind(&show, kind)
            .into_iter()
            .find(|e| pred(e))
            .cloned()?;
        Some((show, event))
    })
}

/// Like [`find_event`], polling: the store may commit a moment after the
/// client saw the outcome. Panics after 5 s with every transcript.
#[track_caller]
pub fn wait_for_event(
    bastion: &Bastion,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Value) {
    eventually(&format!("a recorded {kind} event"), || {
        find_event(bastion, kind, &pred)
            .ok_or_else(|| format!("transcripts: {:#}", Value::from(all_transcripts(bastion))))
    })
}

/// Polls `check` until it gives `Ok`; after 5 s panics naming what was
/// awaited and the last `Err` (what was seen instead).
#[track_caller]
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + STORE_TIMEOUT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() > deadline => {
                panic!("timed out after {STORE_TIMEOUT:?} waiting for {what}; saw:\n{seen}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), for stdin payloads.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
