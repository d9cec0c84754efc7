//! The bastion.

use super::*;

/// A `portcullis serve` set up by `portcullis init` in a fresh directory,
/// with the policy of a [`Setup`] and its targets running.
pub struct Bastion {
    pub port: u16,
    pub config: PathBuf,
    pub log_path: PathBuf,
    targets: Vec<Target>,
    daemon: std::sync::Mutex<Option<Daemon>>,
    keys_made: std::sync::atomic::AtomicU32,
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
        set_limits(&config, &setup.limits);
        for (table, key, value) in &setup.table_settings {
            let text = fs::read_to_string(&config).expect("read portcullis.toml");
            let header = format!("[{table}]\n");
            assert!(text.contains(&header), "portcullis.toml has no {header}");
            let text = text.replacen(&header, &format!("{header}{key} = {value}\n"), 1);
            fs::write(&config, text).expect("write portcullis.toml");
        }
        if !setup.settings.is_empty() {
            let lines: String = setup
                .settings
                .iter()
                .map(|(key, value)| format!("{key} = {value}\n"))
                .collect();
            let text = fs::read_to_string(&config).expect("read portcullis.toml");
            fs::write(&config, lines + &text).expect("write portcullis.toml");
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

        if !setup.appended.is_empty() {
            let mut text = fs::read_to_string(&config).expect("read portcullis.toml");
            for table in &setup.appended {
                text.push('\n');
                text.push_str(table);
            }
            fs::write(&config, text).expect("write portcullis.toml");
        }
        Bastion::launch_in(dir, config, targets)
    }

    /// Starts `portcullis serve` for the setup in `dir` on a free port.
    fn launch_in(dir: TempDir, config: PathBuf, targets: Vec<Target>) -> Bastion {
        let root = dir.path();
        fs::create_dir_all(root.join("agents")).expect("create agents dir");
        let log_path = root.join("serve.log");
        for _ in 0..5 {
            let port = free_port();
            let mut daemon = launch(root, &config, port, &log_path);
            match daemon.wait_listening(port) {
                Ok(()) => {
                    return Bastion {
                        port,
                        config,
                        log_path,
                        targets,
                        daemon: std::sync::Mutex::new(Some(daemon)),
                        keys_made: std::sync::atomic::AtomicU32::new(0),
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

    /// Another replica of this bastion's cluster: the same host keys, CAs
    /// and policy (links to this one's), its own store, config and port,
    /// with `[cluster] replica = name`. The targets stay this one's.
    pub fn replica(&self, name: &str) -> Bastion {
        let (dir, config) = self.replica_setup(name);
        Bastion::launch_in(dir, config, Vec::new())
    }

    /// The directory and config of a replica named `name`, not started.
    pub fn replica_setup(&self, name: &str) -> (TempDir, PathBuf) {
        let dir = tempdir();
        for shared in ["hostkeys", "ca", "policy"] {
            std::os::unix::fs::symlink(self.dir().join(shared), dir.path().join(shared))
                .expect("link the shared setup");
        }
        let text = fs::read_to_string(&self.config).expect("read portcullis.toml");
        let (head, cluster) = text
            .split_once("[cluster]\n")
            .expect("a replica is made of a bastion with [cluster]");
        let cluster: String = cluster
            .lines()
            .map(|line| match line.starts_with("replica = ") {
                true => format!("replica = \"{name}\"\n"),
                false => format!("{line}\n"),
            })
            .collect();
        // The CA's private key stays with the signing node (the first).
        let head = head.replace("task_key = \"ca/task_ca\"", "task_key = \"ca/task_ca.pub\"");
        let config = dir.path().join("portcullis.toml");
        fs::write(&config, format!("{head}[cluster]\n{cluster}")).expect("write portcullis.toml");
        (dir, config)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `kill -9` of the server, mid-whatever it was doing.
    pub fn kill9(&self) {
        let daemon = self.daemon.lock().map(|mut d| d.take());
        if let Ok(Some(mut daemon)) = daemon {
            daemon.stop();
        }
    }

    /// Sends the server a signal (`"HUP"`, `"TERM"`, ...).
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("the bastion runs");
        run_ok(
            Command::new("kill").args(["-s", name, &pid.to_string()]),
            "kill",
        );
    }

    /// Waits for the server to exit by itself; panics after `within`.
    pub fn wait_exit(&self, within: Duration) -> ExitStatus {
        let mut daemon = self.daemon.lock().expect("daemon lock");
        let running = daemon.as_mut().expect("the bastion runs");
        let status = running.wait_exit(within);
        *daemon = None;
        status.unwrap_or_else(|| {
            panic!(
                "portcullis serve still runs after {within:?}\n{}",
                tail(&self.log_path, 40)
            )
        })
    }

    /// Writes the policy of `setup` over the running one (targets stay).
    pub fn rewrite_policy(&self, setup: &Setup) {
        write_policy(&self.dir().join("policy"), setup, &self.targets);
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        let daemon = self.daemon.lock().ok()?;
        daemon.as_ref().map(Daemon::pid)
    }

    /// Its resident memory, KiB (from `/proc`).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("the bastion runs");
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read its status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Starts the server again on the same port, store and policy.
    pub fn restart(&self) {
        self.kill9();
        let mut daemon = launch(self.dir(), &self.config, self.port, &self.log_path);
        if let Err(failure) = daemon.wait_listening(self.port) {
            panic!(
                "portcullis serve did not come back on port {} ({failure:?})\n{}",
                self.port,
                tail(&self.log_path, 80)
            );
        }
        *self.daemon.lock().expect("daemon lock") = Some(daemon);
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
        AgentKey::generate(&self.dir().join("agents"), &self.next_key_name())
    }

    /// A fresh RSA client key pair (2048 bits) in `agents/`.
    pub fn new_rsa_key(&self) -> AgentKey {
        AgentKey::generate_rsa(&self.dir().join("agents"), &self.next_key_name())
    }

    fn next_key_name(&self) -> String {
        let n = self
            .keys_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        format!("key{n}")
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
        self.kill9();
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

/// `portcullis serve` on `port`, logging to `log`.
fn launch(root: &Path, config: &Path, port: u16, log: &Path) -> Daemon {
    Daemon::spawn(
        Command::new(bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .current_dir(root)
            .env_remove("PORTCULLIS_CONFIG")
            .env("RUST_BACKTRACE", "1"),
        log,
    )
}

/// Puts `key = value` lines at the top of the config's `[limits]` table.
fn set_limits(config: &Path, limits: &[(String, String)]) {
    if limits.is_empty() {
        return;
    }
    let text = fs::read_to_string(config).expect("read portcullis.toml");
    assert!(
        text.contains("[limits]\n"),
        "portcullis.toml has no [limits] table:\n{text}"
    );
    let lines: String = limits
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    let text = text.replacen("[limits]\n", &format!("[limits]\n{lines}"), 1);
    fs::write(config, text).expect("write portcullis.toml");
}

/// Lists the given CA public keys under `[ca] trusted` in portcullis.toml,
/// as copies inside the setup directory (paths relative to the config).
pub fn trust_cas(root: &Path, config: &Path, files: &[PathBuf]) {
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

pub fn write_policy(dir: &Path, setup: &Setup, targets: &[Target]) {
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
            "[roles.{}]\ntargets = {}\nexec = {}\nopen = {}\npty = {}\nmax_ttl = {}\napproval = {}\nsingle_session = {}\n",
            toml_str(name),
            toml_list(&role.targets),
            toml_list(&role.exec),
            toml_list(&role.open),
            role.pty,
            toml_str(&role.max_ttl),
            toml_str(&role.approval),
            role.single_session
        );
        if let Some(paths) = &role.sftp {
            r += &format!("sftp = true\nsftp_paths = {}\n", toml_list(paths));
        }
        r += &format!(
            "ask = {}\nlisten = {}\ncapture = {}\n\n",
            toml_list(&role.ask),
            toml_list(&role.listen),
            role.capture
        );
    }
    let mut i = String::new();
    for (name, roles) in &setup.identities {
        let keys: Vec<String> = setup
            .identity_keys
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, key)| key.clone())
            .collect();
        i += &format!(
            "[identities.{}]\nkeys = {}\nroles = {}\n",
            toml_str(name),
            toml_list(&keys),
            toml_list(roles)
        );
        if setup.reviewers.contains(name) {
            i += "review = true\n";
        }
        if setup.approvers.contains(name) {
            i += "approve = true\n";
        }
        i += "\n";
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

/// A `portcullis web` on the bastion's config (so on its store), killed
/// on drop. Its port is the config's `[web] listen` (see [`web_setup`]).
pub struct WebViewer {
    pub port: u16,
    _daemon: Daemon,
}

/// `setup` with `[web] listen` on a free loopback port, and that port.
pub fn web_setup(setup: Setup) -> (Setup, u16) {
    let port = free_port();
    let listen = toml_str(&format!("127.0.0.1:{port}"));
    (setup.table_setting("web", "listen", &listen), port)
}

impl Bastion {
    /// Starts `portcullis web` against this bastion's config.
    pub fn start_web(&self, port: u16) -> WebViewer {
        let log = self.dir().join("web.log");
        let mut daemon = Daemon::spawn(
            Command::new(bin())
                .arg("web")
                .arg("--config")
                .arg(&self.config)
                .current_dir(self.dir())
                .env_remove("PORTCULLIS_CONFIG")
                .env("RUST_BACKTRACE", "1"),
            &log,
        );
        if let Err(failure) = daemon.wait_listening(port) {
            panic!(
                "portcullis web did not listen on 127.0.0.1:{port} ({failure:?})\n{}",
                tail(&log, 40)
            );
        }
        WebViewer {
            port,
            _daemon: daemon,
        }
    }
}

/// `ssh review@bastion` with a reviewer's identity key: the sign-in
/// link's path (`/signin?token=...`) on the viewer at `web_port`.
pub fn review_link(b: &Bastion, id: &IdentityKey, web_port: u16) -> String {
    let out = ssh(b, "review", &id.key, None, "link");
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout_text();
    let prefix = format!("http://127.0.0.1:{web_port}");
    assert_eq!(line.lines().count(), 1, "{line:?}");
    let path = line
        .trim()
        .strip_prefix(&prefix)
        .expect("a link to the viewer");
    assert!(path.starts_with("/signin?token="), "{line:?}");
    path.to_owned()
}
