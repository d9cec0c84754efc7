//! Just-in-time grants over plain ssh: an identity key reaches no target;
//! it asks `grant@bastion` for a task cert within a role (narrowing, never
//! widening), waits for an operator when the role says so, and is rate
//! limited.
mod common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn with_identity(setup: Setup) -> (Bastion, IdentityKey) {
    let id = IdentityKey::generate();
    let bastion = Bastion::start(setup.identity_key(AGENT, &id.line));
    (bastion, id)
}

fn refusal_line(out: &SshOutput) -> &str {
    out.stderr.lines().next().unwrap_or("")
}

#[test]
fn identity_key_alone_reaches_no_target() {
    let (b, id) = with_identity(Setup::standard());
    let out = ssh(&b, TARGET, &id.key, None, "echo hello");
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stdout.is_empty());
    let refused = refused_json(&b);
    assert!(
        refused.as_array().unwrap().iter().any(|e| e["reason"]
            .as_str()
            .unwrap_or("")
            .contains("identity keys only log in as \"grant\"")),
        "{refused:#}"
    );
}

#[test]
fn request_then_exec_works() {
    let (b, id) = with_identity(Setup::standard());
    let task = b.new_key();
    let out = id.request(
        &b,
        &task,
        "--role ops --ttl 5m --task T-42 --reason 'check the web tier'",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ssh-ed25519-cert-v01@openssh.com "));
    let ran = b.agent_with(task).run("echo hello");
    assert_output(&ran, 0, "hello\n");
    let sessions = sessions_json(&b);
    assert_eq!(sessions[0]["task"], "T-42", "{sessions:#}");
    let requests: serde_json::Value =
        serde_json::from_slice(&b.cli_ok("requests", &["--all", "--json"]).stdout).unwrap();
    assert_eq!(requests[0]["status"], "issued", "{requests:#}");
    assert_eq!(requests[0]["reason"], "check the web tier");
}

#[test]
fn narrowed_request_cannot_run_what_it_did_not_ask_for() {
    let (b, id) = with_identity(Setup::standard());
    let task = b.new_key();
    let out = id.request(&b, &task, "--role ops --ttl 5m --exec 'echo narrow'");
    assert_eq!(out.code, 0, "{out:?}");
    let agent = b.agent_with(task);
    assert_output(&agent.run("echo narrow"), 0, "narrow\n");
    assert_refused(&agent.run("echo wide"));
}

#[test]
fn request_for_more_than_the_role_is_refused() {
    let (b, id) = with_identity(Setup::standard());
    let cases = [
        ("--role ops --ttl 2h", "max_ttl"),
        ("--role ops --ttl 5m --target db9", "target"),
        ("--role ops --ttl 5m --exec 'rm *'", "not within role"),
        ("--role admin --ttl 5m", "not one this identity holds"),
        ("--role ops --ttl 5m --sudo", "--sudo"),
    ];
    for (args, word) in cases {
        let task = b.new_key();
        let out = id.request(&b, &task, args);
        assert_ne!(out.code, 0, "{args}: {out:?}");
        assert!(out.stdout.is_empty(), "{args}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args}: one line: {out:?}");
        assert!(
            refusal_line(&out).starts_with("portcullis: refused:"),
            "{args}: {out:?}"
        );
        assert!(refusal_line(&out).contains(word), "{args}: {out:?}");
    }
}

#[test]
fn task_key_equal_to_the_identity_key_is_refused() {
    let (b, id) = with_identity(Setup::standard());
    let public = fs::read(&id.key.public).unwrap();
    let out = id.grant_command(&b, "request --role ops --ttl 5m", Some(&public));
    assert_ne!(out.code, 0);
    assert!(refusal_line(&out).contains("identity key"), "{out:?}");
}

#[test]
fn whoami_names_the_identity_and_its_ceilings() {
    let (b, id) = with_identity(Setup::standard());
    let out = id.grant_command(&b, "whoami", None);
    assert_eq!(out.code, 0, "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("identity agent-7"), "{text}");
    assert!(
        text.contains("role ops") && text.contains("max_ttl 15m"),
        "{text}"
    );
}

fn manual_setup() -> Setup {
    Setup::standard().role(
        ROLE,
        Role::on(&[TARGET]).exec(STANDARD_EXEC).approval("manual"),
    )
}

fn pending_request_id(b: &Bastion) -> i64 {
    eventually("a pending request", || {
        let out = b.cli_ok("requests", &["--json"]);
        let list: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        list[0]["id"]
            .as_i64()
            .ok_or_else(|| format!("none yet: {list}"))
    })
}

#[test]
fn manual_approval_from_a_second_process_delivers_the_cert() {
    let (b, id) = with_identity(manual_setup());
    let task = b.new_key();
    let out = thread::scope(|s| {
        let waiting = s.spawn(|| id.request(&b, &task, "--role ops --ttl 5m --wait 30"));
        let request = pending_request_id(&b);
        b.cli_ok("approve", &[&request.to_string()]);
        waiting.join().unwrap()
    });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("awaits approval"), "{out:?}");
    assert_output(&b.agent_with(task).run("echo approved"), 0, "approved\n");
}

#[test]
fn denied_request_says_so_and_issues_nothing() {
    let (b, id) = with_identity(manual_setup());
    let task = b.new_key();
    let out = thread::scope(|s| {
        let waiting = s.spawn(|| id.request(&b, &task, "--role ops --ttl 5m --wait 30"));
        let request = pending_request_id(&b);
        b.cli_ok("deny", &[&request.to_string(), "--reason", "not today"]);
        waiting.join().unwrap()
    });
    assert_ne!(out.code, 0);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("denied") && out.stderr.contains("not today"),
        "{out:?}"
    );
}

#[test]
fn a_request_still_pending_when_the_wait_ends_can_be_fetched_later() {
    let (b, id) = with_identity(manual_setup());
    let task = b.new_key();
    let out = id.request(&b, &task, "--role ops --ttl 5m --wait 1");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("still awaits approval"), "{out:?}");
    let request = pending_request_id(&b);
    b.cli_ok("approve", &[&request.to_string()]);
    let fetched = id.grant_command(&b, &format!("status {request}"), None);
    assert_eq!(fetched.code, 0, "{fetched:?}");
    fs::write(task.cert_path(), &fetched.stdout).unwrap();
    assert_output(&b.agent_with(task).run("echo later"), 0, "later\n");
}

#[test]
fn flooding_requests_are_refused_and_others_are_unaffected() {
    let (b, id) = with_identity(Setup::standard());
    let mut refused = 0;
    for _ in 0..8 {
        let task = b.new_key();
        let out = id.request(&b, &task, "--role ops --ttl 5m");
        if out.code != 0 {
            assert!(out.stderr.contains("too many requests"), "{out:?}");
            refused += 1;
        }
    }
    assert!(refused >= 3, "only {refused} of 8 refused");
    let started = Instant::now();
    assert_output(&b.granted_agent().run("echo still-here"), 0, "still-here\n");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// `ssh-keygen -L` of a cert: its critical options and extensions.
fn cert_listing(cert: &std::path::Path) -> String {
    let out = run_ok(
        std::process::Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(cert),
        "ssh-keygen -L",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn both_issuing_paths_give_the_same_cert_and_the_same_record() {
    // A listen-only role: the request flow once forgot permit-port-forwarding
    // for it, and wrote a different audit event than `portcullis grant`.
    let remote = free_port();
    let listen = format!("127.0.0.1:{remote}");
    let (b, id) = with_identity(Setup::standard().with_role(|r| r.listen(&[&listen])));
    let requested = b.new_key();
    let out = id.request(&b, &requested, "--role ops --ttl 5m --task T-1");
    assert_eq!(out.code, 0, "{out:?}");
    let granted = b.new_key();
    grant(&b, AGENT, ROLE, "5m", &granted, Some("T-1"));

    for key in [&requested, &granted] {
        let listing = cert_listing(&key.cert_path());
        // ssh-keygen shows options it does not know by name only.
        for expected in [
            "role@portcullis",
            "exec@portcullis",
            "open@portcullis",
            "listen@portcullis",
            "sftp@portcullis",
            "permit-port-forwarding",
        ] {
            assert!(listing.contains(expected), "{expected} missing:\n{listing}");
        }
    }
    let issued = stored_events(&b, "grant.issued");
    assert_eq!(issued.len(), 2, "{issued:#?}");
    assert!(issued
        .iter()
        .all(|e| e["role"] == ROLE && e["identity"] == AGENT));

    // And the listener works with the requested cert.
    let agent = b.agent_with(requested);
    let spec = format!("{listen}:127.0.0.1:9");
    assert!(try_remote_forward(&agent, &spec, remote).bound);
    wait_for_event(&b, "listen.opened", |e| e["address"] == listen.as_str());
}
