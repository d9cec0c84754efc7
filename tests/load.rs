//! Load: many concurrent sessions, each running several commands over one
//! connection (OpenSSH connection multiplexing), while the target restarts.
//! Every command either completes or is refused with a reason, and the
//! store holds exactly the bytes each client saw.
//!
//! `cargo test` runs a modest size; the full run of issue 7 is
//! `PORTCULLIS_LOAD_SESSIONS=200 PORTCULLIS_LOAD_COMMANDS=20 cargo test --release --test load`.
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one client saw of one command.
struct Seen {
    command: String,
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// The ssh options every call of a multiplexed session shares.
struct Mux {
    port: u16,
    known_hosts: PathBuf,
    control: PathBuf,
    key: PathBuf,
    cert: PathBuf,
}

impl Mux {
    fn command(&self) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-T", "-p", &self.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
            ])
            .arg("-o")
            .arg(format!("IdentityFile={}", self.key.display()))
            .arg("-o")
            .arg(format!("CertificateFile={}", self.cert.display()))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()))
            .stdin(Stdio::null());
        cmd
    }

    fn start_master(&self) -> Child {
        let child = self
            .command()
            .args(["-o", "ControlMaster=yes", "-N", "web1@127.0.0.1"])
            .arg("-E")
            .arg(self.control.with_extension("log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the master");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.control.exists() {
            assert!(Instant::now() < deadline, "no control socket");
            thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn run(&self, command: &str) -> Output {
        self.command()
            .args(["-o", "ControlMaster=no", "web1@127.0.0.1", "--", command])
            .output()
            .expect("run ssh")
    }
}

fn session(index: usize, commands: usize, mux: &Mux, done: &AtomicUsize) -> Vec<Seen> {
    let mut master = mux.start_master();
    let mut seen = Vec::new();
    for j in 0..commands {
        let command = format!(
            "echo s{index}-c{j}-{}",
            "x".repeat(200 + (index * 7 + j * 13) % 300)
        );
        let out = mux.run(&command);
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let log =
                std::fs::read_to_string(mux.control.with_extension("log")).unwrap_or_default();
            stderr += &format!("\n--- master log\n{log}");
        }
        seen.push(Seen {
            command,
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr,
        });
        done.fetch_add(1, Ordering::Relaxed);
    }
    let _ = mux
        .command()
        .args(["-O", "exit", "web1@127.0.0.1"])
        .output();
    let _ = master.kill();
    let _ = master.wait();
    seen
}

/// Each exec channel's command and its stdout bytes, from every transcript.
fn recorded_stdout(b: &Bastion) -> HashMap<String, Vec<u8>> {
    let mut by_command = HashMap::new();
    for show in all_transcripts(b) {
        let mut commands: HashMap<i64, String> = HashMap::new();
        let mut outputs: HashMap<i64, Vec<u8>> = HashMap::new();
        for e in show["events"].as_array().unwrap() {
            let channel = e["channel"].as_i64().unwrap_or(-1);
            if e["kind"] == "exec.allowed" {
                commands.insert(channel, e["command"].as_str().unwrap().to_string());
            }
            if e["kind"] == "data" && e["stream"] == "stdout" {
                let text = e["text"].as_str().unwrap();
                outputs
                    .entry(channel)
                    .or_default()
                    .extend_from_slice(text.as_bytes());
            }
        }
        for (channel, command) in commands {
            by_command.insert(command, outputs.remove(&channel).unwrap_or_default());
        }
    }
    by_command
}

#[test]
fn concurrent_sessions_lose_nothing_while_the_target_restarts() {
    let sessions = from_env("PORTCULLIS_LOAD_SESSIONS", 16);
    let commands = from_env("PORTCULLIS_LOAD_COMMANDS", 5);
    let many = (sessions * 2 + 8).to_string();
    let b = Bastion::start(
        Setup::standard()
            .limit("max_sessions_per_identity", &many)
            .limit("max_unauthenticated", &many),
    );
    let agent = b.granted_agent();
    let scratch = tempfile::tempdir().unwrap();
    let known_hosts = scratch.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {}\n", b.port, b.host_key()),
    )
    .unwrap();
    let mux = |i: usize| Mux {
        port: b.port,
        known_hosts: known_hosts.clone(),
        control: control_path(scratch.path(), i),
        key: agent.key.private.clone(),
        cert: agent.cert.clone().unwrap(),
    };
    let done = AtomicUsize::new(0);
    let total = sessions * commands;
    let seen: Vec<Seen> = thread::scope(|s| {
        let runs: Vec<_> = (0..sessions)
            .map(|i| {
                let (mux, done) = (mux(i), &done);
                s.spawn(move || session(i, commands, &mux, done))
            })
            .collect();
        while done.load(Ordering::Relaxed) < total / 3 {
            thread::sleep(Duration::from_millis(20));
        }
        b.target(TARGET).restart();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(seen.len(), total);
    let recorded = recorded_stdout(&b);
    let mut completed = 0;
    for run in &seen {
        if run.code == 0 {
            completed += 1;
            let expected = format!("{}\n", run.command.trim_start_matches("echo "));
            assert_eq!(
                String::from_utf8_lossy(&run.stdout),
                expected,
                "{}",
                run.command
            );
            let stored = recorded
                .get(&run.command)
                .unwrap_or_else(|| panic!("not recorded: {}", run.command));
            assert_eq!(
                stored, &run.stdout,
                "store differs from what the client saw: {}",
                run.command
            );
        } else {
            assert!(
                run.stderr.lines().any(|l| l.starts_with("portcullis:")),
                "failed without a reason (exit {}): {:?}",
                run.code,
                run.stderr
            );
        }
    }
    eprintln!("{completed} of {total} commands completed; the rest were refused with a reason");
    assert!(
        completed > total / 2,
        "only {completed} of {total} completed"
    );
    assert_eq!(
        session_ids(&b).len(),
        sessions,
        "one recorded session per connection"
    );
}

/// Control sockets need short paths (sun_path is 108 bytes).
fn control_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("c{i}"))
}
