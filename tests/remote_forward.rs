//! Remote forwarding (`ssh -R`): refused unless a role lists the listen
//! address exactly; when listed, the listener opens on the bastion, each
//! connection is recorded before the client gets it, and the listener
//! ends with the connection.
mod common;

use common::*;

/// A bastion whose standard role may open `patterns`, and an echo server.
fn with_open(patterns: &[&str], echo: &EchoServer) -> Bastion {
    let patterns: Vec<String> = patterns
        .iter()
        .map(|p| p.replace("ECHO", &echo.port.to_string()))
        .collect();
    let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
    Bastion::start(Setup::standard().with_role(|r| r.open(&patterns)))
}

#[test]
fn remote_forward_is_refused_by_default() {
    let echo = EchoServer::start(b"");
    let b = with_open(&["127.0.0.1:ECHO"], &echo);
    let agent = b.granted_agent();
    let scratch = tempfile::tempdir().unwrap();
    let remote = free_port();
    let mut cmd = ssh_base(&agent, scratch.path());
    cmd.args(["-N", "-o", "ExitOnForwardFailure=yes", "-R"])
        .arg(format!("127.0.0.1:{remote}:127.0.0.1:{}", echo.port))
        .arg(format!("{}@127.0.0.1", agent.login));

    let out = run_bounded(&mut cmd);

    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("remote port forwarding failed"), "{stderr}");
    assert!(!is_listening(remote), "nothing listens on the bastion");
    wait_for_event(&b, "request.refused", |e| {
        e["reason"].as_str().unwrap_or_default().contains("listen")
    });
}

#[test]
fn remote_forward_to_a_listed_address_works_and_is_recorded() {
    let echo = EchoServer::start(b"back\n");
    let remote = free_port();
    let listen = format!("127.0.0.1:{remote}");
    let b = Bastion::start(Setup::standard().with_role(|r| r.listen(&[&listen])));
    let spec = format!("127.0.0.1:{remote}:127.0.0.1:{}", echo.port);
    let tunnel = Tunnel::open(&b.granted_agent(), &["-R", &spec], Some(remote));

    assert_eq!(roundtrip(remote, b"via -R"), b"via -Rback\n");

    let (show, closed) = wait_for_event(&b, "forward.closed", |_| true);
    // For -R the TCP side is the connection accepted on the bastion: it
    // sent 6 bytes towards the agent and got 11 back.
    assert_eq!(closed["bytes_from_destination"], 6, "{closed}");
    assert_eq!(closed["bytes_to_destination"], 11, "{closed}");
    assert_eq!(
        events_of_kind(&show, "listen.opened")[0]["address"],
        listen.as_str()
    );
    assert_eq!(
        events_of_kind(&show, "listen.accepted").len(),
        1,
        "{show:#}"
    );

    drop(tunnel);
    eventually("the listener to close with the connection", || {
        if is_listening(remote) {
            Err("still listening".into())
        } else {
            Ok(())
        }
    });
}
