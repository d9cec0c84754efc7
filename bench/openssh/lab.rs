//! The lab: every key, config, daemon and store of one run, in one
//! directory, on loopback high ports.
//!
//! Invariant: nothing outside the lab directory is read or written (beyond
//! `/run/sshd`, which Debian's sshd requires), no system service is touched,
//! and every daemon started here is killed when the lab is dropped.
//!
//! Who trusts whom:
//! - the target sshd trusts the bastion's upstream CA (portcullis logs in
//!   with per-session certs) and the lab CA (the direct client);
//! - the jump sshd trusts the lab CA (ProxyJump and relay);
//! - portcullis trusts its own task CA; the bench agent's cert comes from
//!   `portcullis grant`, with a role that allows any command on the target.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::procs::Daemon;
use crate::Sizes;

/// The target name in the bastion's policy (= login name on the bastion).
pub const TARGET: &str = "bench";
const IDENTITY: &str = "bench-agent";
const ROLE: &str = "bench";
const SSHD: &str = "/usr/sbin/sshd";

pub struct Lab {
    dir: TempDir,
    bin: PathBuf,
    /// ssh client configs: each side's default cipher, and aes128-gcm forced.
    pub config_default: PathBuf,
    pub config_aes: PathBuf,
    config: PathBuf,
    /// Held so that it runs as long as the lab (and is killed with it).
    target: Daemon,
    jump: Daemon,
    bastion: Daemon,
    bastion_port: u16,
}

impl Lab {
    pub fn start(sizes: &Sizes, keep: bool) -> Result<Lab, String> {
        // PORTCULLIS_BENCH_BIN runs another build of the bastion in the same
        // lab (A/B comparisons of two builds); default: this tree's.
        let bin = std::env::var_os("PORTCULLIS_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_portcullis")));
        let mut dir = tempfile::Builder::new()
            .prefix("portcullis-bench-")
            .tempdir()
            .map_err(|e| format!("creating the lab directory: {e}"))?;
        if keep {
            dir.disable_cleanup(true);
        }
        let root = dir.path().to_path_buf();
        fs::create_dir_all("/run/sshd").map_err(|e| {
            format!("creating /run/sshd (sshd's privilege separation directory): {e}")
        })?;
        let user = run(Command::new("id").arg("-un"), "id -un")?;

        // The bastion's setup: config, host key, task CA, upstream CA.
        run(
            Command::new(&bin)
                .arg("init")
                .arg(&root)
                .env_remove("PORTCULLIS_CONFIG"),
            "portcullis init",
        )?;
        let config = root.join("portcullis.toml");
        raise_limits(&config, sizes)?;

        // The lab CA signs the client cert used for direct, -J and relay.
        let keys = root.join("keys");
        fs::create_dir_all(&keys).map_err(|e| e.to_string())?;
        let lab_ca = keygen(&keys.join("lab_ca"))?;
        let client = keygen(&keys.join("client"))?;
        run(
            Command::new("ssh-keygen")
                .args(["-q", "-s"])
                .arg(&lab_ca)
                .args(["-I", "bench-client", "-n", &user, "-V", "-5m:+2d"])
                .arg(client.with_extension("pub")),
            "ssh-keygen -s (client cert)",
        )?;
        let agent = keygen(&keys.join("agent"))?;

        let target_dir = root.join("target");
        let jump_dir = root.join("jump");
        let trusted = target_dir.join("trusted_user_cas");
        fs::create_dir_all(&target_dir).map_err(|e| e.to_string())?;
        fs::write(
            &trusted,
            read(&root.join("ca/upstream_ca.pub"))? + &read(&lab_ca.with_extension("pub"))?,
        )
        .map_err(|e| e.to_string())?;
        let (target, target_port, target_key) = start_sshd(&target_dir, "target", &trusted)?;
        let (jump, jump_port, jump_key) =
            start_sshd(&jump_dir, "jump", &lab_ca.with_extension("pub"))?;

        write_policy(&root.join("policy"), target_port, &target_key, &user)?;
        run(
            Command::new(&bin)
                .args(["grant", "--config"])
                .arg(&config)
                .args(["--identity", IDENTITY, "--role", ROLE, "--ttl", "1d"])
                .arg("--pubkey")
                .arg(agent.with_extension("pub"))
                .args(["--task", "bench"]),
            "portcullis grant",
        )?;

        let (bastion, bastion_port) = start_bastion(&bin, &config, &root.join("serve.log"))?;
        let bastion_key = read(&root.join("hostkeys/ssh_host_ed25519_key.pub"))?;
        let known_hosts = root.join("known_hosts");
        fs::write(
            &known_hosts,
            format!(
                "[127.0.0.1]:{target_port} {}\n[127.0.0.1]:{jump_port} {}\n[127.0.0.1]:{bastion_port} {}\n",
                key_line(&target_key),
                key_line(&jump_key),
                key_line(&bastion_key)
            ),
        )
        .map_err(|e| e.to_string())?;
        let ports = Ports {
            target: target_port,
            jump: jump_port,
            bastion: bastion_port,
        };
        let config_default = root.join("ssh_config");
        let config_aes = root.join("ssh_config_aes128gcm");
        for (path, ciphers) in [
            (&config_default, None),
            (&config_aes, Some("aes128-gcm@openssh.com")),
        ] {
            let text = client_config(&ports, &user, &keys, &known_hosts, ciphers);
            fs::write(path, text).map_err(|e| e.to_string())?;
        }
        Ok(Lab {
            dir,
            bin,
            config_default,
            config_aes,
            config,
            target,
            jump,
            bastion,
            bastion_port,
        })
    }

    /// Stops the bastion and starts a fresh process on the same port and
    /// store, so that memory is measured from a clean baseline.
    pub fn restart_bastion(&mut self) -> Result<(), String> {
        let root = self.dir().to_path_buf();
        let log = root.join("serve-restarted.log");
        self.bastion.stop();
        let mut deadline = 50;
        loop {
            let mut daemon = Daemon::spawn(
                &mut bastion_command(&self.bin, &root, &self.config, self.bastion_port),
                &log,
            )?;
            match daemon.wait_listening(self.bastion_port, "portcullis serve (restarted)") {
                Ok(()) => {
                    self.bastion = daemon;
                    return Ok(());
                }
                // The old process may still hold the port for a moment.
                Err(_) if deadline > 0 => {
                    deadline -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir().join("portcullis.db")
    }

    /// The lab's `portcullis.toml` (the bastion's, SQLite only).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The bench agent's key; its cert from `portcullis grant` is beside it.
    pub fn agent_key(&self) -> PathBuf {
        self.dir().join("keys/agent")
    }

    /// Another `portcullis serve` of this build, on `config` (a bastion
    /// sharing the lab's keys and policy) and a free port; it and its port.
    pub fn start_serve(&self, config: &Path, log: &Path) -> Result<(Daemon, u16), String> {
        start_bastion(&self.bin, config, log)
    }

    /// Where the lab's own bastion (SQLite only, no balancer) listens.
    pub fn bastion_port(&self) -> u16 {
        self.bastion_port
    }

    pub fn bastion_pid(&self) -> u32 {
        self.bastion.pid()
    }

    pub fn jump_pid(&self) -> u32 {
        self.jump.pid()
    }

    pub fn target_pid(&self) -> u32 {
        self.target.pid()
    }

    /// `portcullis SUBCOMMAND --config C ARGS...`
    pub fn portcullis(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(subcommand)
            .arg("--config")
            .arg(&self.config)
            .env_remove("PORTCULLIS_CONFIG");
        cmd
    }
}

struct Ports {
    target: u16,
    jump: u16,
    bastion: u16,
}

/// Runs a command to completion; its stdout, or why it failed.
pub fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// `TYPE BASE64` of a public key line.
pub fn key_line(text: &str) -> String {
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// An Ed25519 key pair without passphrase; returns the private key's path.
fn keygen(path: &Path) -> Result<PathBuf, String> {
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f"])
            .arg(path),
        "ssh-keygen",
    )?;
    Ok(path.to_path_buf())
}

pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Starts an sshd for the lab: own host key, own port, own pid file,
/// logins by certificate from `trusted_cas` only. Returns it, its port and
/// its host key line.
fn start_sshd(dir: &Path, name: &str, trusted_cas: &Path) -> Result<(Daemon, u16, String), String> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let host_key = dir.join("ssh_host_ed25519_key");
    if !host_key.exists() {
        keygen(&host_key)?;
    }
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let config = dir.join("sshd_config");
        // A baseline sshd for this machine: no PAM, no strict
        // modes, SHLVL=1 so that root's .bashrc (pyenv) stays out of every
        // command's start-up, and room for bursts of connections.
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host_key}\n\
                 PidFile {pid}\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 TrustedUserCAKeys {cas}\n\
                 AuthorizedKeysFile none\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 SetEnv SHLVL=1\n\
                 LogLevel ERROR\n\
                 MaxStartups 1000\n\
                 MaxSessions 50\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 UseDNS no\n\
                 AllowTcpForwarding yes\n",
                host_key = host_key.display(),
                pid = dir.join("sshd.pid").display(),
                cas = trusted_cas.display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut daemon = Daemon::spawn(
            Command::new(SSHD).arg("-f").arg(&config).args(["-D", "-e"]),
            &dir.join("sshd.log"),
        )?;
        match daemon.wait_listening(port, &format!("sshd ({name})")) {
            Ok(()) => {
                let key = read(&host_key.with_extension("pub"))?;
                return Ok((daemon, port, key));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `portcullis serve` of the lab on `port`, logging warnings and errors.
fn bastion_command(bin: &Path, root: &Path, config: &Path, port: u16) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(root)
        .env_remove("PORTCULLIS_CONFIG")
        .env("RUST_LOG", "warn");
    cmd
}

/// `portcullis serve` on `config` and a free port (in the config's
/// directory, logging to `log`); it and its port.
fn start_bastion(bin: &Path, config: &Path, log: &Path) -> Result<(Daemon, u16), String> {
    let root = config.parent().unwrap_or(Path::new("."));
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let mut daemon = Daemon::spawn(&mut bastion_command(bin, root, config, port), log)?;
        match daemon.wait_listening(port, "portcullis serve") {
            Ok(()) => return Ok((daemon, port)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The default `[limits]` suit a production bastion, not one identity
/// opening hundreds of sessions at once from one address: the bench's
/// agent gets room for every session it opens (the jump sshd likewise gets
/// `MaxStartups` and `MaxSessions` for the burst).
fn raise_limits(config: &Path, sizes: &Sizes) -> Result<(), String> {
    let text = read(config)?;
    let sessions = (sizes.idle_sessions + sizes.busy_sessions) * 2 + 64;
    let raised = format!(
        "[limits]\nmax_sessions_per_identity = {sessions}\n\
         max_unauthenticated = {}\n\
         auth_failures_per_source = 100000\n",
        sizes.handshake_parallelism * 4
    );
    if !text.contains("[limits]\n") {
        return Err(format!(
            "{}: no [limits] section to raise",
            config.display()
        ));
    }
    fs::write(config, text.replacen("[limits]\n", &raised, 1)).map_err(|e| e.to_string())
}

/// One target, one role that allows any command (and forwards to
/// loopback, for the forward phase once forwarding exists), one identity.
fn write_policy(dir: &Path, target_port: u16, host_key: &str, user: &str) -> Result<(), String> {
    let files = [
        (
            "targets.toml",
            format!(
                "[targets.{TARGET}]\naddress = \"127.0.0.1:{target_port}\"\nuser = \"{user}\"\n\
                 host_key = \"{}\"\nauth = \"certificate\"\n",
                key_line(host_key)
            ),
        ),
        (
            "roles.toml",
            format!(
                "[roles.{ROLE}]\ntargets = [\"{TARGET}\"]\nexec = [\"*\"]\n\
                 open = [\"127.0.0.1:*\"]\npty = false\nmax_ttl = \"2d\"\n\
                 approval = \"auto\"\nsingle_session = false\n"
            ),
        ),
        (
            "identities.toml",
            format!("[identities.{IDENTITY}]\nkeys = []\nroles = [\"{ROLE}\"]\n"),
        ),
    ];
    for (name, text) in files {
        fs::write(dir.join(name), text).map_err(|e| format!("write policy/{name}: {e}"))?;
    }
    Ok(())
}

/// The client side: host aliases `direct`, `jump`, `proxyjump` (the target
/// through the jump host) and `bastion` (the target through portcullis).
fn client_config(
    ports: &Ports,
    user: &str,
    keys: &Path,
    known_hosts: &Path,
    ciphers: Option<&str>,
) -> String {
    let client = keys.join("client");
    let agent = keys.join("agent");
    let ciphers = ciphers.map_or(String::new(), |c| format!("  Ciphers {c}\n"));
    format!(
        "Host bastion\n  HostName 127.0.0.1\n  Port {bastion}\n  User {TARGET}\n\
         \x20 IdentityFile {agent}\n  CertificateFile {agent}-cert.pub\n\n\
         Host direct\n  HostName 127.0.0.1\n  Port {target}\n\n\
         Host proxyjump\n  HostName 127.0.0.1\n  Port {target}\n  ProxyJump jump\n\n\
         Host jump\n  HostName 127.0.0.1\n  Port {jump}\n\n\
         Host *\n  User {user}\n  IdentityFile {client}\n  CertificateFile {client}-cert.pub\n\
         \x20 IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {known}\n\
         \x20 GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n\
         \x20 LogLevel ERROR\n  ConnectTimeout 30\n  ControlMaster no\n  ControlPath none\n{ciphers}",
        bastion = ports.bastion,
        target = ports.target,
        jump = ports.jump,
        agent = agent.display(),
        client = client.display(),
        known = known_hosts.display(),
    )
}
