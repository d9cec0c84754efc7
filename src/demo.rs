//! `portcullis demo`: the whole flow on one machine, for a newcomer's
//! first minute. It makes a setup (as `init` does), starts a throwaway
//! OpenSSH sshd on loopback that trusts the upstream CA, pins it in the
//! policy as target `demo`, issues a 15-minute task cert for a fresh demo
//! key through the one issuing path, and prints the exact commands to try:
//! one allowed, one refused, and reading the transcript back.
//!
//! Invariant: everything it makes is inside its directory and on
//! 127.0.0.1; the sshd it starts is killed when the demo ends.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cert::keyfile;
use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::grants::request::Narrowing;
use crate::operator::grant::{self, GrantArgs};
use crate::setup;

const SSHD: &str = "/usr/sbin/sshd";
const IDENTITY: &str = "demo-agent";
const TARGET: &str = "demo";

/// A running demo target and what to tell the user.
pub struct Demo {
    pub config: Config,
    /// Where the bastion listens.
    pub listen: SocketAddr,
    sshd: Child,
    commands: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

impl Demo {
    /// Sets up `dir` and starts the demo target; the caller serves.
    pub fn prepare(dir: &Path) -> anyhow::Result<Demo> {
        if !Path::new(SSHD).exists() {
            bail!("the demo starts an OpenSSH sshd as its target: install openssh-server");
        }
        setup::init(dir)?;
        let dir = std::path::absolute(dir)?;
        let target_port = free_port()?;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let user = current_user()?;
        let target_dir = dir.join("demo-target");
        let host_key = target_dir.join("ssh_host_ed25519_key");
        if !host_key.exists() {
            let key = keyfile::generate_ed25519()?;
            keyfile::write_key_pair(&host_key, &key, "portcullis demo target")?;
        }
        let sshd = start_sshd(&dir, &target_dir, &host_key, target_port)?;
        let host_key_line = std::fs::read_to_string(keyfile::public_path(&host_key))?;
        pin_demo_target(
            &dir.join("policy"),
            target_port,
            &user,
            host_key_line.trim(),
        )?;
        let config = Config::load(&dir.join(DEFAULT_CONFIG_FILE))?;

        let agent_dir = dir.join("agent");
        let agent_key = agent_dir.join("id_ed25519");
        if !agent_key.exists() {
            let key = keyfile::generate_ed25519()?;
            keyfile::write_key_pair(&agent_key, &key, "portcullis demo agent")?;
        }
        let pubkey = keyfile::public_path(&agent_key);
        grant::run(
            &config,
            &GrantArgs {
                identity: IDENTITY.into(),
                role: TARGET.into(),
                ttl: "15m".into(),
                pubkey: pubkey.clone(),
                task: Some("demo".into()),
                narrowing: Narrowing::default(),
            },
        )?;
        let bastion_key = config
            .host_keys
            .first()
            .map(|k| std::fs::read_to_string(keyfile::public_path(k)))
            .transpose()?
            .unwrap_or_default();
        let known_hosts = agent_dir.join("known_hosts");
        keyfile::write_file(
            &known_hosts,
            format!("[127.0.0.1]:{} {}", listen.port(), bastion_key.trim()).as_bytes(),
            0o644,
        )?;
        let commands = commands(&config, listen, &agent_key, &known_hosts);
        Ok(Demo {
            config,
            listen,
            sshd,
            commands,
        })
    }

    /// What to try, one command per `  $ ` line.
    pub fn commands(&self) -> &str {
        &self.commands
    }
}

fn commands(config: &Config, listen: SocketAddr, key: &Path, known_hosts: &Path) -> String {
    let ssh = format!(
        "ssh -p {} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} {TARGET}@127.0.0.1",
        listen.port(),
        key.display(),
        known_hosts.display()
    );
    // The very binary running the demo (`cargo run` puts none on PATH).
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("portcullis"));
    let cli = format!("{} --config {}", exe.display(), config.file.display());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "portcullis demo: bastion on {listen}, target sshd `{TARGET}` behind it."
    );
    let _ = writeln!(out, "A command the role allows (recorded, then run):");
    let _ = writeln!(out, "  $ {ssh} 'echo hello from the target'");
    let _ = writeln!(out, "One it does not (refused in one line, recorded):");
    let _ = writeln!(out, "  $ {ssh} 'cat /etc/shadow'");
    let _ = writeln!(out, "The transcript, and the chain that proves it:");
    let _ = writeln!(out, "  $ {cli} sessions");
    let _ = writeln!(out, "  $ {cli} show 1");
    let _ = writeln!(out, "  $ {cli} replay 1");
    let _ = writeln!(out, "  $ {cli} verify");
    let _ = writeln!(
        out,
        "Ctrl-C ends the demo (sessions are ended on record, the target stops)."
    );
    out
}

/// Adds target `demo` (this sshd, pinned), role `demo` and identity
/// `demo-agent` to the example policy, once.
fn pin_demo_target(policy: &Path, port: u16, user: &str, host_key: &str) -> anyhow::Result<()> {
    let targets = policy.join("targets.toml");
    let text = std::fs::read_to_string(&targets)?;
    let start = text.find("\n[targets.demo]").unwrap_or(text.len());
    let mut text = text[..start].to_string();
    text += &format!(
        "\n[targets.demo]\n# The demo's own sshd (portcullis demo rewrites this table).\n\
         address = \"127.0.0.1:{port}\"\nuser = {user:?}\nhost_key = {host_key:?}\nauth = \"certificate\"\n"
    );
    keyfile::write_file(&targets, text.as_bytes(), 0o644)?;
    append_once(
        &policy.join("roles.toml"),
        "[roles.demo]",
        "\n[roles.demo]\ntargets = [\"demo\"]\nexec = [\"echo ...\", \"uname ...\", \"uptime\", \"ls ...\"]\n\
         max_ttl = \"15m\"\napproval = \"auto\"\n",
    )?;
    append_once(
        &policy.join("identities.toml"),
        "[identities.demo-agent]",
        "\n[identities.demo-agent]\nkeys = []\nroles = [\"demo\"]\n",
    )
}

fn append_once(path: &Path, marker: &str, text: &str) -> anyhow::Result<()> {
    let current = std::fs::read_to_string(path)?;
    if !current.contains(marker) {
        keyfile::write_file(path, (current + text).as_bytes(), 0o644)?;
    }
    Ok(())
}

fn start_sshd(dir: &Path, target_dir: &Path, host_key: &Path, port: u16) -> anyhow::Result<Child> {
    let privsep = Path::new("/run/sshd");
    if !privsep.exists() {
        std::fs::create_dir_all(privsep)
            .context("sshd needs /run/sshd: create it (sudo mkdir -p /run/sshd)")?;
    }
    let config = target_dir.join("sshd_config");
    let text = format!(
        "ListenAddress 127.0.0.1:{port}\nHostKey {}\nPidFile {}\nUsePAM no\nStrictModes no\n\
         TrustedUserCAKeys {}\nAuthorizedKeysFile none\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nPrintMotd no\n",
        host_key.display(),
        target_dir.join("sshd.pid").display(),
        dir.join("ca/upstream_ca.pub").display(),
    );
    keyfile::write_file(&config, text.as_bytes(), 0o644)?;
    let log = std::fs::File::create(target_dir.join("sshd.log"))?;
    let mut child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {SSHD}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            bail!(
                "the demo target's sshd did not start: see {}",
                target_dir.join("sshd.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn current_user() -> anyhow::Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if name.is_empty() {
        bail!("cannot tell the current user (id -un)");
    }
    Ok(name)
}

/// Where `portcullis demo` puts its setup when not told.
pub fn default_dir() -> PathBuf {
    PathBuf::from("portcullis-demo")
}
