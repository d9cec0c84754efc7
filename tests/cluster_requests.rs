//! The request book past one machine: grant requests, held commands and
//! their rate limits kept in the cluster's PostgreSQL, so a request made
//! through one replica is decided from another and honoured wherever the
//! agent's next connection lands (HAProxy, PROXY v2, real ssh clients).
//!
//! Abuses tried: one approval run through both replicas at once (it runs
//! once); another cert's retry of the approved command on the other
//! replica (held on its own); a second decision of a decided request from
//! the other replica (refused); a flood spread over replicas to buy more
//! tokens (refused past the one shared burst); the database lost while a
//! command would be held or a grant is asked for (refused with one line,
//! nothing held, run or issued).
mod common;

use common::*;
use serde_json::Value;

const HELD: &str = "printf held-%s 42";

fn asking() -> Setup {
    Setup::standard()
        .role(
            ROLE,
            Role::on(&[TARGET]).exec(&["echo *"]).ask(&["printf ..."]),
        )
        .limit("held_command_wait", "\"1s\"")
}

/// `requests --json` from `b` (`--all` when `all`): the cluster's queue.
fn queue(b: &Bastion, all: bool) -> Vec<Value> {
    let args: &[&str] = if all {
        &["--all", "--json"]
    } else {
        &["--json"]
    };
    json_of(b, "requests", args)
        .as_array()
        .cloned()
        .expect("an array")
}

fn only_id(listed: &[Value]) -> String {
    assert_eq!(listed.len(), 1, "{listed:#?}");
    listed[0]["id"].as_i64().expect("an id").to_string()
}

fn run_via(port: u16, agent: &Agent<'_>, command: &str) -> std::process::Output {
    let cert = agent.cert.as_ref().expect("a cert");
    ssh_via(port, &agent.key.private, cert, command)
}

#[test]
fn a_command_held_through_one_replica_is_approved_from_the_other_and_runs_once_where_the_retry_lands(
) {
    let c = Rig::start(asking());
    let agent = c.a.granted_agent();
    let (to_a, to_b) = (c.lb.to[0], c.lb.to[1]);
    let held = run_via(to_a, &agent, HELD);
    assert_eq!(held.status.code(), Some(75), "{held:?}");

    // b lists a's hold and decides it; a second decision is refused.
    let pending = queue(&c.b, false);
    assert_eq!(pending[0]["kind"], "command", "{pending:#?}");
    assert_eq!(pending[0]["replica"], "a", "{pending:#?}");
    let id = only_id(&pending);
    c.b.cli_ok("approve", &[&id]);
    let again = c.a.cli("deny", &[&id]);
    assert!(!again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("approved"),
        "{again:?}"
    );

    // The retry lands on b: it runs there, once.
    let ran = run_via(to_b, &agent, HELD);
    assert_eq!(
        (ran.status.code(), String::from_utf8_lossy(&ran.stdout)),
        (Some(0), "held-42".into()),
        "{ran:?}\n{}",
        c.b.log()
    );
    let third = run_via(to_a, &agent, HELD);
    assert_eq!(third.status.code(), Some(75), "a new hold: {third:?}");
    let all = queue(&c.a, true);
    let statuses: Vec<&str> = all.iter().filter_map(|r| r["status"].as_str()).collect();
    assert_eq!(statuses, ["ran", "pending"], "{all:#?}");

    // b's transcript names the approval; the cluster chain holds the steps.
    let on_b = c.b.cli_ok("events", &["--json"]);
    let on_b = String::from_utf8_lossy(&on_b.stdout);
    assert!(
        on_b.lines()
            .any(|l| l.contains("\"exec.allowed\"")
                && l.contains(&format!("\"approved_request\":{id}"))),
        "{on_b}"
    );
    let verified = c.b.cli_ok("verify", &[]);
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(
        said.contains("cluster chain:") && said.contains("intact"),
        "{said}"
    );
    // Any replica reads the whole story from the control chain.
    let chain = c.a.cli_ok("events", &["--cluster", "--json"]);
    let chain: Vec<Value> = String::from_utf8_lossy(&chain.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let step = |kind: &str| {
        chain
            .iter()
            .find(|e| e["kind"] == kind && e["request_id"].as_i64() == id.parse().ok())
            .unwrap_or_else(|| panic!("{kind} of request {id}: {chain:#?}"))
    };
    assert_eq!(step("command.held")["source"], "a");
    assert_eq!(step("command.held")["command"], HELD);
    let approved = step("command.approved");
    assert_eq!(
        (&approved["source"], &approved["held_replica"]),
        (&Value::from("b"), &Value::from("a")),
        "{approved:#}"
    );
    let text = c.b.cli_ok("events", &["--cluster"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("  b  command.approved  "),
        "{text:?}"
    );
}

#[test]
fn one_approval_run_through_both_replicas_at_once_runs_once() {
    let c = Rig::start(asking().limit("held_command_burst", "100"));
    let agent = c.a.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    for trial in 0..5 {
        let command = format!("printf race-%s {trial}");
        let held = run_via(c.lb.to[0], &agent, &command);
        assert_eq!(held.status.code(), Some(75), "{held:?}");
        let id = only_id(&queue(&c.a, false));
        c.a.cli_ok("approve", &[&id]);
        let runs: Vec<_> =
            c.lb.to
                .iter()
                .map(|port| {
                    ssh_via_command(*port, &agent.key.private, &cert, &command)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .expect("run ssh")
                })
                .collect();
        let outs: Vec<_> = runs
            .into_iter()
            .map(|child| child.wait_with_output().expect("ssh output"))
            .collect();
        let ran = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(ran, 1, "trial {trial}: {outs:#?}");
        // Whatever the loser held anew is left to expire; clear the queue.
        for pending in queue(&c.a, false) {
            let id = pending["id"].as_i64().expect("an id").to_string();
            c.a.cli_ok("deny", &[&id]);
        }
    }
}

#[test]
fn an_approval_does_not_follow_another_cert_to_the_other_replica() {
    let c = Rig::start(asking());
    let holder = c.a.granted_agent();
    assert_eq!(run_via(c.lb.to[0], &holder, HELD).status.code(), Some(75));
    let id = only_id(&queue(&c.a, false));
    c.b.cli_ok("approve", &[&id]);
    let other = c.a.granted_agent();
    let out = run_via(c.lb.to[1], &other, HELD);
    assert_eq!(out.status.code(), Some(75), "held on its own: {out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let ran = run_via(c.lb.to[1], &holder, HELD);
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "held-42", "{ran:?}");
}

#[test]
fn held_commands_spread_over_replicas_share_one_rate_limit() {
    let c = Rig::start(
        asking()
            .limit("held_command_burst", "2")
            .limit("held_command_every", "\"1h\""),
    );
    let agent = c.a.granted_agent();
    for (i, port) in c.lb.to.iter().enumerate() {
        let out = run_via(*port, &agent, &format!("printf flood-%s {i}"));
        assert_eq!(out.status.code(), Some(75), "{out:?}");
    }
    for port in &c.lb.to {
        let out = run_via(*port, &agent, "printf flood-%s 9");
        assert_ne!(out.status.code(), Some(75), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("too many held commands"),
            "{out:?}"
        );
    }
    assert_eq!(queue(&c.b, false).len(), 2);
}

#[test]
fn a_grant_request_is_approved_from_the_other_replica_and_its_cert_fetched_from_either() {
    let identity = IdentityKey::generate();
    let c = Rig::start(
        Setup::standard()
            .role(
                ROLE,
                Role::on(&[TARGET]).exec(&["echo *"]).approval("manual"),
            )
            .identity_key(AGENT, &identity.line),
    );
    let task = c.a.new_key();
    let public = std::fs::read(&task.public).expect("read the task key");
    let asked = grant_via(
        c.lb.to[0],
        &identity,
        "request --role ops --ttl 5m --wait 1",
        &public,
    );
    assert_eq!(asked.status.code(), Some(2), "pending: {asked:?}");
    let pending = queue(&c.b, false);
    assert_eq!(pending[0]["kind"], "grant", "{pending:#?}");
    let id = only_id(&pending);
    c.b.cli_ok("approve", &[&id]);

    // The signing replica issues it; both hand the same cert out again.
    let status = format!("status {id}");
    let issued = grant_via(c.lb.to[0], &identity, &status, b"");
    assert_eq!(issued.status.code(), Some(0), "{issued:?}");
    let again = grant_via(c.lb.to[1], &identity, &status, b"");
    assert_eq!(
        (again.status.code(), &again.stdout),
        (Some(0), &issued.stdout),
        "{again:?}"
    );
    std::fs::write(task.cert_path(), &issued.stdout).expect("write the cert");
    let out = ssh_via(
        c.lb.to[1],
        &task.private,
        &task.cert_path(),
        "echo approved-on-b",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "approved-on-b\n",
        "{out:?}"
    );
    let all = queue(&c.a, true);
    assert_eq!(all[0]["status"], "issued", "{all:#?}");
}

/// One agent connection through a frontend, kept open (`ssh -M`): what a
/// live session runs further commands on.
struct Master {
    child: std::process::Child,
    control: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Master {
    fn open(port: u16, agent: &Agent<'_>) -> Master {
        let dir = tempfile::tempdir().expect("a temp dir");
        let control = dir.path().join("ctl");
        let cert = agent.cert.as_ref().expect("a cert");
        let child = ssh_to_frontend(port, &agent.key.private)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .args(["-N", "-M", "-S"])
            .arg(&control)
            .arg(format!("{TARGET}@::1"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run ssh -M");
        eventually("the master connection", || {
            control
                .exists()
                .then_some(())
                .ok_or_else(|| "no control socket yet".to_owned())
        });
        Master {
            child,
            control,
            port,
            _dir: dir,
        }
    }

    fn exec(&self, command: &str) -> std::process::Output {
        std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "ControlMaster=no", "-S"])
            .arg(&self.control)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{TARGET}@::1"))
            .arg(command)
            .output()
            .expect("run ssh -S")
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn with_the_database_lost_a_command_that_would_be_held_or_a_grant_request_is_refused() {
    let identity = IdentityKey::generate();
    let c = Rig::start(asking().identity_key(AGENT, &identity.line));
    let agent = c.a.granted_agent();
    let live = Master::open(c.lb.to[0], &agent);
    let task = c.a.new_key();
    let public = std::fs::read(&task.public).expect("read the task key");
    c.pg.halt();
    let asked = grant_via(
        c.lb.to[0],
        &identity,
        "request --role ops --ttl 5m",
        &public,
    );
    assert_ne!(asked.status.code(), Some(0), "{asked:?}");
    assert!(asked.stdout.is_empty(), "no cert: {asked:?}");
    assert!(
        String::from_utf8_lossy(&asked.stderr)
            .contains("the cluster database cannot be reached, so no request is taken"),
        "{asked:?}"
    );
    let refusals: Vec<Value> = all_events(&c.a)
        .into_iter()
        .filter(|e| e["kind"] == "grant.refused")
        .collect();
    assert!(
        refusals.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be reached"))),
        "on record: {refusals:#?}"
    );
    // In scope, the live session goes on; a hold needs the shared book.
    let during = live.exec("echo during");
    assert_eq!(
        String::from_utf8_lossy(&during.stdout),
        "during\n",
        "{during:?}"
    );
    let refused = live.exec(HELD);
    assert_ne!(refused.status.code(), Some(0), "{refused:?}");
    assert_ne!(refused.status.code(), Some(75), "not held: {refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("the cluster database cannot be reached, so the held command does not run"),
        "{refused:?}"
    );
    c.pg.resume();
    eventually("the command is held once the database is back", || {
        let out = live.exec(HELD);
        (out.status.code() == Some(75))
            .then_some(())
            .ok_or_else(|| format!("{out:?}"))
    });
    assert_eq!(queue(&c.b, false).len(), 1);
}

#[test]
fn the_control_chain_needs_a_cluster() {
    let b = Bastion::start(Setup::standard());
    let out = b.cli("events", &["--cluster"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it needs [cluster]"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty());
}
