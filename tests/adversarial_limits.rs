//! Limits that cannot be turned against the bastion or its agents: a
//! silent socket cannot hold an unauthenticated slot past pre_auth_timeout
//! (the deadline counts from the TCP accept, version line included); a
//! client offering several keys is one failed connection, not several; an
//! exempt source is never backed off.
mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Whether the bastion closed `stream` before `deadline`: reads (and drops)
/// whatever it sends until EOF, a reset, or the deadline.
fn closed_by_bastion(mut stream: TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn silent_sockets_are_closed_at_the_pre_auth_timeout_and_free_their_slots() {
    let b = Bastion::start(
        Setup::standard()
            .limit("pre_auth_timeout", "\"2s\"")
            .limit("max_unauthenticated", "4"),
    );
    let agent = b.granted_agent();
    // Let the harness's own readiness probe leave before counting.
    thread::sleep(Duration::from_millis(300));
    let opened = Instant::now();
    // Not even a version line.
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", b.port)).expect("connect"))
        .collect();
    thread::sleep(Duration::from_millis(200));

    let out = agent.run("echo hi");
    assert_eq!(out.code, 255, "an agent got in past 4 held slots: {out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    // pre_auth_timeout is 2 s from the accept; allow 2.5 s more.
    let deadline = opened + Duration::from_millis(4500);
    for (i, stream) in silent.into_iter().enumerate() {
        assert!(
            closed_by_bastion(stream, deadline),
            "silent socket {i} is still open {:?} after it connected",
            opened.elapsed()
        );
    }
    assert_output(&agent.run("echo hi"), 0, "hi\n");
    wait_for_refused_event(&b, "limit.hit", |e| {
        e["limit"] == "pre_auth_timeout" || reason_of(e).contains("pre_auth_timeout")
    });
}

#[test]
fn several_keys_offered_in_one_connection_are_one_failure() {
    let b = Bastion::start(Setup::standard().limit("auth_failures_per_source", "3"));
    let agent = b.agent_without_cert();
    let more = [b.new_key(), b.new_key()];
    // Two connections, each offering three plain keys the bastion does not
    // accept: two failed connections (six refused key offers).
    for _ in 0..2 {
        let scratch = tempfile::tempdir().unwrap();
        let mut cmd = ssh_base(&agent, scratch.path());
        for key in &more {
            cmd.arg("-i").arg(&key.private);
        }
        cmd.arg(format!("{}@127.0.0.1", agent.login)).arg("true");
        let out = run_bounded(&mut cmd);
        assert_eq!(out.status.code(), Some(255), "{out:?}");
    }
    let refused = refused_json(&b);
    let offers = refused.as_array().map_or(0, |events| {
        events
            .iter()
            .filter(|e| e["kind"] == "auth.refused")
            .count()
    });
    assert!(offers >= 2, "the failed logins are recorded: {refused:#}");

    let out = b.granted_agent().run("echo hello");

    assert_output(&out, 0, "hello\n");
}

#[test]
fn an_exempt_source_is_never_backed_off() {
    let b = Bastion::start(
        Setup::standard()
            .limit("auth_failures_per_source", "1")
            .limit("auth_failures_exempt", "[\"127.0.0.0/8\"]"),
    );
    for _ in 0..4 {
        assert_eq!(b.agent_without_cert().run("echo hello").code, 255);
    }

    let out = b.granted_agent().run("echo hello");

    assert_output(&out, 0, "hello\n");
    let refused = refused_json(&b);
    assert!(
        !refused
            .as_array()
            .is_some_and(|events| events.iter().any(|e| {
                e["kind"] == "limit.hit"
                    && (e["limit"] == "auth_failures_per_source"
                        || reason_of(e).contains("failed authentications"))
            })),
        "an exempt source was backed off: {refused:#}"
    );
}
