//! Any bytes as SFTP v3 packets, both ways: the framer, the decoders and the
//! gate never panic; a framed packet is exactly what its length prefix
//! says, however the bytes arrive; a decoded field never reaches past the
//! packet; every answer the bastion writes itself is a well-formed STATUS
//! for the request it refuses, with a one-line reason; and every path the
//! gate forwards or records is in the path scope, normalised.
//!
//! Input: an sftp byte stream as on the wire, packets of both directions
//! one after another (`u32` length, type, id, fields). A packet whose type
//! is the target's (VERSION, 101..=199 such as STATUS, HANDLE, DATA, NAME,
//! and 201.. such as EXTENDED_REPLY) goes to the gate as a response, any
//! other as a client request, so a seed plays out a whole exchange
//! (REALPATH ".", its NAME, OPEN, HANDLE, WRITE, STATUS, CLOSE). The whole
//! input is also decoded as one packet each way, and checked as a path.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::audit::Event;
use portcullis::cert::{CertScope, VerifiedCert};
use portcullis::policy::{
    Ceiling, ChannelGrants, PathPattern, PathScope, PatternSet, Target, UpstreamAuth,
};
use portcullis::proxy::sftp::gate::{Gate, Verdict};
use portcullis::proxy::sftp::packet::{
    open_packet, parse_response, status_packet, Framer, ParseError, Response, FXP_EXTENDED,
    FXP_INIT, FXP_VERSION, FX_FAILURE, FX_OP_UNSUPPORTED, FX_PERMISSION_DENIED, MAX_PACKET,
};
use portcullis::scope::{Scope, SftpDecision};

/// `sftp_paths = ["/srv/up", "/home/*/inbox"]`, as a role grants it.
fn decision() -> &'static SftpDecision {
    static DECISION: OnceLock<SftpDecision> = OnceLock::new();
    DECISION.get_or_init(|| {
        let cert = VerifiedCert {
            key_id: "fuzz".into(),
            serial: 1,
            ca_fingerprint: String::new(),
            principals: vec!["web1".into()],
            valid_after: 0,
            valid_before: 1,
            scope: CertScope {
                exec: None,
                open: None,
                force_command: None,
                source_address: None,
                permit_pty: false,
                permit_port_forwarding: false,
                task: None,
            },
        };
        let paths = ["/srv/up", "/home/*/inbox"]
            .iter()
            .map(|p| PathPattern::parse(p).expect("fixed patterns parse"))
            .collect();
        let ceiling = Ceiling {
            target: Target {
                name: "web1".into(),
                address: "127.0.0.1:22".into(),
                user: "deploy".into(),
                host_key: None,
                auth: UpstreamAuth::Certificate,
            },
            roles: vec![],
            exec: PatternSet::new(),
            open: vec![],
            pty: false,
            single_session: false,
            channels: ChannelGrants {
                sftp: Some(PathScope::new(paths)),
                ..Default::default()
            },
        };
        Scope::new(&cert, ceiling, 1024)
            .authorize_subsystem("sftp")
            .expect("the ceiling grants sftp")
    })
}

/// A type the target sends, not the client.
fn from_target(kind: u8) -> bool {
    kind == FXP_VERSION || (kind > 100 && kind != FXP_EXTENDED)
}

/// Packets as the framer cuts them from `data`, and the error that stopped it.
fn frame(data: &[u8], step: usize) -> (Vec<Vec<u8>>, Option<ParseError>) {
    let mut framer = Framer::default();
    let mut packets = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        framer.push(chunk);
        loop {
            match framer.next_packet() {
                Ok(Some(packet)) => packets.push(packet.to_vec()),
                Ok(None) => break,
                Err(e) => return (packets, Some(e)),
            }
        }
    }
    (packets, None)
}

/// A path the gate let through: in scope, and already normalised.
fn assert_in_scope(path: &str) {
    assert_eq!(
        decision().check_path(path.as_bytes(), None),
        Ok(path.to_owned()),
        "forwarded or recorded a path outside the scope or not normalised"
    );
}

/// A packet the bastion writes itself: one whole STATUS packet.
fn assert_one_status(reply: &[u8]) -> (u32, u32) {
    let (packets, error) = frame(reply, reply.len());
    assert!(error.is_none() && packets.len() == 1 && packets[0] == reply);
    match parse_response(reply) {
        Ok(Response::Status { id, code }) => (id, code),
        other => panic!("the bastion's answer is not a status: {other:?}"),
    }
}

/// The stateless decoders on one packet, read both ways.
fn decode(packet: &[u8]) {
    if let Ok((kind, id, _)) = open_packet(packet) {
        assert_eq!(id.is_none(), kind == FXP_INIT || kind == FXP_VERSION);
    }
    // length, type, id: 9 bytes before the first field; a string adds 4.
    match parse_response(packet) {
        Ok(Response::Status { id, code }) => {
            assert!(packet.len() >= 13);
            let again = status_packet(id, code, "portcullis: fuzz");
            assert_eq!(assert_one_status(&again), (id, code));
        }
        Ok(Response::Handle { handle, .. }) => assert!(handle.len() + 13 <= packet.len()),
        Ok(Response::Data { len, .. }) => assert!(len + 13 <= packet.len()),
        Ok(Response::Name { first, .. }) => {
            assert!(first.map_or(0, |n| n.len() + 4) + 13 <= packet.len())
        }
        Ok(Response::Version | Response::Other { .. }) | Err(_) => {}
    }
}

fn request(gate: &mut Gate, packet: &[u8]) {
    match gate.on_request(packet) {
        Err(_) | Ok(Verdict::Forward(None)) => {}
        Ok(Verdict::Forward(Some(Event::SftpOp { op, path, to, .. }))) => {
            // REALPATH "." is let through to learn the home directory.
            if !(op == "realpath" && path == ".") {
                assert_in_scope(&path);
            }
            if let Some(to) = to {
                assert_in_scope(&to);
            }
        }
        Ok(Verdict::Forward(Some(other))) => panic!("unexpected event {other:?}"),
        Ok(Verdict::Deny { event, reply }) => {
            let (id, code) = assert_one_status(&reply);
            let asked = open_packet(packet).ok().and_then(|(_, id, _)| id);
            assert_eq!(Some(id), asked, "answered another request");
            assert!(matches!(
                code,
                FX_PERMISSION_DENIED | FX_OP_UNSUPPORTED | FX_FAILURE
            ));
            match event {
                Event::SftpRefused { reason, .. } => {
                    assert!(!reason.contains('\n'), "{reason:?}")
                }
                other => panic!("a refusal recorded as {other:?}"),
            }
        }
    }
}

fn response(gate: &mut Gate, packet: &[u8]) {
    for event in gate.on_response(packet).unwrap_or_default() {
        match event {
            Event::SftpClosed { path, .. } => assert_in_scope(&path),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// The path scope check alone, with the home directory unknown and known.
fn path(raw: &[u8]) {
    for home in [None, Some("/srv"), Some("/home/deploy")] {
        match decision().check_path(raw, home) {
            Ok(path) => assert_in_scope(&path),
            Err(refusal) => assert!(!refusal.to_string().contains('\n'), "{refusal:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The whole input as one packet, each way, and as a path.
    decode(data);
    let mut gate = Gate::new(decision().clone());
    request(&mut gate, data);
    response(&mut gate, data);
    path(data);

    // The input as a stream: framed whole and byte by byte alike.
    let (packets, error) = frame(data, data.len());
    assert_eq!((packets.clone(), error.clone()), frame(data, 1));
    let framed: usize = packets.iter().map(Vec::len).sum();
    assert_eq!(packets.concat(), &data[..framed]);
    let mut gate = Gate::new(decision().clone());
    for packet in &packets {
        let len = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]) as usize;
        assert!(len > 0 && len <= MAX_PACKET && packet.len() == 4 + len);
        decode(packet);
        if from_target(packet[4]) {
            response(&mut gate, packet);
        } else {
            request(&mut gate, packet);
        }
    }
    for event in gate.finish() {
        match event {
            Event::SftpClosed { path, .. } => assert_in_scope(&path),
            other => panic!("unexpected event {other:?}"),
        }
    }
});
