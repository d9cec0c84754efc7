//! Recording first, exactly: what the store says is what happened. An -R
//! listener binds the very address its `listen.opened` row names; a
//! terminal and environment variables are committed (`pty.allowed`,
//! `env.allowed`) before the command that uses them, and a refused
//! terminal is a `request.refused` row; an exit status the store cannot
//! commit does not reach the client.
mod common;

use std::net::SocketAddr;
use std::thread;

use common::*;

/// `-R localhost:PORT:...` on a bastion whose role lists `listen`: what the
/// store recorded and what is bound.
fn listen_via_localhost(listen: &str, port: u16) -> (String, Vec<SocketAddr>) {
    let echo = EchoServer::start(b"");
    let b = Bastion::start(Setup::standard().with_role(|r| r.listen(&[listen])));
    let spec = format!("localhost:{port}:127.0.0.1:{}", echo.port);
    let _tunnel = Tunnel::open(&b.granted_agent(), &["-R", &spec], Some(port));

    let bound = listening_addresses(port);
    let (_, opened) = wait_for_event(&b, "listen.opened", |_| true);
    let recorded = opened["address"].as_str().unwrap_or_default().to_string();
    (recorded, bound)
}

#[test]
fn remote_listener_binds_exactly_the_recorded_ipv4_address() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");

    let (recorded, bound) = listen_via_localhost(&listen, port);

    assert_eq!(recorded, listen);
    let recorded: SocketAddr = recorded.parse().unwrap();
    assert_eq!(bound, [recorded], "bound: {bound:?}");
}

#[test]
fn remote_listener_binds_exactly_the_recorded_ipv6_address() {
    let port = free_port();
    let listen = format!("[::1]:{port}");

    let (recorded, bound) = listen_via_localhost(&listen, port);

    assert_eq!(recorded, listen);
    let recorded: SocketAddr = recorded.parse().unwrap();
    assert_eq!(bound, [recorded], "bound: {bound:?}");
}

#[test]
fn terminal_and_environment_are_recorded_before_the_command() {
    let b = Bastion::start(
        Setup::standard().role(ROLE, Role::on(&[TARGET]).exec(&["printenv *"]).pty(true)),
    );
    let agent = b.granted_agent();

    let out = agent.run_ssh(
        Tty::Forced,
        &["-o", "SetEnv=LANG=C.UTF-8"],
        Some("printenv LANG"),
    );

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout_text(), "C.UTF-8\r\n", "{out:?}");
    let (show, _) = wait_for_event(&b, "exit.status", |_| true);
    let seq = |kind: &str| {
        events_of_kind(&show, kind)
            .first()
            .and_then(|e| e["seq"].as_i64())
            .unwrap_or_else(|| panic!("no {kind} row: {show:#}"))
    };
    assert!(seq("pty.allowed") < seq("exec.allowed"), "{show:#}");
    assert!(seq("env.allowed") < seq("exec.allowed"), "{show:#}");
}

#[test]
fn refused_terminal_is_a_refused_request_row() {
    let b = Bastion::start(Setup::standard().allow(&["tty"]));

    let out = b.granted_agent().run_ssh(Tty::Forced, &[], Some("tty"));

    assert_eq!(out.code, 255, "ssh gives up without its terminal: {out:?}");
    let (show, _) = wait_for_event(&b, "request.refused", |e| e["request"] == "pty-req");
    assert!(
        events_of_kind(&show, "pty.allowed").is_empty(),
        "a refused terminal has no pty.allowed row: {show:#}"
    );
}

#[test]
fn exit_status_that_cannot_be_recorded_is_not_delivered() {
    let scripts = tempfile::tempdir().unwrap();
    let exit3 = script(scripts.path(), "exit3", "sleep 2; exit 3");
    let exit3 = exit3.to_str().unwrap();
    let b = Bastion::start(Setup::standard().allow(&[exit3]));
    let agent = b.granted_agent();

    let out = thread::scope(|s| {
        let running = run_in_background(s, &agent, exit3);
        wait_for_event(&b, "exec.allowed", |e| e["command"] == exit3);
        let _lock = StoreLock::take(&b);
        running.join().unwrap().0
    });

    assert_eq!(
        out.code, 255,
        "an unrecorded exit status was delivered: {out:?}"
    );
    let lines = out.portcullis_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].starts_with("portcullis: error:"), "{out:?}");
}

#[test]
fn a_flood_of_environment_requests_is_bounded() {
    let b = Bastion::start(Setup::standard());
    // 150 variables the bastion would pass (LC_*) and 150 it refuses.
    let mut vars: Vec<String> = (0..150).map(|i| format!("LC_X{i}=C")).collect();
    vars.extend((0..150).map(|i| format!("NOPE{i}=x")));
    let set_env = format!("SetEnv={}", vars.join(" "));

    let out = b
        .granted_agent()
        .run_ssh(Tty::Never, &["-o", &set_env], Some("echo runs"));

    assert_output(&out, 0, "runs\n");
    let rows = stored_events(&b, "env.allowed").len()
        + stored_events(&b, "request.refused")
            .iter()
            .filter(|e| {
                e["request"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("env ")
            })
            .count();
    assert!(
        rows <= 64,
        "{rows} rows for 300 env requests: at most 64 a channel are decided and recorded"
    );
    assert!(rows >= 32, "the first ones are decided as usual: {rows}");
}
