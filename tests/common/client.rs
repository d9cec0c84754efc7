//! The real ssh client.

use super::*;

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
pub fn start_ssh_agent(dir: &Path, key: &Path) -> (Daemon, PathBuf) {
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

pub fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
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

    pub fn call(&self, command: &str, stdin: Option<&[u8]>) -> SshOutput {
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
