//! Revocation that cannot be sidestepped: serial 0 (what `ssh-keygen -s`
//! gives every cert signed without `-z`) names no cert, so single use and
//! revocation go by the cert's fingerprint; revoking an identity also
//! suspends it, so it cannot grant itself a fresh cert, until reinstated.
mod common;

use std::thread;
use std::time::Duration;

use common::*;

fn serial_zero(b: &Bastion) -> Agent<'_> {
    b.signed_agent(&b.task_ca(), &CertSpec::standard().serial(0))
}

#[test]
fn serial_zero_certs_do_not_share_a_single_use_claim() {
    let b = Bastion::start(Setup::standard().with_role(|r| r.single_session(true)));
    let first = serial_zero(&b);
    let second = serial_zero(&b);

    assert_output(&first.run("echo first"), 0, "first\n");

    assert_output(&second.run("echo second"), 0, "second\n");
    assert_cert_refused(&second, "single");
}

#[test]
fn revoke_by_serial_zero_is_refused_and_points_to_fingerprint() {
    let b = Bastion::start(Setup::standard());
    let agent = serial_zero(&b);
    assert_output(&agent.run("echo before"), 0, "before\n");

    let out = b.cli("revoke", &["--serial", "0"]);

    assert!(
        !out.status.success(),
        "revoke --serial 0 succeeded: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--fingerprint"), "{stderr}");
    assert_output(&agent.run("echo after"), 0, "after\n");

    // `portcullis check` warns that a CA hands out serial 0, and passes.
    let check = b.cli_ok("check", &[]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("warning") && said.contains("serial 0") && said.contains("-z"),
        "{said}"
    );
}

#[test]
fn revoke_by_cert_fingerprint_revokes_exactly_that_cert() {
    let b = Bastion::start(Setup::standard());
    let doomed = serial_zero(&b);
    let spared = serial_zero(&b);
    assert_output(&doomed.run("echo once"), 0, "once\n");
    let sessions = sessions_json(&b);
    let fingerprint = sessions[0]["cert_fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("a session records its cert_fingerprint: {sessions:#}"));
    assert!(fingerprint.starts_with("SHA256:"), "{sessions:#}");

    b.cli_ok("revoke", &["--fingerprint", fingerprint]);

    assert_cert_refused(&doomed, "revoked");
    assert_output(&spared.run("echo spared"), 0, "spared\n");
}

#[test]
fn revoke_by_key_fingerprint_revokes_exactly_that_keys_cert() {
    let b = Bastion::start(Setup::standard());
    let doomed = serial_zero(&b);
    let spared = serial_zero(&b);

    b.cli_ok("revoke", &["--fingerprint", &doomed.key.fingerprint()]);

    assert_cert_refused(&doomed, "revoked");
    assert_output(&spared.run("echo spared"), 0, "spared\n");
}

fn with_identity_key() -> (Bastion, IdentityKey) {
    let id = IdentityKey::generate();
    let b = Bastion::start(Setup::standard().identity_key(AGENT, &id.line));
    (b, id)
}

/// The request was refused on the grant login: 126, no cert, one line
/// saying the identity is suspended, and a grant.refused row saying so.
#[track_caller]
fn assert_request_refused_as_suspended(b: &Bastion, id: &IdentityKey) {
    let task = b.new_key();
    let out = id.request(b, &task, "--role ops --ttl 5m");
    assert_eq!(out.code, 126, "{out:?}");
    assert!(out.stdout.is_empty(), "a cert was issued: {out:?}");
    assert!(!task.cert_path().exists());
    assert!(
        out.stderr.starts_with("portcullis: refused:") && out.stderr.contains("suspended"),
        "{out:?}"
    );
    wait_for_refused_event(b, "grant.refused", |e| reason_of(e).contains("suspended"));
}

#[test]
fn revoked_identity_cannot_request_a_new_grant() {
    let (b, id) = with_identity_key();
    assert_eq!(id.request(&b, &b.new_key(), "--role ops --ttl 5m").code, 0);

    b.cli_ok("revoke", &["--identity", AGENT]);

    assert_request_refused_as_suspended(&b, &id);
    wait_for_stored_event(&b, "identity.suspended", |e| e.to_string().contains(AGENT));
}

#[test]
fn revoked_identity_cannot_be_granted_by_the_operator() {
    let b = Bastion::start(Setup::standard());
    b.cli_ok("revoke", &["--identity", AGENT]);
    let key = b.new_key();
    let pubkey = key.public.to_string_lossy().into_owned();

    let out = b.cli(
        "grant",
        &[
            "--identity",
            AGENT,
            "--role",
            ROLE,
            "--ttl",
            "10m",
            "--pubkey",
            &pubkey,
        ],
    );

    assert!(!out.status.success(), "grant succeeded: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("suspended"),
        "{out:?}"
    );
    assert!(!key.cert_path().exists(), "a cert was written");
}

#[test]
fn cert_signed_after_the_identity_was_revoked_is_refused() {
    let b = Bastion::start(Setup::standard());
    b.cli_ok("revoke", &["--identity", AGENT]);
    // Valid from the second after signing: issued after the revocation.
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().validity("+1s:+10m"));
    thread::sleep(Duration::from_millis(1100));

    assert_cert_refused(&agent, "suspended");
}

#[test]
fn reinstated_identity_can_request_again() {
    let (b, id) = with_identity_key();
    b.cli_ok("revoke", &["--identity", AGENT]);
    assert_request_refused_as_suspended(&b, &id);

    b.cli_ok("reinstate", &[AGENT]);

    let task = b.new_key();
    let out = id.request(&b, &task, "--role ops --ttl 5m");
    assert_eq!(out.code, 0, "{out:?}");
    assert_output(&b.agent_with(task).run("echo back"), 0, "back\n");
    wait_for_stored_event(&b, "identity.reinstated", |e| e.to_string().contains(AGENT));
}
