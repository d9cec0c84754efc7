//! Forwards through the bastion: `ssh -L` and `ssh -J` reach a destination
//! only when the certificate carries `permit-port-forwarding` and both the
//! cert's `open@portcullis` and a role's `open` allow the literal
//! `host:port`; the bastion connects from itself, records the forward
//! before connecting and its byte counts when it closes; everything else
//! fails to open and is recorded with its reason. (ProxyJump: jump.rs;
//! remote forwarding: remote_forward.rs.)
mod common;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

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

/// `-L` to `destination` gives nothing back, the destination saw no
/// connection, and a `forward.refused` row holds a reason with `word`.
#[track_caller]
fn assert_forward_refused(agent: &Agent<'_>, destination: &str, echo: &EchoServer, word: &str) {
    let local = free_port();
    let tunnel = Tunnel::open(
        agent,
        &["-L", &format!("{local}:{destination}")],
        Some(local),
    );
    let got = roundtrip(local, b"hello");
    assert_eq!(got, b"", "a refused forward returns nothing");
    let (_, refused) = wait_for_event(agent.bastion, "forward.refused", |e| {
        e["reason"].as_str().unwrap_or_default().contains(word)
    });
    assert_eq!(
        echo.accepted(),
        0,
        "the destination was never reached: {refused}"
    );
    drop(tunnel);
}

#[test]
fn local_forward_to_an_allowed_destination_works() {
    let echo = EchoServer::start(b"bye\n");
    let b = with_open(&["127.0.0.1:ECHO"], &echo);
    let local = free_port();
    let dest = format!("{local}:127.0.0.1:{}", echo.port);
    let _tunnel = Tunnel::open(&b.granted_agent(), &["-L", &dest], Some(local));

    let data = noise(300 * 1024);
    let got = roundtrip(local, &data);

    assert_eq!(got.len(), data.len() + 4, "every byte comes back");
    assert!(got.starts_with(&data) && got.ends_with(b"bye\n"));
}

#[test]
fn forward_is_recorded_before_connecting_with_the_bytes_each_way() {
    let echo = EchoServer::start(b"bye\n");
    let b = with_open(&["127.0.0.1:ECHO"], &echo);
    let local = free_port();
    let dest = format!("{local}:127.0.0.1:{}", echo.port);
    let _tunnel = Tunnel::open(&b.granted_agent(), &["-L", &dest], Some(local));
    let data = noise(123_457);

    let got = roundtrip(local, &data);

    let (show, closed) = wait_for_event(&b, "forward.closed", |_| true);
    assert_eq!(closed["bytes_to_destination"], data.len(), "{closed}");
    assert_eq!(closed["bytes_from_destination"], got.len(), "{closed}");
    assert!(
        closed["how"].as_str().is_some_and(|h| !h.is_empty()),
        "{closed}"
    );
    let opened = events_of_kind(&show, "forward.opened")[0];
    assert_eq!(opened["host"], "127.0.0.1", "{opened}");
    assert_eq!(opened["port"], echo.port, "{opened}");
    assert_eq!(opened["address"], format!("127.0.0.1:{}", echo.port));
    assert!(opened["originator"].as_str().is_some(), "{opened}");
    assert!(opened["seq"].as_i64() < closed["seq"].as_i64(), "{show:#}");
    assert_eq!(opened["channel"], closed["channel"], "{show:#}");
    assert!(
        events_of_kind(&show, "data").is_empty(),
        "payload capture is off by default: {show:#}"
    );
}

#[test]
fn forward_to_a_port_outside_the_scope_is_refused() {
    let echo = EchoServer::start(b"");
    let b = with_open(&["127.0.0.1:1-1000"], &echo);
    let agent = b.granted_agent();
    let destination = format!("127.0.0.1:{}", echo.port);
    assert_forward_refused(&agent, &destination, &echo, "not allowed by");
}

#[test]
fn forward_to_a_host_outside_the_scope_is_refused() {
    let echo = EchoServer::start(b"");
    let b = with_open(&["127.0.0.1:ECHO"], &echo);
    let agent = b.granted_agent();
    let destination = format!("127.0.0.2:{}", echo.port);
    assert_forward_refused(&agent, &destination, &echo, "127.0.0.2");
}

#[test]
fn forward_without_permit_port_forwarding_is_refused() {
    let echo = EchoServer::start(b"");
    let b = with_open(&["127.0.0.1:ECHO"], &echo);
    // ssh-keygen -O clear: no extensions at all.
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard());
    let destination = format!("127.0.0.1:{}", echo.port);
    assert_forward_refused(&agent, &destination, &echo, "permit-port-forwarding");
}

#[test]
fn open_option_in_cert_narrows_the_role() {
    let echo = EchoServer::start(b"");
    let b = with_open(&["127.0.0.1:*"], &echo);
    let spec = CertSpec::standard()
        .option("extension:permit-port-forwarding")
        .option("critical:open@portcullis=[\"127.0.0.1:1\"]");
    let agent = b.signed_agent(&b.task_ca(), &spec);
    let destination = format!("127.0.0.1:{}", echo.port);
    assert_forward_refused(&agent, &destination, &echo, "open@portcullis");
}

#[test]
fn name_resolving_to_loopback_is_refused_unless_the_address_is_listed() {
    let echo = EchoServer::start(b"");
    let b = with_open(&["localhost:ECHO"], &echo);
    let agent = b.granted_agent();
    let destination = format!("localhost:{}", echo.port);
    assert_forward_refused(&agent, &destination, &echo, "loopback");

    let b = with_open(&["localhost:ECHO", "127.0.0.1:ECHO"], &echo);
    let local = free_port();
    let dest = format!("{local}:localhost:{}", echo.port);
    let _tunnel = Tunnel::open(&b.granted_agent(), &["-L", &dest], Some(local));
    assert_eq!(roundtrip(local, b"named"), b"named");
    let (_, opened) = wait_for_event(&b, "forward.opened", |_| true);
    assert_eq!(opened["host"], "localhost", "{opened}");
    assert_eq!(opened["address"], format!("127.0.0.1:{}", echo.port));
}

#[test]
fn captured_forward_payload_is_in_the_transcript() {
    let echo = EchoServer::start(b"!");
    let b = Bastion::start(
        Setup::standard()
            .with_role(|r| r.open(&[&format!("127.0.0.1:{}", echo.port)]).capture(true)),
    );
    let local = free_port();
    let dest = format!("{local}:127.0.0.1:{}", echo.port);
    let _tunnel = Tunnel::open(&b.granted_agent(), &["-L", &dest], Some(local));

    assert_eq!(roundtrip(local, b"ping"), b"ping!");

    let (show, _) = wait_for_event(&b, "forward.closed", |_| true);
    let text = |stream: &str| -> String {
        events_of_kind(&show, "data")
            .iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["text"].as_str().unwrap_or_default())
            .collect()
    };
    assert_eq!(text("stdin"), "ping", "{show:#}");
    assert_eq!(text("stdout"), "ping!", "{show:#}");
}

#[test]
fn slow_forward_destination_does_not_stall_other_channels() {
    let sink = SinkServer::start();
    let b = Bastion::start(
        Setup::standard().with_role(|r| r.open(&[&format!("127.0.0.1:{}", sink.port)])),
    );
    let tunnel = Tunnel::open(&b.granted_agent(), &[], None);
    let mut forward = tunnel.stdio_forward(&format!("127.0.0.1:{}", sink.port));
    let mut stdin = forward.stdin.take().expect("ssh -W stdin");

    // 9.5 MiB into a destination that reads nothing. Measured on this
    // setup: without the bastion's per-channel buffer the connection
    // stalls after about 7 MiB (ssh's own window and buffer, russh's
    // 100-message queue); with the 4 MiB buffer it takes about 11 MiB.
    let writer = thread::spawn(move || stdin.write_all(&noise(19 << 19)).is_ok());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !writer.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        sink.connections(),
        1,
        "the forward reached the stuck destination"
    );

    let out = tunnel.exec("echo still-moving", Duration::from_secs(30));
    let out = out.expect("an exec on the same connection completes while the forward is stuck");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "still-moving\n",
        "{out:?}"
    );
    assert!(
        writer.is_finished(),
        "the stuck forward's bytes were absorbed within the bound"
    );
    let _ = forward.kill();
    let _ = forward.wait();
}

#[test]
fn forward_open_when_the_connection_drops_is_still_closed_in_the_store() {
    let echo = EchoServer::start(b"");
    let b = with_open(&["127.0.0.1:ECHO"], &echo);
    let local = free_port();
    let dest = format!("{local}:127.0.0.1:{}", echo.port);
    let tunnel = Tunnel::open(&b.granted_agent(), &["-L", &dest], Some(local));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    stream.write_all(b"half").unwrap();
    let mut echoed = [0u8; 4];
    std::io::Read::read_exact(&mut stream, &mut echoed).unwrap();

    drop(tunnel);

    let (show, closed) = wait_for_event(&b, "forward.closed", |_| true);
    assert_eq!(closed["bytes_to_destination"], 4, "{closed}");
    assert_eq!(closed["bytes_from_destination"], 4, "{closed}");
    eventually("the session to end after the forward's record", || {
        let show = show_json(&b, show["session"]["id"].as_i64().unwrap_or(0));
        match show["session"]["ended_at"].as_str() {
            Some(_) => Ok(()),
            None => Err(format!("{show:#}")),
        }
    });
}
