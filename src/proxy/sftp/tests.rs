//! The SFTP framer, parser and gate: pure functions of bytes.

use proptest::prelude::*;

use super::gate::{Gate, GateError, Verdict, PROBE_ID};
use super::packet::*;
use crate::audit::Event;
use crate::policy::{PathPattern, PathScope};
use crate::session::scope::SftpDecision;

fn fresh_gate() -> Gate {
    let paths = PathScope::new(vec![PathPattern::parse("/srv/up").unwrap()]);
    Gate::new(SftpDecision::for_paths(paths))
}

/// A gate past the handshake, whose own probe learned `home`.
fn gate_with_home(home: &[u8]) -> Gate {
    let mut g = fresh_gate();
    assert!(matches!(g.on_request(&init()), Ok(Verdict::Forward(None))));
    let answer = g.on_response(&version()).unwrap();
    assert!(answer.forward, "VERSION goes on to the client");
    let probe = answer.probe.expect("the gate asks for the home itself");
    assert_eq!(probe.to_vec(), packet(FXP_REALPATH, PROBE_ID, &[b"."], &[]));
    let answer = g.on_response(&name(PROBE_ID, home)).unwrap();
    assert!(
        !answer.forward,
        "the probe's answer never reaches the client"
    );
    assert!(g.ready());
    g
}

fn gate() -> Gate {
    gate_with_home(b"/srv")
}

fn init() -> Vec<u8> {
    let body = [&[FXP_INIT][..], &3u32.to_be_bytes()].concat();
    [(body.len() as u32).to_be_bytes().to_vec(), body].concat()
}

fn version() -> Vec<u8> {
    let body = [&[FXP_VERSION][..], &3u32.to_be_bytes()].concat();
    [(body.len() as u32).to_be_bytes().to_vec(), body].concat()
}

/// A NAME answer with one name.
fn name(id: u32, path: &[u8]) -> Vec<u8> {
    let mut body = vec![FXP_NAME];
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut body, path);
    put_string(&mut body, b"");
    body.extend_from_slice(&0u32.to_be_bytes());
    [(body.len() as u32).to_be_bytes().to_vec(), body].concat()
}

/// A packet: length, type, id, then string fields and u32s as given.
fn packet(kind: u8, id: u32, fields: &[&[u8]], tail: &[u32]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(&id.to_be_bytes());
    for f in fields {
        put_string(&mut body, f);
    }
    for t in tail {
        body.extend_from_slice(&t.to_be_bytes());
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn denied_code(v: &Verdict) -> Option<u32> {
    match v {
        Verdict::Deny { reply, .. } => match parse_response(reply) {
            Ok(Response::Status { code, .. }) => Some(code),
            _ => None,
        },
        Verdict::Forward(_) | Verdict::Wait => None,
    }
}

fn forwarded_path(v: &Verdict) -> Option<&str> {
    match v {
        Verdict::Forward(Some(Event::SftpOp { path, .. })) => Some(path),
        _ => None,
    }
}

#[test]
fn framer_reassembles_packets_split_anywhere() {
    let a = packet(FXP_STAT, 1, &[b"/srv/up/a"], &[]);
    let b = packet(FXP_STAT, 2, &[b"/srv/up/b"], &[]);
    let stream = [a.clone(), b.clone()].concat();
    for cut in 0..stream.len() {
        let mut f = Framer::default();
        f.push(&stream[..cut]);
        let mut got = Vec::new();
        while let Some(p) = f.next_packet().unwrap() {
            got.push(p.to_vec());
        }
        f.push(&stream[cut..]);
        while let Some(p) = f.next_packet().unwrap() {
            got.push(p.to_vec());
        }
        assert_eq!(got, vec![a.clone(), b.clone()], "cut at {cut}");
    }
}

#[test]
fn framer_refuses_oversized_and_empty_packets() {
    let mut f = Framer::default();
    f.push(&((MAX_PACKET + 1) as u32).to_be_bytes());
    assert!(matches!(f.next_packet(), Err(ParseError::TooLarge(_))));
    let mut f = Framer::default();
    f.push(&[0, 0, 0, 0]);
    assert_eq!(f.next_packet(), Err(ParseError::Empty));
}

#[test]
fn requests_wait_until_the_gate_knows_the_home() {
    let mut g = fresh_gate();
    let open = packet(FXP_OPEN, 1, &[b"up/f"], &[1, 0]);
    assert_eq!(g.on_request(&open).unwrap_err(), GateError::BeforeInit);
    g.on_request(&init()).unwrap();
    assert!(matches!(g.on_request(&open), Ok(Verdict::Wait)));
    g.on_response(&version()).unwrap();
    assert!(matches!(g.on_request(&open), Ok(Verdict::Wait)));
    g.on_response(&name(PROBE_ID, b"/srv")).unwrap();
    assert_eq!(
        forwarded_path(&g.on_request(&open).unwrap()),
        Some("/srv/up/f")
    );
    assert_eq!(g.on_request(&init()).unwrap_err(), GateError::SecondInit);
    assert_eq!(
        g.on_request(&version()).unwrap_err(),
        GateError::VersionFromClient
    );
}

#[test]
fn a_client_realpath_answer_under_any_id_never_becomes_the_home() {
    // The escape of issue 11: an in-scope REALPATH and REALPATH "." under
    // one id, answered in the attacker's favour.
    let mut g = gate_with_home(b"/home/deploy");
    for p in [
        packet(FXP_REALPATH, 7, &[b"/srv/up/a/b/c"], &[]),
        packet(FXP_REALPATH, 8, &[b"."], &[]),
    ] {
        assert!(matches!(g.on_request(&p), Ok(Verdict::Forward(_))));
    }
    g.on_response(&name(7, b"/srv/up/a/b/c")).unwrap();
    g.on_response(&name(8, b"/srv/up/a/b/c")).unwrap();
    let escape = packet(FXP_OPEN, 9, &[b"../../../etc/x"], &[1, 0]);
    assert_eq!(
        denied_code(&g.on_request(&escape).unwrap()),
        Some(FX_PERMISSION_DENIED)
    );
    assert_eq!(g.home(), Some("/home/deploy"));
}

#[test]
fn a_duplicate_request_id_in_flight_is_refused() {
    let mut g = gate();
    let first = packet(FXP_OPEN, 3, &[b"/srv/up/a"], &[1, 0]);
    let second = packet(FXP_OPEN, 3, &[b"/srv/up/b"], &[1, 0]);
    assert!(forwarded_path(&g.on_request(&first).unwrap()).is_some());
    let v = g.on_request(&second).unwrap();
    assert_eq!(denied_code(&v), Some(FX_FAILURE));
    // Once answered, the id is free again.
    g.on_response(&status_packet(3, FX_PERMISSION_DENIED, ""))
        .unwrap();
    assert!(forwarded_path(&g.on_request(&second).unwrap()).is_some());
}

#[test]
fn requests_on_handles_the_target_never_issued_are_refused() {
    let mut g = gate();
    for p in [
        packet(FXP_READ, 1, &[b"\0\0\0\0"], &[0, 0, 100]),
        packet(FXP_CLOSE, 2, &[b"0"], &[]),
        packet(FXP_FSTAT, 3, &[b"1"], &[]),
        packet(FXP_READDIR, 4, &[b"1"], &[]),
        packet(FXP_EXTENDED, 5, &[b"fsync@openssh.com", b"1"], &[]),
    ] {
        assert_eq!(denied_code(&g.on_request(&p).unwrap()), Some(FX_FAILURE));
    }
    // An issued handle works until it is closed.
    g.on_request(&packet(FXP_OPEN, 6, &[b"/srv/up/f"], &[1, 0]))
        .unwrap();
    g.on_response(&packet(FXP_HANDLE, 6, &[b"h"], &[])).unwrap();
    let read = packet(FXP_READ, 7, &[b"h"], &[0, 0, 100]);
    assert!(matches!(g.on_request(&read), Ok(Verdict::Forward(None))));
    g.on_response(&status_packet(7, FX_OK, "")).unwrap();
    g.on_request(&packet(FXP_CLOSE, 8, &[b"h"], &[])).unwrap();
    g.on_response(&status_packet(8, FX_OK, "")).unwrap();
    let again = packet(FXP_READ, 9, &[b"h"], &[0, 0, 100]);
    assert_eq!(
        denied_code(&g.on_request(&again).unwrap()),
        Some(FX_FAILURE)
    );
}

#[test]
fn a_relative_symlink_target_is_judged_from_the_links_directory() {
    // OpenSSH's order: the target, then the link.
    let mut g = gate_with_home(b"/srv/up/deep/er");
    let outside = packet(FXP_SYMLINK, 1, &[b"../../etc", b"/srv/up/sub/link"], &[]);
    assert_eq!(
        denied_code(&g.on_request(&outside).unwrap()),
        Some(FX_PERMISSION_DENIED)
    );
    let inside = packet(FXP_SYMLINK, 2, &[b"x.txt", b"/srv/up/sub/link2"], &[]);
    match g.on_request(&inside).unwrap() {
        Verdict::Forward(Some(Event::SftpOp { op, path, to, .. })) => {
            assert_eq!(op, "symlink");
            assert_eq!(path, "/srv/up/sub/link2");
            assert_eq!(to.as_deref(), Some("/srv/up/sub/x.txt"));
        }
        other => panic!("an in-scope symlink is forwarded: {other:?}"),
    }
}

#[test]
fn in_scope_open_is_forwarded_and_recorded_with_flags() {
    let mut g = gate();
    let v = g
        .on_request(&packet(FXP_OPEN, 7, &[b"/srv/up/f"], &[0x1a, 0]))
        .unwrap();
    match v {
        Verdict::Forward(Some(Event::SftpOp {
            op, path, flags, ..
        })) => {
            assert_eq!((op.as_str(), path.as_str()), ("open", "/srv/up/f"));
            assert_eq!(flags.as_deref(), Some("write,create,truncate"));
        }
        _ => panic!("an in-scope open is forwarded with its record"),
    }
}

#[test]
fn out_of_scope_requests_are_answered_permission_denied() {
    let mut g = gate_with_home(b"/home/deploy");
    for p in [
        packet(FXP_OPEN, 1, &[b"/etc/shadow"], &[1, 0]),
        packet(FXP_REMOVE, 2, &[b"/srv/up/../x"], &[]),
        packet(FXP_RENAME, 3, &[b"/srv/up/a", b"/tmp/a"], &[]),
        packet(FXP_OPENDIR, 4, &[b"relative"], &[]),
        packet(
            FXP_EXTENDED,
            5,
            &[b"posix-rename@openssh.com", b"/tmp/a", b"/srv/up/a"],
            &[],
        ),
    ] {
        let v = g.on_request(&p).unwrap();
        assert_eq!(denied_code(&v), Some(FX_PERMISSION_DENIED));
    }
    let v = g
        .on_request(&packet(FXP_EXTENDED, 6, &[b"home-directory", b"root"], &[]))
        .unwrap();
    assert_eq!(denied_code(&v), Some(FX_OP_UNSUPPORTED));
}

#[test]
fn the_learned_home_resolves_relative_paths() {
    let mut g = gate();
    let v = g.on_request(&packet(FXP_STAT, 2, &[b"up/x"], &[])).unwrap();
    assert_eq!(forwarded_path(&v), Some("/srv/up/x"));
}

/// Found by the `sftp_packets` fuzz target: a home directory taken raw from
/// the target's REALPATH answer carried its control characters into every
/// relative path, and the refusal of one out of scope spanned two lines.
#[test]
fn a_home_with_control_characters_is_not_learned() {
    for home in [
        &b"/lo\n\0\0\0&"[..],
        b"/srv\x1b[2J",
        b"relative",
        b"/srv/\xff",
    ] {
        let mut g = gate_with_home(home);
        let v = g
            .on_request(&packet(FXP_OPEN, 2, &[b"inbox/report.txt"], &[0x1a, 0]))
            .unwrap();
        assert_eq!(denied_code(&v), Some(FX_PERMISSION_DENIED), "{home:?}");
        match v {
            Verdict::Deny {
                event: Event::SftpRefused { reason, .. },
                ..
            } => assert!(
                reason.contains("before the home directory is known"),
                "{reason:?}"
            ),
            _ => panic!("a relative open is refused while the home is unknown"),
        }
    }
    // A clean home is learned normalised.
    let mut g = gate_with_home(b"/srv/./x/../");
    let v = g.on_request(&packet(FXP_STAT, 2, &[b"up/f"], &[])).unwrap();
    assert_eq!(forwarded_path(&v), Some("/srv/up/f"));
}

#[test]
fn handle_totals_are_recorded_at_close() {
    let mut g = gate();
    g.on_request(&packet(FXP_OPEN, 1, &[b"/srv/up/f"], &[2, 0]))
        .unwrap();
    g.on_response(&packet(FXP_HANDLE, 1, &[b"h1"], &[]))
        .unwrap();
    let mut body = vec![FXP_WRITE];
    body.extend_from_slice(&2u32.to_be_bytes());
    put_string(&mut body, b"h1");
    body.extend_from_slice(&0u64.to_be_bytes());
    put_string(&mut body, &[7u8; 100]);
    let mut write = (body.len() as u32).to_be_bytes().to_vec();
    write.extend(body);
    g.on_request(&write).unwrap();
    g.on_response(&status_packet(2, FX_OK, "")).unwrap();
    g.on_request(&packet(FXP_CLOSE, 3, &[b"h1"], &[])).unwrap();
    let answer = g.on_response(&status_packet(3, FX_OK, "")).unwrap();
    assert_eq!(
        answer.events,
        vec![Event::SftpClosed {
            path: "/srv/up/f".into(),
            bytes_read: 0,
            bytes_written: 100
        }]
    );
}

proptest! {
    /// Any bytes at all: the framer, parser and gate answer or refuse,
    /// and never panic.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut g = gate();
        let mut f = Framer::default();
        for chunk in &chunks {
            f.push(chunk);
            while let Ok(Some(p)) = f.next_packet() {
                let _ = g.on_request(&p);
                let _ = g.on_response(&p);
            }
            let _ = g.on_request(chunk);
            let _ = g.on_response(chunk);
            let _ = parse_response(chunk);
        }
    }
}
