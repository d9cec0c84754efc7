//! Faults: a store that cannot write refuses new actions and stops
//! unrecorded output (fail closed), then recovers by itself; a bastion
//! killed mid-session keeps every committed row, marks the session
//! interrupted on restart, and its chain still verifies.
mod common;

use std::io::Read;
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

/// Bytes the target streams, and how many the client reads before the
/// bastion is killed: far from the end, whatever the buffers between hold.
const STREAM_BYTES: usize = 48 << 20;
const KILL_AFTER: usize = 4 << 20;

#[test]
fn a_bastion_killed_mid_stream_keeps_a_verifiable_prefix_of_it() {
    let data_dir = tempdir();
    let file = data_dir.path().join("stream.bin");
    let content = noise(STREAM_BYTES);
    std::fs::write(&file, &content).unwrap();
    let command = format!("cat {}", file.display());
    let b = Bastion::start(Setup::standard().allow(&[&command]));
    let agent = b.granted_agent();

    let scratch = tempdir();
    let mut ssh = ssh_base(&agent, scratch.path())
        .arg("-T")
        .arg(format!("{TARGET}@127.0.0.1"))
        .arg("--")
        .arg(&command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ssh");
    let mut stdout = ssh.stdout.take().expect("its stdout");
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while received.len() < KILL_AFTER {
        let n = stdout.read(&mut buf).expect("read the stream");
        assert_ne!(n, 0, "the stream ended after {} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
    }
    b.kill9();
    stdout.read_to_end(&mut received).expect("read the rest");
    let _ = ssh.wait();
    assert!(received.len() < STREAM_BYTES, "the kill came after the end");
    assert!(
        received == content[..received.len()],
        "the client got a prefix"
    );

    b.restart();
    let id = *session_ids(&b).first().expect("the session");
    let show = show_json(&b, id);
    assert_eq!(
        show["session"]["end_reason"], "interrupted",
        "{}",
        show["session"]
    );
    let committed = stdout_bytes(&b, id);
    assert!(!committed.is_empty(), "nothing was committed");
    assert!(
        committed == content[..committed.len()],
        "the committed bytes are a prefix of the stream"
    );
    let text = String::from_utf8_lossy(&b.cli_ok("show", &[&id.to_string()]).stdout).into_owned();
    let says = format!(" stdout {} B", committed.len());
    assert!(
        text.lines()
            .any(|l| l.starts_with("  recorded:") && l.ends_with(&says)),
        "show says how much was committed: {text:.600}"
    );
    let verify = b.cli("verify", &[]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    eprintln!(
        "killed mid-stream: the client received {} bytes, the store committed {}",
        received.len(),
        committed.len()
    );
}

/// The exact stdout bytes of session `id`, from `export --format json`.
fn stdout_bytes(b: &Bastion, id: i64) -> Vec<u8> {
    use base64::Engine;
    let export = json_of(b, "export", &[&id.to_string(), "--format", "json"]);
    let mut bytes = Vec::new();
    for e in export["events"].as_array().expect("events") {
        if e["kind"] == "data" && e["stream"] == "stdout" {
            let chunk = base64::engine::general_purpose::STANDARD
                .decode(e["base64"].as_str().expect("base64"))
                .expect("valid base64");
            bytes.extend(chunk);
        }
    }
    bytes
}
