//! Replicas on one PostgreSQL behind a real HAProxy: the cluster layout
//! of the README, on loopback.

use super::*;

impl Setup {
    /// `[cluster]` on `database` as replica `replica`; heartbeats judged
    /// dead after `dead_after`. Connections come through HAProxy, so
    /// 127.0.0.1 (where it connects from) is a trusted proxy.
    pub fn cluster(self, pg: &Postgres, replica: &str, dead_after: &str) -> Setup {
        let mut setup = self.setting("trusted_proxies", "[\"127.0.0.1/32\"]");
        let mut table = format!(
            "[cluster]\ndatabase = \"{}\"\nreplica = \"{replica}\"\ndead_after = \"{dead_after}\"\n",
            pg.url()
        );
        if let Some(ca) = &pg.ca_file {
            table.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
        }
        setup.appended.push(table);
        setup
    }
}

/// HAProxy on ::1 sending PROXY v2: `spread` round-robins over every
/// replica, `to[i]` reaches replica `i` alone.
pub struct ClusterBalancer {
    pub spread: u16,
    pub to: Vec<u16>,
    _daemon: Daemon,
    _dir: TempDir,
}

impl ClusterBalancer {
    pub fn start(replica_ports: &[u16]) -> ClusterBalancer {
        let dir = tempdir();
        let spread = free_port();
        let to: Vec<u16> = replica_ports.iter().map(|_| free_port()).collect();
        let mut text = format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend spread\n  bind [::1]:{spread}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n"
        );
        for (i, port) in replica_ports.iter().enumerate() {
            text.push_str(&format!("  server r{i} 127.0.0.1:{port} send-proxy-v2\n"));
        }
        for (i, (front, port)) in to.iter().zip(replica_ports).enumerate() {
            text.push_str(&format!(
                "frontend to{i}\n  bind [::1]:{front}\n  default_backend only{i}\n\
                 backend only{i}\n  server r{i} 127.0.0.1:{port} send-proxy-v2\n"
            ));
        }
        let config = dir.path().join("haproxy.cfg");
        fs::write(&config, text).expect("write haproxy.cfg");
        let daemon = Daemon::spawn(
            Command::new("/usr/sbin/haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&config),
            &dir.path().join("haproxy.log"),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        for port in std::iter::once(&spread).chain(&to) {
            while TcpStream::connect(("::1", *port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "haproxy did not listen on [::1]:{port}"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        ClusterBalancer {
            spread,
            to,
            _daemon: daemon,
            _dir: dir,
        }
    }
}

/// The real ssh client to a balancer's frontend `[::1]:port` with `key`;
/// the caller adds the destination (`LOGIN@::1`) and what to run.
pub fn ssh_to_frontend(port: u16, key: &Path) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
    .arg("-i")
    .arg(key)
    .args(["-p", &port.to_string()]);
    cmd
}

/// An agent's `ssh` with its cert through a balancer's frontend.
pub fn ssh_via_command(port: u16, key: &Path, cert: &Path, command: &str) -> Command {
    let mut cmd = ssh_to_frontend(port, key);
    cmd.arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .arg(format!("{TARGET}@::1"))
        .arg(command);
    cmd
}

pub fn ssh_via(port: u16, key: &Path, cert: &Path, command: &str) -> Output {
    ssh_via_command(port, key, cert, command)
        .output()
        .expect("run ssh")
}

/// The `grant` login through a balancer's frontend with an identity key:
/// `command`, with `stdin` (a task key) when given.
pub fn grant_via(port: u16, identity: &IdentityKey, command: &str, stdin: &[u8]) -> Output {
    let mut ssh = ssh_to_frontend(port, &identity.key.private);
    ssh.args(["grant@::1", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ssh.spawn().expect("run ssh");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).expect("send stdin");
    }
    child.wait_with_output().expect("ssh output")
}

/// Two replicas on one database (and, with [`Rig::with_archive`], one
/// bucket), and the balancer in front.
pub struct Rig {
    pub a: Bastion,
    pub b: Bastion,
    pub lb: ClusterBalancer,
    pub pg: Postgres,
    pub s3: Option<S3>,
}

impl Rig {
    pub fn start(setup: Setup) -> Rig {
        Rig::launch(setup, Postgres::start(), None)
    }

    pub fn with_archive(setup: Setup) -> Rig {
        Rig::launch(setup, Postgres::start(), Some(S3::start()))
    }

    /// The replicas on a database that speaks TLS only to them.
    pub fn over_tls(setup: Setup) -> Rig {
        Rig::launch(setup, Postgres::start_with_tls(), None)
    }

    fn launch(setup: Setup, pg: Postgres, s3: Option<S3>) -> Rig {
        let mut setup = setup.cluster(&pg, "a", "2s");
        if let Some(s3) = &s3 {
            setup.appended.push(format!(
                "[archive]\nurl = \"s3://{BUCKET}/cluster\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key_file = \"{}\"\n",
                s3.endpoint(),
                s3.secret_file().display()
            ));
        }
        let a = Bastion::start(setup);
        let b = a.replica("b");
        let lb = ClusterBalancer::start(&[a.port, b.port]);
        Rig { a, b, lb, pg, s3 }
    }

    /// Waits for an open session of `replica` in the index; its object.
    pub fn open_on(&self, replica: &str) -> Value {
        eventually(&format!("an open session on replica {replica}"), || {
            let all = cluster_sessions(&self.a);
            all.iter()
                .find(|s| s["replica"] == replica && s["ended_at"].is_null())
                .cloned()
                .ok_or_else(|| format!("{all:#?}"))
        })
    }
}

/// `portcullis sessions --json` with `[cluster]`: every replica's.
pub fn cluster_sessions(b: &Bastion) -> Vec<Value> {
    json_of(b, "sessions", &["--json"])
        .as_array()
        .cloned()
        .expect("an array")
}

/// An agent session holding `cat` open through `port`, until dropped.
pub struct Held {
    pub child: Child,
}

impl Held {
    pub fn open(port: u16, agent: &Agent<'_>) -> Held {
        let cert = agent.cert.as_ref().expect("a cert");
        let child = ssh_via_command(port, &agent.key.private, cert, "cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ssh");
        Held { child }
    }

    /// Waits for the session to end; how long that took.
    pub fn ended_within(&mut self, bound: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < bound {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(start.elapsed());
            }
            thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
