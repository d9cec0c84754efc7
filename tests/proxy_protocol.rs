//! Behind a load balancer: a real HAProxy in front sends the PROXY
//! protocol (v1 and v2), and the bastion records, and judges
//! `source-address` by, the agent's own address, not the balancer's. A
//! PROXY header from a source not in `trusted_proxies` is refused, and a
//! trusted proxy that sends none is refused too.
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A HAProxy with two frontends on ::1: one relays to the bastion with a
/// v1 header, the other with v2.
struct Balancer {
    v1: u16,
    v2: u16,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(bastion_port: u16) -> Balancer {
        let dir = tempdir();
        let (v1, v2) = (free_port(), free_port());
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
                 frontend v1\n  bind [::1]:{v1}\n  default_backend to_bastion_v1\n\
                 frontend v2\n  bind [::1]:{v2}\n  default_backend to_bastion_v2\n\
                 backend to_bastion_v1\n  server bastion 127.0.0.1:{bastion_port} send-proxy\n\
                 backend to_bastion_v2\n  server bastion 127.0.0.1:{bastion_port} send-proxy-v2\n"
            ),
        )
        .expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let daemon = Daemon::spawn(
            Command::new("/usr/sbin/haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&config),
            &log,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [v1, v2] {
            while TcpStream::connect(("::1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "haproxy did not listen on [::1]:{port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Balancer {
            v1,
            v2,
            _daemon: daemon,
            _dir: dir,
        }
    }
}

fn limit_hits(b: &Bastion, reason_part: &str) -> usize {
    refused_json(b)
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|e| e["kind"] == "limit.hit" && e["limit"] == "trusted_proxies")
                .filter(|e| {
                    e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains(reason_part))
                })
                .count()
        })
        .unwrap_or(0)
}

fn behind_haproxy() -> Bastion {
    Bastion::start(Setup::standard().setting("trusted_proxies", "[\"127.0.0.1/32\"]"))
}

#[test]
fn through_haproxy_v1_and_v2_the_agents_own_address_is_recorded() {
    let b = behind_haproxy();
    let lb = Balancer::start(b.port);
    let agent = b.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    for port in [lb.v1, lb.v2] {
        let out = ssh_via(port, &agent.key.private, &cert, "echo behind");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "behind\n",
            "{out:?}\n{}",
            b.log()
        );
    }
    let sessions = sessions_json(&b);
    let addrs: Vec<&str> = sessions
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["client_addr"].as_str())
        .collect();
    assert_eq!(addrs.len(), 2, "{sessions:#}");
    assert!(addrs.iter().all(|a| a.starts_with("[::1]:")), "{addrs:?}");
}

#[test]
fn source_address_is_judged_on_the_address_behind_the_proxy() {
    let b = behind_haproxy();
    let lb = Balancer::start(b.port);
    let own = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard().option("source-address=::1"),
    );
    let out = ssh_via(
        lb.v2,
        &own.key.private,
        own.cert.as_ref().expect("cert"),
        "echo mine",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mine\n", "{out:?}");

    let balancers = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard().option("source-address=127.0.0.1/32"),
    );
    let out = ssh_via(
        lb.v1,
        &balancers.key.private,
        balancers.cert.as_ref().expect("cert"),
        "echo no",
    );
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(out.stdout.is_empty());
    eventually("the refusal on record", || {
        let refused = refused_json(&b);
        let found = refused.as_array().is_some_and(|all| {
            all.iter().any(|e| {
                e["kind"] == "auth.refused"
                    && e["client_addr"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("[::1]:"))
                    && e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("source-address"))
            })
        });
        found.then_some(()).ok_or_else(|| format!("{refused:#}"))
    });
}

#[test]
fn a_trusted_proxy_that_sends_no_header_is_refused() {
    let b = behind_haproxy();
    let before = limit_hits(&b, "sent no PROXY");
    let out = b.granted_agent().run("echo direct");
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty());
    eventually("a limit.hit for the missing header", || {
        let now = limit_hits(&b, "sent no PROXY");
        (now > before).then_some(()).ok_or(format!("{now} hits"))
    });
    assert!(sessions_json(&b).as_array().is_some_and(Vec::is_empty));
}

#[test]
fn a_proxy_header_from_an_untrusted_source_is_refused_v1_and_v2() {
    let b = Bastion::start(Setup::standard());
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[203, 0, 113, 9, 127, 0, 0, 1, 0x15, 0xb3, 0, 22]);
    v2.extend_from_slice(b"SSH-2.0-OpenSSH_9.2\r\n");
    for (n, header) in [
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 22\r\nSSH-2.0-OpenSSH_9.2\r\n".to_vec(),
        v2,
    ]
    .into_iter()
    .enumerate()
    {
        let mut conn = TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        conn.write_all(&header).expect("send the header");
        let _ = conn.shutdown(Shutdown::Write);
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        assert!(
            !String::from_utf8_lossy(&answer).contains("203.0.113.9"),
            "nothing of the claim is echoed"
        );
        eventually("a limit.hit for the untrusted header", || {
            let hits = limit_hits(&b, "not in trusted_proxies");
            (hits > n)
                .then_some(())
                .ok_or(format!("{hits} hits\n{}", b.log()))
        });
    }
    // The plain client is unaffected.
    assert_output(&b.granted_agent().run("echo plain"), 0, "plain\n");
    let sessions = sessions_json(&b);
    assert!(
        sessions
            .as_array()
            .is_some_and(|all| all.iter().all(|s| s["client_addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1:")))),
        "{sessions:#}"
    );
}
