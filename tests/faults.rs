//! Faults: a store that cannot write refuses new actions and stops
//! unrecorded output (fail closed), then recovers by itself; a bastion
//! killed mid-session keeps every committed row, marks the session
//! interrupted on restart, and its chain still verifies.
mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_store_that_cannot_write_refuses_new_sessions_then_recovers() {
    let b = Bastion::start(Setup::standard());
    let agent = b.granted_agent();
    assert_output(&agent.run("echo before"), 0, "before\n");
    let lock = StoreLock::take(&b);
    let out = agent.run("echo during");
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty(), "ran unrecorded: {out:?}");
    let check = b.cli("check", &[]);
    assert!(
        !check.status.success(),
        "check passes while the store cannot write"
    );
    eventually("a health line in the log", || {
        b.log()
            .contains("audit store cannot write")
            .then_some(())
            .ok_or(b.log())
    });
    drop(lock);
    eventually("the store to recover", || {
        let out = agent.run("echo after");
        (out.code == 0).then_some(()).ok_or(format!("{out:?}"))
    });
    assert!(b.cli("check", &[]).status.success());
    let verify = b.cli("verify", &[]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn output_that_cannot_be_recorded_is_not_forwarded() {
    // Quoted: a pattern may not carry shell syntax outside single quotes.
    let ticker = "sh -c 'while true; do echo tick; sleep 0.1; done'";
    let b = Bastion::start(Setup::standard().allow(&[ticker]));
    let agent = b.granted_agent();
    thread::scope(|s| {
        let running = run_in_background(s, &agent, ticker);
        eventually("ticks in the store", || {
            let id = *session_ids(&b).first().ok_or("no session")?;
            let data = events_of_kind(&show_json(&b, id), "data").len();
            (data > 2).then_some(()).ok_or(format!("{data} data rows"))
        });
        let _lock = StoreLock::take(&b);
        let locked_at = Instant::now();
        let (out, ended_at) = running.join().unwrap();
        assert!(
            ended_at.duration_since(locked_at) < Duration::from_secs(10),
            "kept running unrecorded"
        );
        assert!(out.stderr.contains("audit store cannot record"), "{out:?}");
    });
}

#[test]
fn a_killed_bastion_keeps_committed_rows_and_marks_the_session_interrupted() {
    let command = "sh -c 'echo committed-line; sleep 30'";
    let b = Bastion::start(Setup::standard().allow(&[command]));
    let agent = b.granted_agent();
    let seen = thread::scope(|s| {
        let running = run_in_background(s, &agent, command);
        let id = eventually("the output in the store", || {
            let id = *session_ids(&b).first().ok_or("no session")?;
            let show = show_json(&b, id);
            let text: String = events_of_kind(&show, "data")
                .iter()
                .map(|e| e["text"].as_str().unwrap_or("").to_string())
                .collect();
            text.contains("committed-line").then_some(id).ok_or(text)
        });
        b.kill9();
        let (out, _) = running.join().unwrap();
        (id, out)
    });
    let (id, out) = seen;
    assert!(String::from_utf8_lossy(&out.stdout).contains("committed-line"));
    b.restart();
    let show = show_json(&b, id);
    assert_eq!(show["session"]["end_reason"], "interrupted", "{show:#}");
    let text: String = events_of_kind(&show, "data")
        .iter()
        .map(|e| e["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(text.contains("committed-line"), "{show:#}");
    assert_eq!(events_of_kind(&show, "exec.allowed").len(), 1);
    let verify = b.cli("verify", &[]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert_output(&agent.run("echo back"), 0, "back\n");
}
