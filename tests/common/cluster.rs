//! Replicas on one PostgreSQL behind a real HAProxy: the cluster layout
//! of the README, on loopback.

use super::*;

impl Setup {
    /// `[cluster]` on `database` as replica `replica`; heartbeats judged
    /// dead after `dead_after`. Connections come through HAProxy, so
    /// 127.0.0.1 (where it connects from) is a trusted proxy.
    pub fn cluster(self, database: &str, replica: &str, dead_after: &str) -> Setup {
        let mut setup = self.setting("trusted_proxies", "[\"127.0.0.1/32\"]");
        setup.appended.push(format!(
            "[cluster]\ndatabase = \"{database}\"\nreplica = \"{replica}\"\ndead_after = \"{dead_after}\"\n"
        ));
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

/// The real ssh client to `[::1]:port` (a balancer's frontend), as an agent.
pub fn ssh_via_command(port: u16, key: &Path, cert: &Path, command: &str) -> Command {
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
    .arg("-o")
    .arg(format!("CertificateFile={}", cert.display()))
    .args(["-p", &port.to_string()])
    .arg(format!("{TARGET}@::1"))
    .arg(command);
    cmd
}

pub fn ssh_via(port: u16, key: &Path, cert: &Path, command: &str) -> Output {
    ssh_via_command(port, key, cert, command)
        .output()
        .expect("run ssh")
}
