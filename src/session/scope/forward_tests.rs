//! Forward, listen and sftp decisions, against the scope's public API.

use std::net::IpAddr;

use super::testing::scope as scope_of;
use super::{ForwardRefusal, Scope};

/// A role on web1 with these forwards, sftp on /srv/up and a listener on
/// 127.0.0.1:8080; the cert narrows forwards when `cert_open` is given,
/// and carries permit-port-forwarding when `permit` is.
fn scope(role_open: &[&str], cert_open: Option<&[&str]>, permit: bool) -> Scope {
    let roles = format!(
        "[roles.ops]\ntargets = [\"web1\"]\nmax_ttl = \"15m\"\napproval = \"auto\"\nopen = {}\nsftp = true\nsftp_paths = [\"/srv/up\"]\nlisten = [\"127.0.0.1:8080\"]\n",
        serde_json::to_string(role_open).unwrap_or_default()
    );
    let open = cert_open.map(|o| serde_json::to_string(o).unwrap_or_default());
    let mut critical = Vec::new();
    if let Some(open) = &open {
        critical.push(("open@portcullis", open.as_str()));
        // An explicit cert names every dimension: these tests are about
        // forwards, so it names the role's listener and paths too.
        critical.push(("listen@portcullis", r#"["127.0.0.1:8080"]"#));
        critical.push(("sftp@portcullis", r#"["/srv/up"]"#));
    }
    let extensions: &[(&str, &str)] = if permit {
        &[("permit-port-forwarding", "")]
    } else {
        &[]
    };
    scope_of(&roles, &critical, extensions)
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
    assert!(s.decide_listen("127.0.0.1", 8080).is_ok());
    assert!(s.decide_listen("localhost", 8080).is_ok());
    assert!(s.decide_listen("127.0.0.1", 8081).is_err());
    assert!(s.decide_listen("0.0.0.0", 8080).is_err());
    assert!(scope(&[], None, false)
        .decide_listen("127.0.0.1", 8080)
        .is_err());
}

#[test]
fn sftp_paths_are_normalised_before_matching() {
    let sftp = scope(&[], None, false).decide_sftp("sftp").unwrap();
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
    assert!(scope(&[], None, false).decide_sftp("shell").is_err());
}

#[test]
fn the_bastions_own_interface_addresses_need_a_literal_listing() {
    // The address this host would send from (a UDP "connect" sends nothing;
    // it only picks the route and source address).
    let own = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.99:9")?;
            socket.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let Some(own) = own else {
        eprintln!("no non-loopback address on this host; nothing to check");
        return;
    };
    let s = scope(&["*:*"], None, true);
    assert!(
        matches!(
            s.choose_address("h", 80, &[own]),
            Err(ForwardRefusal::SpecialAddress { .. })
        ),
        "{own}"
    );
    let listed = scope(&[&format!("{own}:80")], None, true);
    assert_eq!(listed.choose_address("h", 80, &[own]), Ok(own));
    // An address of another host is an ordinary destination.
    assert_eq!(
        s.choose_address("h", 80, &[ip("198.51.100.7")]),
        Ok(ip("198.51.100.7"))
    );
}
