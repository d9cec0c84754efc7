//! The bastion's side towards the targets: it reaches a target with a
//! per-session upstream certificate (principal = the target's user, key id
//! naming the session and the identity), only if the target presents the
//! pinned host key; when it cannot reach the target, the agent gets one clear
//! `portcullis:` line and the failure is recorded.
mod common;

use common::*;

#[test]
fn target_down_gives_one_clear_line() {
    let mut b = Bastion::start(Setup::standard());
    b.target_mut(TARGET).stop();

    let out = b.granted_agent().run("echo hello");

    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines = out.portcullis_lines();
    assert_eq!(lines.len(), 1, "one `portcullis:` line\n{out:?}");
    assert!(
        lines[0].contains(TARGET),
        "the line names the target\n{out:?}"
    );
    wait_for_event(&b, "upstream.failed", |e| {
        !e["reason"].as_str().unwrap_or_default().is_empty()
    });
}

#[test]
fn target_host_key_mismatch_is_refused() {
    let mut b = Bastion::start(Setup::standard());
    b.target_mut(TARGET).replace_with_new_host_key();

    let out = b.granted_agent().run("echo hello");

    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines = out.portcullis_lines();
    assert_eq!(lines.len(), 1, "one `portcullis:` line\n{out:?}");
    assert!(
        lines[0].to_lowercase().contains("host key"),
        "the line says the host key is wrong\n{out:?}"
    );
    let target = b.target(TARGET);
    assert!(
        target.cert_logins().is_empty(),
        "nothing logged in to the impostor:\n{}",
        target.log()
    );
    wait_for_event(&b, "upstream.failed", |e| {
        e["reason"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("host key")
    });
}

#[test]
fn upstream_cert_principal_is_target_user() {
    let b = Bastion::start(Setup::standard());

    assert_output(&b.granted_agent().run("echo hello"), 0, "hello\n");

    let target = b.target(TARGET);
    let logins = target.cert_logins();
    assert_eq!(
        logins.len(),
        1,
        "one upstream cert login for one session:\n{}",
        target.log()
    );
    let login = &logins[0];
    assert_eq!(
        login.user,
        target.user(),
        "the cert's principal is the target's user: {login:?}"
    );
    assert!(
        login.key_id.contains(AGENT),
        "the upstream key id names the identity: {login:?}"
    );
    let sessions = session_ids(&b);
    assert_eq!(sessions.len(), 1, "one session: {sessions:?}");
    let session = sessions[0];
    assert!(
        names_number(&login.key_id.replace(AGENT, ""), session),
        "the upstream key id names session {session}: {login:?}"
    );
}

/// Whether `text` holds `n` as a whole run of digits.
fn names_number(text: &str, n: i64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|run| run == n.to_string())
}
