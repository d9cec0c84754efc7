//! Several commands on one connection (OpenSSH ControlMaster): each is an
//! exec channel of the same session, proxied and recorded on its own, each
//! ends with its own exit status, and one whose reader stops reading holds
//! a bounded buffer without stalling the others.
mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A ControlMaster connection to the bastion, and `ssh` commands over it.
struct Mux<'b> {
    bastion: &'b Bastion,
    agent: Agent<'b>,
    known_hosts: PathBuf,
    control: PathBuf,
    master: Child,
}

impl<'b> Mux<'b> {
    fn start(bastion: &'b Bastion) -> Mux<'b> {
        let agent = bastion.granted_agent();
        let dir = bastion.dir().join("mux");
        fs::create_dir_all(&dir).unwrap();
        let known_hosts = dir.join("known_hosts");
        fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{} {}\n", bastion.port, bastion.host_key()),
        )
        .unwrap();
        let control = dir.join("ctl");
        let master = mux_ssh(bastion, &agent, &known_hosts, &control)
            .args(["-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"])
            .arg(format!("{TARGET}@127.0.0.1"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start the ControlMaster");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !control.exists() {
            assert!(
                Instant::now() < deadline,
                "the ControlMaster never listened"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Mux {
            bastion,
            agent,
            known_hosts,
            control,
            master,
        }
    }

    /// `ssh` running `command` over the master connection.
    fn command(&self, command: &str) -> Command {
        let mut cmd = mux_ssh(self.bastion, &self.agent, &self.known_hosts, &self.control);
        cmd.args(["-o", "ControlMaster=no"])
            .arg(format!("{TARGET}@127.0.0.1"))
            .arg("--")
            .arg(command)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, command: &str) -> Output {
        self.command(command)
            .output()
            .expect("run ssh through the ControlMaster")
    }
}

impl Drop for Mux<'_> {
    fn drop(&mut self) {
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// `ssh` options for the agent and the bastion, sharing `control`.
fn mux_ssh(bastion: &Bastion, agent: &Agent<'_>, known_hosts: &Path, control: &Path) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-T", "-p", &bastion.port.to_string()])
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("IdentityFile={}", agent.key.private.display()))
        .arg("-o")
        .arg(format!(
            "CertificateFile={}",
            agent.cert.as_ref().expect("a granted cert").display()
        ))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("ControlPath={}", control.display()));
    cmd
}

/// Starts `command` over `mux` with a stdout pipe nobody reads yet.
fn paused(mux: &Mux<'_>, command: &str) -> Child {
    mux.command(command)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the paused command")
}

/// Waits for `cmd` at most `limit`; `None` if it is still running then.
fn output_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ssh");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait for ssh").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
    Some(child.wait_with_output().expect("collect its output"))
}

#[test]
fn commands_multiplexed_on_one_connection_each_get_their_exit_status() {
    let b = Bastion::start(Setup::standard());
    let mux = Mux::start(&b);
    let run = |command: &str| mux.run(command);
    for i in 0..10 {
        let out = run(&format!("echo run-{i}"));
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).as_ref()
            ),
            (Some(0), format!("run-{i}\n").as_str()),
            "command {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        run("false").status.code(),
        Some(1),
        "a failing command's status"
    );
    drop(mux);

    let ids = session_ids(&b);
    assert_eq!(ids.len(), 1, "one connection, one session");
    let show = show_json(&b, ids[0]);
    assert_eq!(events_of_kind(&show, "exec.allowed").len(), 11);
    assert_eq!(events_of_kind(&show, "exit.status").len(), 11);
}

/// Output the paused command writes: more than russh's queue (100
/// messages) and the client's window (2 MiB) hold, which without the
/// channel's own 4 MiB buffer stalls the whole connection (measured: the
/// neighbours stall at 6 MiB without it, from 8-10 MiB with it; beyond
/// that only per-channel flow control in russh's client would help).
const PAUSED_BYTES: usize = 6 << 20;

#[test]
fn a_reader_that_stops_reading_does_not_stall_the_other_commands() {
    let flood = format!("head -c {PAUSED_BYTES} /dev/zero");
    let b = Bastion::start(Setup::standard().allow(&[&flood]));
    let mux = Mux::start(&b);
    let mut stalled = paused(&mux, &flood);
    // Long enough for the flood to fill every buffer it can.
    thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        let out = output_within(
            &mut mux.command(&format!("echo beside-{i}")),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("command {i} stalled behind a paused reader"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("beside-{i}\n")
        );
    }
    // Nothing of the paused output was lost meanwhile.
    let mut all = Vec::new();
    stalled
        .stdout
        .take()
        .expect("its stdout")
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(stalled.wait().unwrap().code(), Some(0));
    assert_eq!(all.len(), PAUSED_BYTES);
    assert!(all.iter().all(|&b| b == 0));
}

#[test]
fn a_reader_that_never_reads_costs_the_bastion_a_bounded_buffer() {
    let flood = "cat /dev/zero";
    let b = Bastion::start(Setup::standard().allow(&[flood]));
    let mux = Mux::start(&b);
    assert_eq!(mux.run("true").status.code(), Some(0));
    let before = b.rss_kib();
    let mut stalled = paused(&mux, flood);
    thread::sleep(Duration::from_secs(3));
    let during = b.rss_kib();
    // The target could produce gigabytes meanwhile; the bastion holds the
    // channel's buffer and russh's queue, then the target waits.
    assert!(
        during.saturating_sub(before) < 32 << 10,
        "RSS grew from {before} KiB to {during} KiB"
    );
    let _ = stalled.kill();
    let _ = stalled.wait();
    drop(mux);
    // What the bastion passed on before the client's window closed: the
    // flood stopped there, it did not run on into memory or the store.
    let id = *session_ids(&b).first().expect("the session");
    let recorded: u64 = events_of_kind(&show_json(&b, id), "data")
        .iter()
        .filter_map(|e| e["len"].as_u64())
        .sum();
    eprintln!(
        "paused reader: bastion RSS {before} -> {during} KiB, {recorded} bytes recorded and passed on"
    );
    assert!(
        recorded < 64 << 20,
        "{recorded} bytes passed a paused reader"
    );
}
