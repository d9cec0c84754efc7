//! The end-to-end harness: the real `portcullis` binary, real OpenSSH `sshd`
//! targets and the real `ssh` client, all on 127.0.0.1.
//!
//! Invariant: a test shares nothing with any other test. Every bastion, target
//! and key lives in its own temporary directory and on its own loopback port,
//! every process it starts is killed when its handle drops, so tests run in
//! parallel. A test states only what differs from [`Setup::standard`].
//!
//! When a test panics, the handles print the bastion's and the targets' logs
//! on drop (libtest shows them with the failure). Set `PORTCULLIS_KEEP_TMP=1`
//! to keep the temporary directories for a look afterwards.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The target name, role and identity of [`Setup::standard`].
pub const TARGET: &str = "web1";
pub const ROLE: &str = "ops";
pub const AGENT: &str = "agent-7";
/// Commands the standard role allows.
pub const STANDARD_EXEC: &[&str] = &["echo *", "printf *", "cat", "true", "false"];

const SSHD: &str = "/usr/sbin/sshd";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const SSH_TIMEOUT: Duration = Duration::from_secs(30);
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The binary under test. Cargo sets this for the integration tests of the
/// crate that builds the `portcullis` binary.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_portcullis"))
}

/// The local user: the login every target sshd is reached with.
pub fn whoami() -> String {
    let out = run_ok(Command::new("id").arg("-un"), "id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loopback port that was free a moment ago (bind :0, read, drop).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

pub fn tempdir() -> TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("portcullis-e2e-")
        .tempdir()
        .expect("create a temporary directory");
    if std::env::var_os("PORTCULLIS_KEEP_TMP").is_some() {
        dir.disable_cleanup(true);
    }
    dir
}

/// Runs a command to completion; panics with its output unless it succeeded.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Writes an executable `#!/bin/sh` script and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
    path
}

/// The last `max` lines of a log file, for failure messages.
fn tail(path: &Path, max: usize) -> String {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max)..].join("\n")
}

/// A long-running child process, killed (and reaped) on drop.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(cmd: &mut Command, log: &Path) -> Daemon {
        // Appending: a restarted daemon keeps its predecessor's lines.
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let out = file.try_clone().expect("clone log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Waits until `port` accepts a TCP connection, or the process exits, or
    /// the start timeout passes.
    pub fn wait_listening(&mut self, port: u16) -> Result<(), StartFailure> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartFailure::Exited(status));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartFailure::Timeout);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it exits within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
pub enum StartFailure {
    Exited(ExitStatus),
    Timeout,
}

impl StartFailure {
    /// Someone else took the port between `free_port` and our bind: retry.
    fn lost_port_race(&self, log: &Path) -> bool {
        let text = fs::read_to_string(log).unwrap_or_default();
        matches!(self, StartFailure::Exited(_))
            && (text.contains("in use") || text.contains("Cannot bind any address"))
    }
}

mod bastion;
mod browser;
mod client;
mod cluster;
mod grants;
mod keys;
mod outcome;
mod postgres;
mod s3;
mod setup;
mod sftp_raw;
mod store;
mod target;
mod terminal;
mod tunnel;
mod web;

pub use bastion::*;
#[allow(unused_imports)]
pub use browser::*;
pub use client::*;
#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use grants::*;
pub use keys::*;
#[allow(unused_imports)]
pub use outcome::*;
#[allow(unused_imports)]
pub use postgres::*;
#[allow(unused_imports)]
pub use s3::*;
pub use setup::*;
#[allow(unused_imports)]
pub use sftp_raw::*;
pub use store::*;
pub use target::*;
#[allow(unused_imports)]
pub use terminal::*;
#[allow(unused_imports)]
pub use tunnel::*;
#[allow(unused_imports)]
pub use web::*;
