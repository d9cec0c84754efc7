//! `[syslog]`: `serve` forwards each chained event as an RFC 5424
//! message, over UDP and over TCP, and a receiver that is down delays no
//! session and misses nothing once it is up.
mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

/// A parsed message: (PRI, MSGID, the event JSON).
struct Message {
    pri: u16,
    msgid: String,
    event: Value,
}

/// Parses `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - BOM JSON` strictly.
fn parse(raw: &[u8]) -> Message {
    let text = std::str::from_utf8(raw).unwrap_or_else(|e| panic!("{e}: {raw:?}"));
    let (header, json) = text
        .split_once('\u{feff}')
        .unwrap_or_else(|| panic!("no BOM before the message: {text}"));
    let fields: Vec<&str> = header.split(' ').collect();
    assert_eq!(
        fields.len(),
        8,
        "seven header fields and the nil SD: {header:?}"
    );
    let (pri, version) = fields[0]
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .unwrap_or_else(|| panic!("no PRI: {header}"));
    assert_eq!(version, "1", "{header}");
    assert!(
        fields[1].ends_with('Z') && fields[1].contains('T'),
        "{header}"
    );
    assert_eq!(fields[3], "portcullis", "{header}");
    assert!(
        fields[4].parse::<u32>().is_ok(),
        "PROCID is the pid: {header}"
    );
    assert_eq!((fields[6], fields[7]), ("-", ""), "{header}");
    Message {
        pri: pri.parse().unwrap_or_else(|e| panic!("{e}: {header}")),
        msgid: fields[5].to_string(),
        event: serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}")),
    }
}

fn address_setting(scheme: &str, port: u16) -> String {
    format!("\"{scheme}:127.0.0.1:{port}\"")
}

/// Reads octet-counted frames (`LEN SP MSG`) from a TCP receiver.
fn frames(reader: &mut impl BufRead) -> impl Iterator<Item = Vec<u8>> + '_ {
    std::iter::from_fn(move || {
        let mut length = Vec::new();
        reader.read_until(b' ', &mut length).ok()?;
        let length: usize = std::str::from_utf8(length.strip_suffix(b" ")?)
            .ok()?
            .parse()
            .ok()?;
        let mut message = vec![0; length];
        reader.read_exact(&mut message).ok()?;
        Some(message)
    })
}

#[test]
fn each_event_reaches_a_udp_receiver_as_an_rfc5424_message() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP receiver");
    receiver
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set a read timeout");
    let port = receiver.local_addr().expect("its address").port();
    let b = Bastion::start(
        Setup::standard()
            .table_setting("syslog", "address", &address_setting("udp", port))
            .table_setting("syslog", "facility", "\"local3\""),
    );
    let agent = b.granted_agent();
    assert_output(&agent.run("echo forwarded"), 0, "forwarded\n");
    assert_command_refused(&agent, "rm -rf /");

    let mut seen = Vec::new();
    let mut buffer = vec![0; 65536];
    while !seen.iter().any(|m: &Message| m.msgid == "exec.refused") {
        let n = receiver
            .recv(&mut buffer)
            .unwrap_or_else(|e| panic!("no further message ({e}); got {:?}", kinds(&seen)));
        seen.push(parse(&buffer[..n]));
    }
    let allowed = seen.iter().find(|m| m.msgid == "exec.allowed");
    let allowed = allowed.unwrap_or_else(|| panic!("no exec.allowed: {:?}", kinds(&seen)));
    // local3 (19) * 8 + informational (6); a refusal is a warning (4).
    assert_eq!(allowed.pri, 19 * 8 + 6);
    assert_eq!(allowed.event["command"], "echo forwarded");
    let refused = seen.iter().find(|m| m.msgid == "exec.refused");
    assert_eq!(refused.map(|m| m.pri), Some(19 * 8 + 4));

    // The message is the event exactly as `events --json` prints it.
    let seq = allowed.event["seq"].as_i64().expect("the event's seq");
    let out = b.cli_ok("events", &["--json", "--after", &(seq - 1).to_string()]);
    let line = String::from_utf8_lossy(&out.stdout);
    let first: Value = serde_json::from_str(line.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(first, allowed.event);
    let seqs: Vec<i64> = seen
        .iter()
        .filter_map(|m| m.event["seq"].as_i64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
}

fn kinds(seen: &[Message]) -> Vec<&str> {
    seen.iter().map(|m| m.msgid.as_str()).collect()
}

#[test]
fn a_tcp_receiver_that_is_down_delays_nothing_and_gets_every_event_once_up() {
    let port = free_port();
    let b = Bastion::start(Setup::standard().table_setting(
        "syslog",
        "address",
        &address_setting("tcp", port),
    ));
    let agent = b.granted_agent();
    let started = Instant::now();
    for n in 0..3 {
        assert_output(
            &agent.run(&format!("echo while-down-{n}")),
            0,
            &format!("while-down-{n}\n"),
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "sessions went on while the receiver was down: {:?}",
        started.elapsed()
    );

    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the TCP receiver");
    let (stream, _) = listener.accept().expect("the forwarder connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("set a read timeout");
    let mut reader = BufReader::new(stream);
    let mut commands = Vec::new();
    let mut seqs = Vec::new();
    for raw in frames(&mut reader) {
        let message = parse(&raw);
        seqs.push(message.event["seq"].as_i64().unwrap_or_default());
        if message.msgid == "exec.allowed" {
            commands.push(
                message.event["command"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        if commands.len() == 3 {
            break;
        }
    }
    assert_eq!(
        commands,
        [
            "echo while-down-0",
            "echo while-down-1",
            "echo while-down-2"
        ]
    );
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: {seqs:?}"
    );
}
