//! Abuse limits: each one holds, tells the client in one line where the
//! protocol lets it, and is recorded.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A refusal outside any session whose reason contains `word`.
fn wait_for_refusal(b: &Bastion, kind: &str, word: &str) -> serde_json::Value {
    eventually(&format!("a {kind} refusal mentioning {word:?}"), || {
        let refused = refused_json(b);
        refused
            .as_array()
            .and_then(|list| {
                list.iter().find(|e| {
                    e["kind"] == kind && e["reason"].as_str().unwrap_or("").contains(word)
                })
            })
            .cloned()
            .ok_or_else(|| format!("{refused:#}"))
    })
}

fn connect(b: &Bastion) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes the connection.
fn read_until_closed(mut stream: TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let _ = stream.read_to_end(&mut seen);
    (seen, started.elapsed())
}

#[test]
fn a_connection_that_does_not_authenticate_in_time_is_closed() {
    let b = Bastion::start(Setup::standard().limit("pre_auth_timeout", "\"1s\""));
    let mut stream = connect(&b);
    stream.write_all(b"SSH-2.0-slowpoke\r\n").unwrap();
    let (_, took) = read_until_closed(stream);
    assert!(took < Duration::from_secs(5), "still open after {took:?}");
    wait_for_refusal(&b, "limit.hit", "pre_auth_timeout");
}

#[test]
fn unauthenticated_connections_beyond_the_cap_are_refused_with_a_line() {
    let b = Bastion::start(Setup::standard().limit("max_unauthenticated", "2"));
    // Let the harness's own readiness probe leave before counting.
    thread::sleep(Duration::from_millis(500));
    let _idle = [connect(&b), connect(&b)];
    thread::sleep(Duration::from_millis(200));
    let (said, _) = read_until_closed(connect(&b));
    let said = String::from_utf8_lossy(&said);
    assert!(
        said.starts_with("portcullis: refused: too many unauthenticated connections"),
        "{said:?}"
    );
    wait_for_refusal(&b, "limit.hit", "max_unauthenticated");
}

#[test]
fn a_source_that_keeps_failing_is_backed_off() {
    let b = Bastion::start(Setup::standard().limit("auth_failures_per_source", "2"));
    for _ in 0..3 {
        assert_eq!(b.agent_without_cert().run("echo hello").code, 255);
    }
    let out = b.granted_agent().run("echo hello");
    assert_eq!(out.code, 255, "a good cert from a blocked source: {out:?}");
    assert!(out.stdout.is_empty());
    wait_for_refusal(&b, "limit.hit", "too many failed authentications");
}

#[test]
fn sessions_per_identity_are_capped() {
    let b = Bastion::start(
        Setup::standard()
            .allow(&["sleep *"])
            .limit("max_sessions_per_identity", "1"),
    );
    let agent = b.granted_agent();
    thread::scope(|s| {
        let first = run_in_background(s, &agent, "sleep 3");
        eventually("the first session", || {
            session_ids(&b).first().copied().ok_or("none".to_string())
        });
        assert_cert_refused(&agent, "max_sessions_per_identity");
        assert_eq!(first.join().unwrap().0.code, 0);
    });
    wait_for_refusal(&b, "limit.hit", "max_sessions_per_identity");
}

#[test]
fn an_idle_session_is_ended() {
    let b = Bastion::start(
        Setup::standard()
            .allow(&["sleep *"])
            .limit("idle_timeout", "\"2s\""),
    );
    let started = Instant::now();
    let out = b.granted_agent().run("sleep 60");
    assert!(started.elapsed() < Duration::from_secs(10), "{out:?}");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("idle_timeout"), "{out:?}");
}

#[test]
fn an_overlong_command_is_refused() {
    let b = Bastion::start(Setup::standard().limit("max_command_bytes", "64"));
    let long = format!("echo {}", "x".repeat(100));
    let out = b.granted_agent().run(&long);
    assert_refused(&out);
    assert!(out.stderr.contains("max_command_bytes"), "{out:?}");
}
