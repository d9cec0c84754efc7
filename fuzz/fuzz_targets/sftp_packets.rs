//! Any bytes as an SFTP v3 exchange, both directions interleaved: the
//! framer, the decoders and the gate never panic, and the gate keeps its
//! invariants whatever the client and the target send, in whatever order,
//! with whatever request ids (duplicates and ids in flight included):
//!
//! - every path the gate forwards or records is in the path scope;
//! - no request is forwarded under an id already in flight;
//! - a request on a handle is forwarded only for a handle the target
//!   issued to a forwarded OPEN/OPENDIR and that was not closed since;
//! - the home directory is only ever what the target answered to the
//!   gate's own probe (never a client-chosen answer), and requests wait
//!   only until that answer;
//! - every answer the bastion writes itself is one STATUS for the request
//!   it refuses, with a one-line reason.
//!
//! Input: the first byte picks the start (even: a gate past the handshake
//! whose home is `/home/deploy`; odd: a fresh gate). The rest is a byte
//! stream of packets as on the wire (`u32` length, type, id, fields); a
//! packet whose type is the target's (VERSION, 101..=199, 201..) goes to
//! the gate as a response, any other as a client request.
#![no_main]

use std::collections::{HashMap, HashSet};

use libfuzzer_sys::fuzz_target;
use portcullis::audit::Event;
use portcullis::policy::{normalize, PathPattern, PathScope};
use portcullis::proxy::sftp::gate::{Gate, Verdict, PROBE_ID};
use portcullis::proxy::sftp::packet::{
    open_packet, parse_response, put_string, Framer, Response, FXP_CLOSE, FXP_EXTENDED,
    FXP_FSETSTAT, FXP_FSTAT, FXP_INIT, FXP_NAME, FXP_OPEN, FXP_OPENDIR, FXP_READ, FXP_READDIR,
    FXP_VERSION, FXP_WRITE, FX_FAILURE, FX_OP_UNSUPPORTED, FX_PERMISSION_DENIED,
};
use portcullis::session::scope::SftpDecision;

fn decision() -> SftpDecision {
    let paths = ["/srv/up", "/home/*/inbox"]
        .iter()
        .filter_map(|p| PathPattern::parse(p).ok())
        .collect();
    SftpDecision::for_paths(PathScope::new(paths))
}

fn framed(body: Vec<u8>) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A forwarded request, as the model follows it.
enum Pending {
    Open,
    Close(Vec<u8>),
    Other,
}

/// What the harness knows independently of the gate.
#[derive(Default)]
struct Model {
    /// Forwarded request ids not yet answered.
    in_flight: HashMap<u32, Pending>,
    /// Handles the target issued to a forwarded open, not closed since.
    handles: HashSet<Vec<u8>>,
    /// The home the probe's answer named (None: none, or not clean).
    home: Option<String>,
    probed: bool,
}

fn assert_in_scope(scope: &SftpDecision, path: &str) {
    assert_eq!(
        scope.check_path(path.as_bytes(), None),
        Ok(path.to_owned()),
        "forwarded or recorded a path outside the scope or not normalised"
    );
}

fn request(gate: &mut Gate, model: &mut Model, scope: &SftpDecision, packet: &[u8]) {
    let Ok((kind, id, mut fields)) = open_packet(packet) else {
        assert!(gate.on_request(packet).is_err());
        return;
    };
    let was_ready = gate.ready();
    let handle = match kind {
        FXP_READ | FXP_WRITE | FXP_CLOSE | FXP_FSTAT | FXP_FSETSTAT | FXP_READDIR => {
            fields.string().ok().map(<[u8]>::to_vec)
        }
        _ => None,
    };
    match gate.on_request(packet) {
        Err(_) => {}
        Ok(Verdict::Wait) => assert!(!was_ready, "a request waited after the home was known"),
        Ok(Verdict::Forward(event)) => {
            assert!(
                was_ready || kind == FXP_INIT,
                "forwarded before the home was known"
            );
            let pending = match (&handle, kind) {
                (Some(handle), FXP_CLOSE) => Pending::Close(handle.clone()),
                (_, FXP_OPEN | FXP_OPENDIR) => Pending::Open,
                _ => Pending::Other,
            };
            if let Some(id) = id {
                assert!(
                    model.in_flight.insert(id, pending).is_none(),
                    "forwarded a request under id {id}, already in flight"
                );
            }
            if let Some(handle) = handle {
                assert!(
                    model.handles.contains(&handle),
                    "forwarded a request on a handle never issued"
                );
            }
            match event {
                None => {}
                Some(Event::SftpOp { op, path, to, .. }) => {
                    if !(op == "realpath" && path == ".") {
                        assert_in_scope(scope, &path);
                    }
                    if let Some(to) = to {
                        assert_in_scope(scope, &to);
                    }
                }
                Some(other) => panic!("unexpected event {other:?}"),
            }
        }
        Ok(Verdict::Deny { event, reply }) => {
            match parse_response(&reply) {
                Ok(Response::Status { id: answered, code }) => {
                    assert_eq!(Some(answered), id, "answered another request");
                    assert!(matches!(
                        code,
                        FX_PERMISSION_DENIED | FX_OP_UNSUPPORTED | FX_FAILURE
                    ));
                }
                other => panic!("the bastion's answer is not a status: {other:?}"),
            }
            match event {
                Event::SftpRefused { reason, .. } => assert!(!reason.contains('\n'), "{reason:?}"),
                other => panic!("a refusal recorded as {other:?}"),
            }
        }
    }
}

fn response(gate: &mut Gate, model: &mut Model, scope: &SftpDecision, packet: &[u8]) {
    let parsed = parse_response(packet);
    let Ok(answer) = gate.on_response(packet) else {
        return;
    };
    if let Some(probe) = &answer.probe {
        assert!(!model.probed, "a second probe");
        model.probed = true;
        assert!(matches!(parsed, Ok(Response::Version)));
        assert_eq!(
            open_packet(probe).ok().and_then(|(_, id, _)| id),
            Some(PROBE_ID)
        );
    }
    match parsed {
        Ok(Response::Name { id, first }) if id == PROBE_ID && !answer.forward => {
            model.home = first
                .filter(|name| name.starts_with(b"/"))
                .and_then(|name| normalize(name, None).ok());
        }
        Ok(Response::Status { id, .. }) => {
            // OpenSSH frees a handle on close whatever the status says.
            if let Some(Pending::Close(handle)) = model.in_flight.remove(&id) {
                model.handles.remove(&handle);
            }
        }
        Ok(Response::Data { id, .. } | Response::Name { id, .. } | Response::Other { id }) => {
            model.in_flight.remove(&id);
        }
        Ok(Response::Handle { id, handle }) => {
            if let Some(Pending::Open) = model.in_flight.remove(&id) {
                model.handles.insert(handle.to_vec());
            }
        }
        _ => {}
    }
    assert_eq!(
        gate.home(),
        model.home.as_deref(),
        "the home is only the probe's answer"
    );
    for event in answer.events {
        match event {
            Event::SftpClosed { path, .. } => assert_in_scope(scope, &path),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// A gate past the handshake, its home learned from its own probe.
fn handshaken(gate: &mut Gate, model: &mut Model, scope: &SftpDecision) {
    let init = framed([&[FXP_INIT][..], &3u32.to_be_bytes()].concat());
    request(gate, model, scope, &init);
    let version = framed([&[FXP_VERSION][..], &3u32.to_be_bytes()].concat());
    response(gate, model, scope, &version);
    let mut name = vec![FXP_NAME];
    name.extend_from_slice(&PROBE_ID.to_be_bytes());
    name.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut name, b"/home/deploy");
    put_string(&mut name, b"");
    name.extend_from_slice(&0u32.to_be_bytes());
    response(gate, model, scope, &framed(name));
    assert!(gate.ready());
}

fuzz_target!(|data: &[u8]| {
    let Some((&start, stream)) = data.split_first() else {
        return;
    };
    let scope = decision();
    let mut gate = Gate::new(scope.clone());
    let mut model = Model::default();
    if start % 2 == 0 {
        handshaken(&mut gate, &mut model, &scope);
    }
    let mut framer = Framer::default();
    framer.push(stream);
    while let Ok(Some(packet)) = framer.next_packet() {
        let kind = packet.get(4).copied().unwrap_or(0);
        let from_target = kind == FXP_VERSION || (kind > 100 && kind != FXP_EXTENDED);
        if from_target {
            response(&mut gate, &mut model, &scope, &packet);
        } else {
            request(&mut gate, &mut model, &scope, &packet);
        }
    }
    for event in gate.finish() {
        match event {
            Event::SftpClosed { path, .. } => assert_in_scope(&scope, &path),
            other => panic!("unexpected event {other:?}"),
        }
    }
});
