//! The bastion's own addresses are loopback too: a service listening on one
//! of this host's interface addresses is reachable through a forward only
//! when both the cert and a role list that address literally; `*:*` does
//! not reach it. (The listeners are on this host: no packet leaves it.)
mod common;

use std::net::IpAddr;

use common::*;

/// This host's first non-loopback, non-link-local address of the family,
/// or `None` (printed) when it has none.
fn own_address(v6: bool) -> Option<IpAddr> {
    let found = own_interface_addresses()
        .into_iter()
        .find(|ip| ip.is_ipv6() == v6);
    if found.is_none() {
        let family = if v6 { "IPv6" } else { "IPv4" };
        eprintln!("skipped: this host has no non-loopback {family} interface address");
    }
    found
}

/// `host:port` as `ssh -W` and the open patterns write it.
fn destination(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// With `open = ["*:*"]`, a forward to a service on `ip` is refused: the
/// service sees no connection and a forward.refused row names the address.
#[track_caller]
fn assert_own_address_unreachable(ip: IpAddr) {
    let service = EchoServer::start_on(ip, b"inside\n");
    let b = Bastion::start(Setup::standard().with_role(|r| r.open(&["*:*"])));
    let agent = b.granted_agent();

    let out = stdio_forward_once(&agent, &destination(ip, service.port));

    assert!(!out.status.success(), "the forward worked: {out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let (_, refused) = wait_for_event(&b, "forward.refused", |e| e["port"] == service.port);
    assert!(
        reason_of(&refused).contains(&ip.to_string()),
        "the reason names the address: {refused}"
    );
    assert_eq!(service.accepted(), 0, "the service was reached: {refused}");
}

#[test]
fn star_forward_cannot_reach_the_bastions_own_ipv4_address() {
    if let Some(ip) = own_address(false) {
        assert_own_address_unreachable(ip);
    }
}

#[test]
fn star_forward_cannot_reach_the_bastions_own_ipv6_address() {
    if let Some(ip) = own_address(true) {
        assert_own_address_unreachable(ip);
    }
}

#[test]
fn own_address_listed_literally_is_reachable() {
    let Some(ip) = own_address(false) else {
        return;
    };
    let service = EchoServer::start_on(ip, b"inside\n");
    let literal = destination(ip, service.port);
    let b = Bastion::start(Setup::standard().with_role(|r| r.open(&["*:*", &literal])));

    let out = stdio_forward_once(&b.granted_agent(), &literal);

    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"inside\n", "{out:?}");
    assert_eq!(service.accepted(), 1);
}
