//! The SFTP framer, parser and gate: pure functions of bytes.

use proptest::prelude::*;

use super::gate::{Gate, Verdict};
use super::packet::*;
use crate::audit::Event;
use crate::cert::{CertScope, VerifiedCert};
use crate::policy::{
    Ceiling, ChannelGrants, PathPattern, PathScope, PatternSet, Target, UpstreamAuth,
};
use crate::scope::Scope;

fn gate() -> Gate {
    let cert = VerifiedCert {
        key_id: "a".into(),
        serial: 1,
        ca_fingerprint: String::new(),
        principals: vec!["t".into()],
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
    let ceiling = Ceiling {
        target: Target {
            name: "t".into(),
            address: "127.0.0.1:22".into(),
            user: "u".into(),
            host_key: None,
            auth: UpstreamAuth::Certificate,
        },
        roles: vec![],
        exec: PatternSet::new(),
        open: vec![],
        pty: false,
        single_session: false,
        channels: ChannelGrants {
            sftp: Some(PathScope::new(vec![PathPattern::parse("/srv/up").unwrap()])),
            ..Default::default()
        },
    };
    let scope = Scope::new(&cert, ceiling, 1024);
    Gate::new(scope.authorize_subsystem("sftp").unwrap())
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
        Verdict::Forward(_) => None,
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
    let mut g = gate();
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
fn home_from_realpath_dot_resolves_relative_paths() {
    let mut g = gate();
    let v = g
        .on_request(&packet(FXP_REALPATH, 1, &[b"."], &[]))
        .unwrap();
    assert!(matches!(v, Verdict::Forward(Some(_))));
    let mut name = vec![FXP_NAME];
    name.extend_from_slice(&1u32.to_be_bytes());
    name.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut name, b"/srv");
    let mut reply = (name.len() as u32).to_be_bytes().to_vec();
    reply.extend(name);
    g.on_response(&reply).unwrap();
    let v = g.on_request(&packet(FXP_STAT, 2, &[b"up/x"], &[])).unwrap();
    assert!(
        matches!(v, Verdict::Forward(Some(Event::SftpOp { ref path, .. })) if path == "/srv/up/x")
    );
}

/// Found by the `sftp_packets` fuzz target: a home directory taken raw from
/// the target's REALPATH answer carried its control characters into every
/// relative path, and the refusal of one out of scope spanned two lines.
#[test]
fn a_home_with_control_characters_is_not_learned() {
    let realpath_answer = |home: &[u8]| {
        let mut name = vec![FXP_NAME];
        name.extend_from_slice(&1u32.to_be_bytes());
        name.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut name, home);
        let mut reply = (name.len() as u32).to_be_bytes().to_vec();
        reply.extend(name);
        reply
    };
    for home in [
        &b"/lo\n\0\0\0&"[..],
        b"/srv\x1b[2J",
        b"relative",
        b"/srv/\xff",
    ] {
        let mut g = gate();
        g.on_request(&packet(FXP_REALPATH, 1, &[b"."], &[]))
            .unwrap();
        g.on_response(&realpath_answer(home)).unwrap();
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
    let mut g = gate();
    g.on_request(&packet(FXP_REALPATH, 1, &[b"."], &[]))
        .unwrap();
    g.on_response(&realpath_answer(b"/srv/./x/../")).unwrap();
    let v = g.on_request(&packet(FXP_STAT, 2, &[b"up/f"], &[])).unwrap();
    assert!(
        matches!(v, Verdict::Forward(Some(Event::SftpOp { ref path, .. })) if path == "/srv/up/f")
    );
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
    let events = g.on_response(&status_packet(3, FX_OK, "")).unwrap();
    assert_eq!(
        events,
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
