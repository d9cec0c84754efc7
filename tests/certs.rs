//! Certificates at the door: a cert is accepted only if a trusted CA signed
//! it as a user cert, it is valid now, the login is one of its principals,
//! every critical option is known and satisfied, its lifetime fits the role's
//! max_ttl and its key id names a known identity. A refused cert fails the
//! client's authentication, opens no session, and is recorded with its reason
//! in `portcullis sessions --refused --json`. Certs from `portcullis grant`
//! and from any trusted CA (`ssh-keygen -s`) work the same.
mod common;

use common::*;

#[test]
fn cert_from_portcullis_grant_works() {
    let b = Bastion::start(Setup::standard());

    let out = b.granted_agent().run("echo hello");

    assert_output(&out, 0, "hello\n");
}

#[test]
fn cert_from_ssh_keygen_with_the_task_ca_works() {
    let b = Bastion::start(Setup::standard());

    let out = b
        .signed_agent(&b.task_ca(), &CertSpec::standard())
        .run("echo hello");

    assert_output(&out, 0, "hello\n");
}

#[test]
fn cert_from_ssh_keygen_with_trusted_outside_ca_works() {
    let outside = CaKey::generate("outside_ca");
    let b = Bastion::start(Setup::standard().trusted_ca_file(&outside.public));

    let out = b
        .signed_agent(&outside.private, &CertSpec::standard())
        .run("echo hello");

    assert_output(&out, 0, "hello\n");
    let sessions = sessions_json(&b);
    assert_eq!(sessions[0]["identity"], AGENT, "{sessions:#}");
}

#[test]
fn expired_cert_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().validity("-30m:-20m"));
    assert_cert_refused(&agent, "expired");
}

#[test]
fn not_yet_valid_cert_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().validity("+20m:+30m"));
    assert_cert_refused(&agent, "not yet valid");
}

#[test]
fn cert_from_an_untrusted_ca_is_refused() {
    let stranger = CaKey::generate("stranger_ca");
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&stranger.private, &CertSpec::standard());
    assert_cert_refused(&agent, "not trusted");
}

#[test]
fn host_cert_is_refused() {
    let b = Bastion::start(Setup::standard());
    // ssh offers a host cert only from an agent: from a file it skips it.
    let agent = b
        .signed_agent(&b.task_ca(), &CertSpec::standard().host_cert())
        .through_ssh_agent();
    assert_cert_refused(&agent, "host certificate");
}

#[test]
fn login_not_among_principals_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().principals(&["db1"]));
    assert_cert_refused(&agent, "principal");
}

#[test]
fn cert_without_principals_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().principals(&[]));
    assert_cert_refused(&agent, "principal");
}

#[test]
fn unknown_critical_option_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard().option("critical:frobnicate@example.com=yes"),
    );
    assert_cert_refused(&agent, "critical option");
}

#[test]
fn wrong_source_address_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard().option("source-address=10.9.9.9/32"),
    );
    assert_cert_refused(&agent, "source address");
}

#[test]
fn matching_source_address_is_accepted() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard().option("source-address=127.0.0.1/32"),
    );

    let out = agent.run("echo hello");

    assert_output(&out, 0, "hello\n");
}

#[test]
fn lifetime_longer_than_the_roles_max_ttl_is_refused() {
    // The standard role's max_ttl is 15m; this cert lives 61 minutes.
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().validity("-1m:+1h"));
    assert_cert_refused(&agent, "max_ttl");
}

#[test]
fn unknown_identity_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().key_id("agent-99"));
    assert_cert_refused(&agent, "identity");
}

#[test]
fn plain_key_without_cert_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.agent_without_cert();

    let out = agent.run("echo hello");

    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    let refused = eventually("an auth.refused event for the plain key", || {
        let refused = refused_json(&b);
        let any = refused.as_array().is_some_and(|events| {
            events.iter().any(|e| {
                e["kind"] == "auth.refused" && e["login"] == TARGET && e["key_id"].is_null()
            })
        });
        if any {
            Ok(refused)
        } else {
            Err(format!("{refused:#}"))
        }
    });
    assert_eq!(
        sessions_json(&b).as_array().map(Vec::len),
        Some(0),
        "{refused:#}"
    );
}
