//! Several commands on one connection (OpenSSH ControlMaster): each is an
//! exec channel of the same session, proxied and recorded on its own, and
//! each ends with its own exit status.
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

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

#[test]
fn commands_multiplexed_on_one_connection_each_get_their_exit_status() {
    let b = Bastion::start(Setup::standard());
    let agent = b.granted_agent();
    let dir = b.dir().join("mux");
    fs::create_dir_all(&dir).unwrap();
    let known_hosts = dir.join("known_hosts");
    fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {}\n", b.port, b.host_key()),
    )
    .unwrap();
    let control = dir.join("ctl");
    let mut master = mux_ssh(&b, &agent, &known_hosts, &control)
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

    let run = |command: &str| {
        mux_ssh(&b, &agent, &known_hosts, &control)
            .args(["-o", "ControlMaster=no"])
            .arg(format!("{TARGET}@127.0.0.1"))
            .arg("--")
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh through the ControlMaster")
    };
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
    let _ = master.kill();
    let _ = master.wait();

    let ids = session_ids(&b);
    assert_eq!(ids.len(), 1, "one connection, one session");
    let show = show_json(&b, ids[0]);
    assert_eq!(events_of_kind(&show, "exec.allowed").len(), 11);
    assert_eq!(events_of_kind(&show, "exit.status").len(), 11);
}
