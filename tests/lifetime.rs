//! Session-bound access: a session ends when its cert's valid_before
//! passes, when its grant is revoked (from another process, within a
//! second), or, for single-session grants, when its first session ends.
mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn wait_for_exec(b: &Bastion) -> i64 {
    eventually("the exec to be recorded", || {
        let ids = session_ids(b);
        let id = *ids.first().ok_or("no session yet")?;
        let show = show_json(b, id);
        if events_of_kind(&show, "exec.allowed").is_empty() {
            return Err("no exec yet".into());
        }
        Ok(id)
    })
}

fn end_reason(b: &Bastion, id: i64) -> String {
    eventually("the session to end", || {
        let show = show_json(b, id);
        show["session"]["end_reason"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "still open".to_string())
    })
}

#[test]
fn expiry_closes_a_running_session_at_valid_before() {
    let b = Bastion::start(Setup::standard().allow(&["sleep *"]));
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().validity("-1m:+6s"));
    let started = Instant::now();
    let out = agent.run("sleep 600");
    let took = started.elapsed();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        took < Duration::from_secs(12),
        "the session outlived its cert: {took:?}"
    );
    assert!(out.stderr.contains("grant expired"), "{out:?}");
    let id = session_ids(&b)[0];
    assert_eq!(end_reason(&b, id), "the grant expired");
}

#[test]
fn revoke_closes_a_running_session_within_a_second() {
    let b = Bastion::start(Setup::standard().allow(&["sleep *"]));
    let agent = b.granted_agent();
    thread::scope(|s| {
        let running = run_in_background(s, &agent, "sleep 600");
        let id = wait_for_exec(&b);
        let serial = sessions_json(&b)[0]["cert_serial"].as_u64().unwrap();
        let revoked_at = Instant::now();
        b.cli_ok(
            "revoke",
            &["--serial", &serial.to_string(), "--reason", "task done"],
        );
        let (out, ended_at) = running.join().unwrap();
        let took = ended_at.duration_since(revoked_at);
        eprintln!("revocation to session end: {took:?}");
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("revoked"), "{out:?}");
        assert!(
            took < Duration::from_millis(1500),
            "revocation took {took:?}"
        );
        assert_eq!(end_reason(&b, id), "the grant was revoked");
    });
}

#[test]
fn revoked_cert_is_refused_at_connect() {
    let b = Bastion::start(Setup::standard());
    let agent = b.granted_agent();
    assert_output(&agent.run("echo once"), 0, "once\n");
    b.cli_ok("revoke", &["--identity", AGENT]);
    assert_cert_refused(&agent, "revoked");
}

#[test]
fn revoking_a_task_spares_other_tasks() {
    let b = Bastion::start(Setup::standard());
    let doomed = b.granted_agent(); // task T-1
    let key = b.new_key();
    let cert = grant(&b, AGENT, ROLE, "10m", &key, Some("T-2"));
    b.cli_ok("revoke", &["--task", "T-1"]);
    assert_cert_refused(&doomed, "revoked");
    let spared = Agent {
        bastion: &b,
        key,
        cert: Some(cert),
        login: TARGET.to_string(),
        via_ssh_agent: false,
    };
    assert_output(&spared.run("echo spared"), 0, "spared\n");
}

fn single_session_setup() -> Setup {
    Setup::standard().role(
        ROLE,
        Role::on(&[TARGET])
            .exec(STANDARD_EXEC)
            .exec(&["sleep *"])
            .single_session(true),
    )
}

#[test]
fn single_session_cert_is_refused_on_second_use() {
    let b = Bastion::start(single_session_setup());
    let agent = b.granted_agent();
    assert_output(&agent.run("echo first"), 0, "first\n");
    assert_cert_refused(&agent, "single-session");
}

#[test]
fn two_simultaneous_first_uses_let_exactly_one_in() {
    let b = Bastion::start(single_session_setup());
    let agent = b.granted_agent();
    let outcomes = thread::scope(|s| {
        let one = run_in_background(s, &agent, "sleep 1");
        let two = run_in_background(s, &agent, "sleep 1");
        [one.join().unwrap().0, two.join().unwrap().0]
    });
    let admitted = outcomes.iter().filter(|o| o.code == 0).count();
    let refused = outcomes.iter().filter(|o| o.code == 255).count();
    assert_eq!((admitted, refused), (1, 1), "{outcomes:?}");
}
