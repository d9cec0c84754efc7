//! Held commands: a command outside the grant that a role's `ask` pattern
//! allows waits for an operator instead of failing, over plain `ssh`.
mod common;

use std::thread;

use serde_json::Value;

use common::*;

/// A command the role asks for (`printf ...`) but does not allow.
const HELD: &str = "printf held-%s 42";

fn asking() -> Setup {
    Setup::standard().role(
        ROLE,
        Role::on(&[TARGET]).exec(&["echo *"]).ask(&["printf ..."]),
    )
}

/// `requests --json` (or `--all`): the held commands among the requests.
fn holds(b: &Bastion, all: bool) -> Vec<Value> {
    let args: &[&str] = if all {
        &["--all", "--json"]
    } else {
        &["--json"]
    };
    let listed = json_of(b, "requests", args);
    listed
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|r| r["kind"] == "command")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for a pending held command; returns it.
fn pending_hold(b: &Bastion) -> Value {
    eventually("a pending held command", || {
        holds(b, false)
            .into_iter()
            .next()
            .ok_or_else(|| "none yet".to_string())
    })
}

fn id_of(hold: &Value) -> String {
    hold["id"].as_i64().expect("a request id").to_string()
}

fn approved_execs(b: &Bastion, session: i64, request: &str) -> usize {
    events_of_kind(&show_json(b, session), "exec.allowed")
        .iter()
        .filter(|e| {
            e["approved_request"]
                .as_i64()
                .map(|n| n.to_string())
                .as_deref()
                == Some(request)
        })
        .count()
}

#[test]
fn a_held_command_approved_while_ssh_waits_runs_and_its_output_reaches_the_agent() {
    let b = Bastion::start(asking());
    let agent = b.granted_agent();
    thread::scope(|s| {
        let waiting = run_in_background(s, &agent, HELD);
        let hold = pending_hold(&b);
        assert_eq!(hold["command"], HELD);
        assert_eq!(hold["identity"], AGENT);
        assert_eq!(hold["target"], TARGET);
        assert_eq!(hold["task"], "T-1");
        let text = String::from_utf8_lossy(&b.cli_ok("requests", &[]).stdout).into_owned();
        assert!(text.contains("command") && text.contains(HELD), "{text}");

        let id = id_of(&hold);
        b.cli_ok("approve", &[&id]);
        let (out, _) = waiting.join().expect("the ssh thread");
        assert_output(&out, 0, "held-42");
        assert!(
            out.stderr.contains(&format!(
                "pending: command held for approval as request {id}"
            )),
            "{}",
            out.stderr
        );

        let session = hold["session"].as_i64().expect("the session");
        let show = show_json(&b, session);
        let held = events_of_kind(&show, "command.held");
        assert_eq!(held.len(), 1, "{show}");
        assert_eq!(held[0]["command"], HELD);
        let approved = events_of_kind(&show, "command.approved");
        assert_eq!(approved.len(), 1, "{show}");
        let allowed = events_of_kind(&show, "exec.allowed");
        assert_eq!(allowed.len(), 1, "{show}");
        assert_eq!(allowed[0]["command"], HELD);
        assert_eq!(allowed[0]["approved_request"].to_string(), id);
        assert_eq!(allowed[0]["approved_by"], approved[0]["by"]);
        let text =
            String::from_utf8_lossy(&b.cli_ok("show", &[&session.to_string()]).stdout).into_owned();
        assert!(
            text.contains("command.held") && text.contains("command.approved"),
            "{text}"
        );
        let export = json_of(&b, "export", &[&session.to_string(), "--format", "json"]);
        let exported = export.to_string();
        assert!(
            exported.contains("command.held") && exported.contains("command.approved"),
            "{exported}"
        );
    });
}

#[test]
fn a_denied_held_command_exits_126_with_the_reason() {
    let b = Bastion::start(asking());
    let agent = b.granted_agent();
    thread::scope(|s| {
        let waiting = run_in_background(s, &agent, HELD);
        let id = id_of(&pending_hold(&b));
        b.cli_ok("deny", &[&id, "--reason", "not during the freeze"]);
        let (out, _) = waiting.join().expect("the ssh thread");
        assert_eq!(out.code, 126, "{}", out.stderr);
        assert!(out.stdout.is_empty());
        assert!(
            out.stderr
                .contains(&format!("denied: request {id} was denied by"))
                && out.stderr.contains("not during the freeze"),
            "{}",
            out.stderr
        );
    });
    let sessions = session_ids(&b);
    let show = show_json(&b, sessions[0]);
    assert_eq!(events_of_kind(&show, "command.denied").len(), 1, "{show}");
    assert!(events_of_kind(&show, "exec.allowed").is_empty(), "{show}");
    // The same command again: still denied, at once, without a new request.
    let again = agent.run(HELD);
    assert_eq!(again.code, 126, "{}", again.stderr);
    assert_eq!(holds(&b, true).len(), 1);
}

#[test]
fn a_timeout_exits_75_and_the_same_command_runs_on_retry_once_approved() {
    let b = Bastion::start(asking().limit("held_command_wait", "\"1s\""));
    let agent = b.granted_agent();
    let first = agent.run(HELD);
    assert_eq!(first.code, 75, "{}", first.stderr);
    let hold = pending_hold(&b);
    let id = id_of(&hold);
    assert!(
        first
            .stderr
            .contains(&format!("request {id} still awaits approval")),
        "{}",
        first.stderr
    );

    b.cli_ok("approve", &[&id]);
    // One byte differs: not covered by the approval, held on its own.
    let other = agent.run("printf held-%s 43");
    assert_eq!(other.code, 75, "{}", other.stderr);
    assert!(
        !other.stderr.contains(&format!("request {id} ")),
        "{}",
        other.stderr
    );
    assert!(other.stdout.is_empty());

    // The retry of the approved command runs without asking again.
    let retry = agent.run(HELD);
    assert_output(&retry, 0, "held-42");
    assert!(!retry.stderr.contains("pending"), "{}", retry.stderr);
    let all = holds(&b, true);
    assert_eq!(
        all.len(),
        2,
        "the first and the one-byte-different command: {all:?}"
    );
    let ran: Vec<&Value> = all.iter().filter(|h| h["status"] == "ran").collect();
    assert_eq!(ran.len(), 1, "{all:?}");
    assert_eq!(ran[0]["id"].to_string(), id);

    // It ran once: a third run is a new request.
    let third = agent.run(HELD);
    assert_eq!(third.code, 75, "{}", third.stderr);
    assert_eq!(holds(&b, true).len(), 3);
    let total: usize = session_ids(&b)
        .into_iter()
        .map(|session| approved_execs(&b, session, &id))
        .sum();
    assert_eq!(total, 1);
}

#[test]
fn revocation_while_a_command_is_held_ends_it() {
    let b = Bastion::start(asking());
    let agent = b.granted_agent();
    thread::scope(|s| {
        let waiting = run_in_background(s, &agent, HELD);
        let hold = pending_hold(&b);
        b.cli_ok("revoke", &["--identity", AGENT]);
        let (out, _) = waiting.join().expect("the ssh thread");
        assert_ne!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.is_empty());
        // Approving it now runs nothing: the session is gone.
        let _ = b.cli("approve", &[&id_of(&hold)]);
        let session = hold["session"].as_i64().expect("the session");
        let show = eventually("the session to end", || {
            let show = show_json(&b, session);
            match show["session"]["end_reason"].is_string() {
                true => Ok(show),
                false => Err("still open".into()),
            }
        });
        assert!(events_of_kind(&show, "exec.allowed").is_empty(), "{show}");
    });
}

#[test]
fn two_operators_approving_at_once_run_it_once() {
    let b = Bastion::start(asking());
    let agent = b.granted_agent();
    thread::scope(|s| {
        let waiting = run_in_background(s, &agent, HELD);
        let hold = pending_hold(&b);
        let id = id_of(&hold);
        let approvals: Vec<_> = (0..2)
            .map(|_| {
                let (b, id) = (&b, id.clone());
                s.spawn(move || b.cli("approve", &[&id]).status.success())
            })
            .collect();
        let succeeded = approvals
            .into_iter()
            .map(|a| a.join().unwrap_or(false))
            .filter(|ok| *ok)
            .count();
        assert_eq!(succeeded, 1, "exactly one approval takes");
        let (out, _) = waiting.join().expect("the ssh thread");
        assert_output(&out, 0, "held-42");
        let session = hold["session"].as_i64().expect("the session");
        assert_eq!(approved_execs(&b, session, &id), 1);
        assert_eq!(
            events_of_kind(&show_json(&b, session), "command.approved").len(),
            1
        );
    });
}

#[test]
fn only_ask_patterns_hold_and_shell_tricks_are_refused_outright() {
    let b = Bastion::start(asking());
    let agent = b.granted_agent();
    assert_command_refused(&agent, "rm -rf /");
    // An asked prefix does not carry a second command past the check.
    assert_command_refused(&agent, "printf x; rm -rf /");
    assert_command_refused(&agent, "printf $(id)");
    assert!(holds(&b, true).is_empty());
    // A command in scope still runs at once.
    assert_output(&agent.run("echo in-scope"), 0, "in-scope\n");
}

#[test]
fn held_commands_expire_and_say_so() {
    let b = Bastion::start(
        asking()
            .limit("held_command_wait", "\"1s\"")
            .limit("request_expiry", "\"2s\""),
    );
    let agent = b.granted_agent();
    assert_eq!(agent.run(HELD).code, 75);
    let id = id_of(&pending_hold(&b));
    eventually("the hold to expire", || {
        let all = holds(&b, true);
        match all.first().map(|h| h["status"].clone()) {
            Some(status) if status == "expired" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(holds(&b, false).is_empty(), "expired ones are not pending");
    let approve = b.cli("approve", &[&id]);
    assert!(!approve.status.success());
    assert!(
        String::from_utf8_lossy(&approve.stderr).contains("expired"),
        "{approve:?}"
    );
    // The session that held it has ended: the event stands alone and
    // names it.
    let events = String::from_utf8_lossy(&b.cli_ok("events", &["--json"]).stdout).into_owned();
    let expired: Vec<Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "command.expired")
        .collect();
    assert_eq!(expired.len(), 1, "{events}");
    assert_eq!(expired[0]["request_id"].to_string(), id);
    assert_eq!(expired[0]["held_session"], session_ids(&b)[0]);
    // The same command after expiry is a new request.
    assert_eq!(agent.run(HELD).code, 75);
    assert_eq!(holds(&b, true).len(), 2);
}

#[test]
fn held_commands_are_rate_limited_per_identity() {
    let b = Bastion::start(
        asking()
            .limit("held_command_wait", "\"1s\"")
            .limit("held_command_burst", "1")
            .limit("held_command_every", "\"1h\""),
    );
    let agent = b.granted_agent();
    assert_eq!(agent.run(HELD).code, 75);
    let flooded = agent.run("printf other");
    assert_eq!(flooded.code, 126, "{}", flooded.stderr);
    assert!(
        flooded.stderr.contains("too many held commands"),
        "{}",
        flooded.stderr
    );
    assert_eq!(holds(&b, true).len(), 1);
    // Retrying the held one is no new request: not limited.
    assert_eq!(agent.run(HELD).code, 75);
}

#[test]
fn a_pending_grant_request_expires_and_says_so() {
    let identity = IdentityKey::generate();
    let b = Bastion::start(
        Setup::standard()
            .role(
                ROLE,
                Role::on(&[TARGET]).exec(&["echo *"]).approval("manual"),
            )
            .identity_key(AGENT, &identity.line)
            .limit("request_expiry", "\"2s\""),
    );
    let task = b.new_key();
    let out = identity.request(&b, &task, "--role ops --ttl 5m --wait 1");
    assert_eq!(out.code, 2, "pending: {out:?}");
    let listed = json_of(&b, "requests", &["--json"]);
    let id = listed[0]["id"]
        .as_i64()
        .expect("the pending request")
        .to_string();
    assert_eq!(listed[0]["kind"], "grant");
    let expired = eventually("the request to expire", || {
        let all = json_of(&b, "requests", &["--all", "--json"]);
        match all[0]["status"] == "expired" {
            true => Ok(all),
            false => Err(all.to_string()),
        }
    });
    assert_eq!(expired[0]["id"].to_string(), id);
    assert_eq!(
        json_of(&b, "requests", &["--json"]),
        Value::Array(Vec::new())
    );
    let approve = b.cli("approve", &[&id]);
    assert!(!approve.status.success());
    assert!(
        String::from_utf8_lossy(&approve.stderr).contains("expired"),
        "{approve:?}"
    );
    let status = identity.grant_command(&b, &format!("status {id}"), None);
    assert_ne!(status.code, 0);
    assert!(status.stderr.contains("expired"), "{status:?}");
    let events = String::from_utf8_lossy(&b.cli_ok("events", &["--json"]).stdout).into_owned();
    assert!(
        events.lines().any(|l| l.contains("\"grant.expired\"") && l.contains(&format!("\"request_id\":{id}"))),
        "{events}"
    );
}

/// An agent of the standard identity with a cert of `role` for `ttl`.
fn agent_of<'b>(b: &'b Bastion, role: &str, ttl: &str) -> Agent<'b> {
    let key = b.new_key();
    let cert = grant(b, AGENT, role, ttl, &key, Some("T-2"));
    Agent {
        bastion: b,
        key,
        cert: Some(cert),
        login: TARGET.to_string(),
        via_ssh_agent: false,
    }
}

#[test]
fn an_approval_is_bound_to_the_cert_that_held_the_command() {
    let b = Bastion::start(asking().limit("held_command_wait", "\"1s\""));
    let holder = b.granted_agent();
    assert_eq!(holder.run(HELD).code, 75);
    let id = id_of(&pending_hold(&b));
    b.cli_ok("approve", &[&id]);
    // Another cert of the same identity and role: its own request.
    let other = b.granted_agent();
    let out = other.run(HELD);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(
        !out.stderr.contains(&format!("request {id} ")),
        "{}",
        out.stderr
    );
    // The holder's retry runs it.
    assert_output(&holder.run(HELD), 0, "held-42");
}

#[test]
fn a_cert_for_a_role_without_ask_cannot_use_another_roles_ask() {
    let b = Bastion::start(
        asking()
            .role("plain", Role::on(&[TARGET]).exec(&["echo *"]))
            .identity(AGENT, &[ROLE, "plain"]),
    );
    let plain = agent_of(&b, "plain", "10m");
    let out = assert_command_refused(&plain, HELD);
    assert!(!out.stderr.contains("pending"), "{}", out.stderr);
    assert!(holds(&b, true).is_empty());
}

#[test]
fn a_hold_ends_with_its_cert() {
    let b = Bastion::start(asking().limit("held_command_wait", "\"1s\""));
    let agent = agent_of(&b, ROLE, "4s");
    assert_eq!(agent.run(HELD).code, 75);
    let hold = pending_hold(&b);
    assert!(
        hold["expires_at_us"].as_i64()
            <= Some(hold["created_at_us"].as_i64().unwrap_or(0) + 4_000_000),
        "a hold expires with its cert: {hold}"
    );
    eventually("the hold to expire with the cert", || {
        match holds(&b, true).first().map(|h| h["status"] == "expired") {
            Some(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(!b.cli("approve", &[&id_of(&hold)]).status.success());
}
