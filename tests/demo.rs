//! A newcomer's first minute: `portcullis demo` as the README says, then
//! the commands it prints, run exactly as printed.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

/// Runs one printed command line through the shell.
fn sh(line: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", line])
        .stdin(Stdio::null())
        .output()
        .expect("run sh")
}

#[test]
fn the_demo_prints_commands_that_show_the_whole_flow() {
    let dir = tempdir();
    let mut demo = Command::new(bin())
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .env_remove("PORTCULLIS_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis demo");
    let stdout = demo.stdout.take().expect("its stdout");
    let (tx, lines) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut commands = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the demo prints its commands");
        if let Some(command) = line.strip_prefix("  $ ") {
            commands.push(command.to_string());
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert_eq!(commands.len(), 6, "{commands:#?}");
    // The bastion is up once it says so on stderr; the commands retry
    // nothing, so wait for the port.
    let port: u16 = commands[0]
        .split_whitespace()
        .skip_while(|w| *w != "-p")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("a port in the ssh command");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo bastion listens"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let allowed = sh(&commands[0]);
    assert_eq!(
        String::from_utf8_lossy(&allowed.stdout),
        "hello from the target\n",
        "{allowed:?}"
    );
    let refused = sh(&commands[1]);
    assert_eq!(refused.status.code(), Some(126), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("portcullis: refused:"));
    let sessions = sh(&commands[2]);
    assert!(
        String::from_utf8_lossy(&sessions.stdout).contains("demo-agent"),
        "{sessions:?}"
    );
    let show = sh(&commands[3]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("echo hello from the target"), "{shown}");
    let verify = sh(&commands[5]);
    assert!(verify.status.success(), "{verify:?}");

    run_ok(
        Command::new("kill").args(["-s", "INT", &demo.id().to_string()]),
        "kill -INT",
    );
    let status = demo.wait().expect("the demo ends");
    assert!(status.success(), "the demo exits 0 on Ctrl-C: {status:?}");
    let pid =
        std::fs::read_to_string(dir.path().join("demo/demo-target/sshd.pid")).unwrap_or_default();
    if let Ok(pid) = pid.trim().parse::<u32>() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .is_ok_and(|s| s.contains("State:\tZ")),
            "the demo's sshd is stopped"
        );
    }
}
