//! HAProxy in front of bastions, as a cluster deployment has it: each
//! bastion behind a front of its own, and one front round-robining over
//! several, every connection relayed with a PROXY v2 header.
//!
//! Invariant: every bastion measured through the balancer is measured
//! through the same HAProxy, so its cost is the same on every side of a
//! ratio.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::lab::free_port;
use crate::procs::Daemon;

const HAPROXY: &str = "/usr/sbin/haproxy";

/// One front: its name (for the config) and the bastion ports behind it.
pub struct Front<'a> {
    pub name: &'a str,
    pub backends: Vec<u16>,
}

pub struct Balancer {
    /// The listening port of each front, in the order given.
    pub ports: Vec<u16>,
    _daemon: Daemon,
}

impl Balancer {
    /// Writes `dir/haproxy.cfg` and starts HAProxy on it (in the
    /// foreground, `-db`, so that it dies with its handle).
    pub fn start(dir: &Path, fronts: &[Front<'_>]) -> Result<Balancer, String> {
        if !Path::new(HAPROXY).exists() {
            return Err(format!("{HAPROXY} is missing (apt-get install haproxy)"));
        }
        // Timeouts long enough for a ControlMaster idle between runs.
        let mut text = "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10m\n  \
                        timeout server 10m\n  maxconn 4096\n"
            .to_string();
        let mut ports = Vec::new();
        for front in fronts {
            let port = free_port()?;
            ports.push(port);
            text.push_str(&format!(
                "frontend {name}\n  bind 127.0.0.1:{port}\n  default_backend {name}\n\
                 backend {name}\n  balance roundrobin\n",
                name = front.name
            ));
            for (i, backend) in front.backends.iter().enumerate() {
                text.push_str(&format!(
                    "  server s{i} 127.0.0.1:{backend} send-proxy-v2\n"
                ));
            }
        }
        let config = dir.join("haproxy.cfg");
        fs::write(&config, text).map_err(|e| format!("write {}: {e}", config.display()))?;
        let daemon = Daemon::spawn(
            Command::new(HAPROXY).arg("-db").arg("-f").arg(&config),
            &dir.join("haproxy.log"),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in &ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if Instant::now() > deadline {
                    return Err(format!("haproxy is not listening on {addr} after 10 s"));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Balancer {
            ports,
            _daemon: daemon,
        })
    }
}
