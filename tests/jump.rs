//! ProxyJump through the bastion: `ssh -J web1@bastion user@host` is a
//! direct-tcpip forward to `host:port`, allowed when the scope allows that
//! destination; the inner session is end-to-end encrypted, so only its
//! metadata is recorded.
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// An ssh config for `ssh -J`: OpenSSH applies command-line options to the
/// last hop only, so both hops are spelled out here.
fn jump_config(agent: &Agent<'_>, dir: &Path, target_port: u16, inner_cert: &Path) -> PathBuf {
    let b = agent.bastion;
    let known = dir.join("known_hosts");
    fs::write(
        &known,
        format!(
            "[127.0.0.1]:{} {}\n[127.0.0.1]:{} {}\n",
            b.port,
            b.host_key(),
            target_port,
            b.target(TARGET).host_key
        ),
    )
    .unwrap();
    let common = format!(
        "  HostName 127.0.0.1\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n  \
         UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n  IdentityFile {}\n",
        known.display(),
        agent.key.private.display()
    );
    let config = dir.join("config");
    fs::write(
        &config,
        format!(
            "Host bastion\n{common}  Port {}\n  User {}\n  CertificateFile {}\n\n\
             Host inner\n{common}  Port {target_port}\n  User {}\n  CertificateFile {}\n",
            b.port,
            agent.login,
            agent.cert.as_ref().unwrap().display(),
            whoami(),
            inner_cert.display()
        ),
    )
    .unwrap();
    config
}

/// `ssh -F CONFIG -J bastion inner echo jumped`, authenticating on the
/// target with a cert from the bastion's upstream CA (the target trusts it).
fn jump(b: &Bastion, open: bool) -> (Output, PathBuf) {
    let target_port = b.target(TARGET).port;
    let agent = b.granted_agent();
    let dir = b.dir().join(format!("jump-{open}"));
    fs::create_dir_all(&dir).unwrap();
    let inner = b.new_key();
    let inner_cert = sign_with_ssh_keygen(
        &b.dir().join("ca/upstream_ca"),
        &inner.public,
        "inner",
        &[&whoami()],
        "-1m:+10m",
        &[],
        false,
        7,
    );
    let config = jump_config(&agent, &dir, target_port, &inner_cert);
    let mut cmd = Command::new("ssh");
    cmd.arg("-F").arg(&config);
    cmd.args(["-i"]).arg(&inner.private);
    cmd.args(["-J", "bastion", "inner", "echo jumped"]);
    (run_bounded(&mut cmd), config)
}

#[test]
fn proxy_jump_reaches_a_target_in_scope() {
    // The target's port is picked when it starts, so the role allows any
    // port on the target's address.
    let b = Bastion::start(Setup::standard().with_role(|r| r.open(&["127.0.0.1:*"])));
    let (out, _) = jump(&b, true);

    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "jumped\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, opened) = wait_for_event(&b, "forward.opened", |_| true);
    assert_eq!(opened["port"], b.target(TARGET).port, "{opened}");
    assert!(
        find_event(&b, "exec.allowed", |_| true).is_none(),
        "the inner session is end-to-end encrypted: no command is seen"
    );
}

#[test]
fn proxy_jump_to_a_target_outside_the_scope_is_refused() {
    let b = Bastion::start(Setup::standard().with_role(|r| r.open(&["127.0.0.1:1"])));
    let (out, _) = jump(&b, false);

    assert_ne!(out.status.code(), Some(0), "the jump fails");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stdio forwarding failed"), "{stderr}");
    wait_for_event(&b, "forward.refused", |e| {
        e["port"] == b.target(TARGET).port
    });
}
