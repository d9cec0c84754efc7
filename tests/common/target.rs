//! Targets: one real sshd each.

use super::*;

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
    daemon: std::sync::Mutex<Option<Daemon>>,
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

    pub fn try_start(
        name: &str,
        upstream_ca_pub: &Path,
        port: u16,
    ) -> Result<Target, (String, bool)> {
        Target::try_start_with(name, upstream_ca_pub, port, "")
    }

    /// Starts a target sshd with `extra` lines in its sshd_config.
    pub fn start_with(name: &str, ca_pub: &Path, extra: &str) -> Target {
        for _ in 0..5 {
            match Target::try_start_with(name, ca_pub, free_port(), extra) {
                Ok(target) => return target,
                Err((_, true)) => continue,
                Err((msg, false)) => panic!("{msg}"),
            }
        }
        panic!("target {name}: no free port after 5 tries")
    }

    fn try_start_with(
        name: &str,
        upstream_ca_pub: &Path,
        port: u16,
        extra: &str,
    ) -> Result<Target, (String, bool)> {
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
                 AcceptEnv LANG LC_* PORTCULLIS_*\n\
                 LogLevel VERBOSE\n\
                 MaxStartups 200\n\
                 PrintMotd no\n\
                 Subsystem sftp internal-sftp\n\
                 {extra}",
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
            daemon: std::sync::Mutex::new(Some(daemon)),
            dir,
        })
    }

    /// Stops the sshd (its listener; sessions already open live on in their
    /// own processes): the target is down.
    pub fn stop(&self) {
        let daemon = self.daemon.lock().map(|mut d| d.take());
        if let Ok(Some(mut daemon)) = daemon {
            daemon.stop();
        }
    }

    /// Stops the sshd and starts it again: same port, same host key.
    pub fn restart(&self) {
        self.stop();
        let config = self.dir.path().join("sshd_config");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut daemon = Daemon::spawn(
                Command::new(SSHD).arg("-f").arg(&config).args(["-D", "-e"]),
                &self.log_path,
            );
            match daemon.wait_listening(self.port) {
                Ok(()) => {
                    *self.daemon.lock().expect("daemon lock") = Some(daemon);
                    return;
                }
                Err(f) if f.lost_port_race(&self.log_path) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50))
                }
                Err(f) => panic!("target {}: sshd did not come back ({f:?})", self.name),
            }
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
