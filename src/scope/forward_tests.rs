//! Forward, listen and sftp decisions, against the scope's public API.

use std::net::IpAddr;

use super::{ForwardRefusal, Scope};
use crate::cert::{CertScope, VerifiedCert};
use crate::policy::{
    Ceiling, ChannelGrants, ListenAddress, OpenPatternSet, PathPattern, PathScope, PatternSet,
    Target, UpstreamAuth,
};

fn scope(role_open: &[&str], cert_open: Option<&[&str]>, permit: bool) -> Scope {
    let cert = VerifiedCert {
        key_id: "agent-7".into(),
        serial: 1,
        ca_fingerprint: "SHA256:x".into(),
        principals: vec!["web1".into()],
        valid_after: 0,
        valid_before: 60,
        scope: CertScope {
            exec: None,
            open: cert_open.map(|p| OpenPatternSet::parse(p).unwrap()),
            force_command: None,
            source_address: None,
            permit_pty: false,
            permit_port_forwarding: permit,
            task: None,
        },
    };
    let ceiling = Ceiling {
        target: Target {
            name: "web1".into(),
            address: "127.0.0.1:22".into(),
            user: "deploy".into(),
            host_key: None,
            auth: UpstreamAuth::Certificate,
        },
        roles: vec!["ops".into()],
        exec: PatternSet::new(),
        open: role_open.iter().map(|p| p.to_string()).collect(),
        pty: false,
        single_session: false,
        channels: ChannelGrants {
            sftp: Some(PathScope::new(vec![PathPattern::parse("/srv/up").unwrap()])),
            listen: vec![ListenAddress::parse("127.0.0.1:8080").unwrap()],
            capture: false,
        },
    };
    Scope::new(&cert, ceiling, 1024)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn forward_needs_permit_port_forwarding() {
    let s = scope(&["*:*"], None, false);
    assert_eq!(
        s.check_destination("db", 5432),
        Err(ForwardRefusal::NotPermitted)
    );
}

#[test]
fn forward_needs_both_the_cert_and_a_role() {
    let s = scope(
        &["db.internal:5432", "10.0.0.*:*"],
        Some(&["db.internal:*"]),
        true,
    );
    assert!(s.check_destination("DB.internal", 5432).is_ok());
    assert!(matches!(
        s.check_destination("db.internal", 5433),
        Err(ForwardRefusal::NotInPolicy { .. })
    ));
    assert!(matches!(
        s.check_destination("10.0.0.5", 22),
        Err(ForwardRefusal::NotInCert(_))
    ));
}

#[test]
fn port_ranges_and_stars_match() {
    let s = scope(&["db:8000-8099", "*.internal:22"], None, true);
    assert!(s.check_destination("db", 8000).is_ok());
    assert!(s.check_destination("db", 8099).is_ok());
    assert!(s.check_destination("db", 8100).is_err());
    assert!(s.check_destination("a.b.internal", 22).is_ok());
    assert!(s.check_destination("internal", 22).is_err());
    assert!(s.check_destination("db", 0).is_err());
    assert!(s.check_destination("db", 70000).is_err());
}

#[test]
fn hosts_that_are_numbers_in_disguise_are_refused() {
    let s = scope(&["*:*"], None, true);
    for host in ["127.1", "2130706433", "0x7f.1", "127.000.000.001"] {
        assert!(
            matches!(
                s.check_destination(host, 80),
                Err(ForwardRefusal::NumericName(_))
            ),
            "{host}"
        );
    }
    for host in ["db;rm", "a b", "", "é.example"] {
        assert!(
            matches!(
                s.check_destination(host, 80),
                Err(ForwardRefusal::BadHost(_))
            ),
            "{host:?}"
        );
    }
}

#[test]
fn ipv6_literals_match_by_address() {
    let s = scope(&["[::1]:22"], None, true);
    assert!(s.check_destination("::1", 22).is_ok());
    assert!(s.check_destination("[0:0::1]", 22).is_ok());
    assert!(s.check_destination("::2", 22).is_err());
}

#[test]
fn special_addresses_need_a_literal_listing() {
    let s = scope(&["*:5432"], None, true);
    for addr in [
        "127.0.0.1",
        "0.0.0.0",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(
            matches!(
                s.choose_address("h", 5432, &[ip(addr)]),
                Err(ForwardRefusal::SpecialAddress { .. })
            ),
            "{addr}"
        );
    }
    assert_eq!(
        s.choose_address("h", 5432, &[ip("10.1.2.3")]),
        Ok(ip("10.1.2.3"))
    );
    // The first acceptable candidate wins; special ones are skipped.
    assert_eq!(
        s.choose_address("h", 5432, &[ip("::1"), ip("10.1.2.3")]),
        Ok(ip("10.1.2.3"))
    );

    let listed = scope(&["localhost:5432", "127.0.0.1:5432"], None, true);
    assert_eq!(
        listed.choose_address("localhost", 5432, &[ip("::1"), ip("127.0.0.1")]),
        Ok(ip("127.0.0.1"))
    );
    // The cert must list it literally too.
    let cert = scope(&["127.0.0.1:5432"], Some(&["*:5432"]), true);
    assert!(cert
        .choose_address("localhost", 5432, &[ip("127.0.0.1")])
        .is_err());
}

#[test]
fn listen_needs_an_exact_role_listing_and_the_grant() {
    let s = scope(&[], None, true);
    assert!(s.authorize_listen("127.0.0.1", 8080).is_ok());
    assert!(s.authorize_listen("localhost", 8080).is_ok());
    assert!(s.authorize_listen("127.0.0.1", 8081).is_err());
    assert!(s.authorize_listen("0.0.0.0", 8080).is_err());
    assert!(scope(&[], None, false)
        .authorize_listen("127.0.0.1", 8080)
        .is_err());
}

#[test]
fn sftp_paths_are_normalised_before_matching() {
    let sftp = scope(&[], None, false).authorize_subsystem("sftp").unwrap();
    assert_eq!(sftp.check_path(b"/srv/up/a", None).unwrap(), "/srv/up/a");
    assert_eq!(
        sftp.check_path(b"/srv/./up//b/../c", None).unwrap(),
        "/srv/up/c"
    );
    assert!(sftp.check_path(b"/srv/up/../../etc/passwd", None).is_err());
    assert!(
        sftp.check_path(b"/srv/upload", None).is_err(),
        "prefix is per component"
    );
    assert!(
        sftp.check_path(b"x", None).is_err(),
        "relative before home is known"
    );
    assert_eq!(sftp.check_path(b"up/x", Some("/srv")).unwrap(), "/srv/up/x");
    assert_eq!(sftp.check_path(b"~/up", Some("/srv")).unwrap(), "/srv/up");
    assert!(sftp.check_path(b"~root/x", Some("/srv")).is_err());
    assert!(sftp.check_path(b"/srv/up/\n", None).is_err());
    assert!(sftp.check_path(&[b'/', 0xff], None).is_err());
    assert!(scope(&[], None, false)
        .authorize_subsystem("shell")
        .is_err());
}
