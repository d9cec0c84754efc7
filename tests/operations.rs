//! Operating the server: reloading the policy under live sessions,
//! stopping gracefully, and following the events, as an operator (or
//! systemd, or a SIEM agent) does it.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use common::*;

fn wait_for_execs(b: &Bastion, n: usize) -> Vec<i64> {
    eventually(&format!("{n} sessions running a command"), || {
        let ids = session_ids(b);
        let running: Vec<i64> = ids
            .into_iter()
            .filter(|id| !events_of_kind(&show_json(b, *id), "exec.allowed").is_empty())
            .collect();
        if running.len() < n {
            return Err(format!("{running:?}"));
        }
        Ok(running)
    })
}

fn end_reason(b: &Bastion, id: i64) -> Option<String> {
    show_json(b, id)["session"]["end_reason"]
        .as_str()
        .map(str::to_string)
}

fn ended(b: &Bastion, id: i64) -> String {
    eventually("the session to end", || {
        end_reason(b, id).ok_or_else(|| "still open".to_string())
    })
}

fn sleeping() -> Setup {
    Setup::standard().allow(&["sleep *"])
}

#[test]
fn a_reload_keeps_a_session_an_edit_does_not_narrow_and_ends_one_it_does() {
    let b = Bastion::start(sleeping());
    let agent = b.granted_agent();
    thread::scope(|s| {
        let running = run_in_background(s, &agent, "sleep 600");
        let id = wait_for_execs(&b, 1)[0];

        // Unrelated: a new role, and a wider standard role.
        let edited = sleeping()
            .allow(&["uptime"])
            .role("readonly", Role::on(&[TARGET]).exec(&["uptime"]));
        b.rewrite_policy(&edited);
        let out = b.cli_ok("reload", &[]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("reloaded"), "{said}");
        thread::sleep(Duration::from_millis(500));
        assert_eq!(end_reason(&b, id), None, "the session survives the edit");
        let uptime = b.granted_agent().run("uptime");
        assert_eq!(
            uptime.code, 0,
            "the wider role applies to new sessions: {uptime:?}"
        );

        // The identity no longer holds the role the session stands on.
        let edited = edited.identity(AGENT, &["readonly"]);
        b.rewrite_policy(&edited);
        let out = b.cli_ok("reload", &[]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(&format!("[{id}]")), "{said}");
        let (out, _) = running.join().expect("the ssh thread");
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("policy reloaded"), "{out:?}");
        assert!(ended(&b, id).starts_with("policy reloaded: "));
    });
}

#[test]
fn a_reload_ends_a_session_whose_commands_narrowed() {
    let b = Bastion::start(sleeping());
    let agent = b.granted_agent();
    thread::scope(|s| {
        let running = run_in_background(s, &agent, "sleep 600");
        let id = wait_for_execs(&b, 1)[0];
        b.rewrite_policy(&Setup::standard());
        b.signal("HUP");
        let (out, _) = running.join().expect("the ssh thread");
        assert!(out.stderr.contains("narrowed"), "{out:?}");
        assert!(ended(&b, id).contains("narrowed"));
    });
}

#[test]
fn a_policy_that_does_not_load_is_not_applied() {
    let b = Bastion::start(Setup::standard());
    let agent = b.granted_agent();
    let roles = b.dir().join("policy/roles.toml");
    let good = fs::read_to_string(&roles).expect("roles.toml");
    fs::write(&roles, good.replace("exec = ", "exec == ")).expect("write roles.toml");

    let out = b.cli("reload", &[]);
    assert!(!out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("not reloaded") && said.contains("roles.toml"),
        "{said}"
    );
    b.signal("HUP");
    eventually("a log line for the refused reload", || {
        let log = b.log();
        let lines = log.lines().filter(|l| l.contains("reload refused")).count();
        (lines == 2).then_some(()).ok_or(log)
    });

    // The policy in force is the old one: the standard role still works.
    assert_output(&agent.run("echo still"), 0, "still\n");
}

#[test]
fn sigterm_drains_then_ends_every_session_and_exits_zero() {
    let b = Bastion::start(sleeping().setting("shutdown_drain", "\"2s\""));
    let agent = b.granted_agent();
    let pid_file = b.dir().join("portcullis.db.pid");
    assert!(pid_file.exists(), "serve writes {}", pid_file.display());
    thread::scope(|s| {
        let long = run_in_background(s, &agent, "sleep 600");
        let short = run_in_background(s, &agent, "sleep 1");
        let ids = wait_for_execs(&b, 2);
        b.signal("TERM");
        thread::sleep(Duration::from_millis(300));
        let refused = TcpStream::connect(("127.0.0.1", b.port));
        assert!(refused.is_err(), "no new connections while draining");

        let status = b.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "exit status {status:?}\n{}", b.log());
        let (short, _) = short.join().expect("the ssh thread");
        assert_output(&short, 0, "");
        let (long, _) = long.join().expect("the ssh thread");
        assert_ne!(long.code, 0, "{long:?}");
        assert!(long.stderr.contains("server shutting down"), "{long:?}");

        let mut reasons: Vec<String> = ids.iter().map(|id| ended(&b, *id)).collect();
        reasons.sort();
        assert_eq!(reasons, ["client disconnected", "server shutting down"]);
    });
    assert!(!pid_file.exists(), "the pid file goes with the server");
    assert!(b.log().contains("stopped"), "{}", b.log());
}

#[test]
fn events_follow_prints_what_the_server_commits_as_it_happens() {
    let b = Bastion::start(Setup::standard());
    assert_output(&b.granted_agent().run("echo before"), 0, "before\n");
    let mut follow = Command::new(bin())
        .args(["events", "--follow", "--json", "--config"])
        .arg(&b.config)
        .env_remove("PORTCULLIS_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start portcullis events --follow");
    let stdout = follow.stdout.take().expect("its stdout");
    let (lines_tx, lines) = mpsc::channel::<Value>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let event = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
            if lines_tx.send(event).is_err() {
                return;
            }
        }
    });
    let command_of = |e: &Value| e["command"].as_str().map(str::to_string);
    let mut seen = Vec::new();
    let mut next = || {
        let event = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no further event line; saw {seen:#?}"));
        seen.push(event.clone());
        event
    };
    // What was on record before it started comes first, in order.
    let mut last_seq = 0;
    loop {
        let event = next();
        let seq = event["seq"].as_i64().expect("a seq");
        assert!(seq > last_seq, "in sequence order");
        last_seq = seq;
        if command_of(&event).as_deref() == Some("echo before") {
            break;
        }
    }
    // Then what the server commits while it follows.
    assert_output(&b.granted_agent().run("echo after"), 0, "after\n");
    loop {
        let event = next();
        assert_ne!(event["kind"], "data", "stream bytes are not events");
        if event["kind"] == "exec.allowed" && command_of(&event).as_deref() == Some("echo after") {
            assert!(event["session"].as_i64().is_some(), "{event}");
            assert!(event["at"].as_str().is_some(), "{event}");
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
}

/// `GET path` on the metrics endpoint: (status line, body).
fn scrape(port: u16, path: &str) -> (String, String) {
    let mut conn =
        TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("send the request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_are_scraped_and_move_with_what_happens() {
    let port = free_port();
    let b = Bastion::start(sleeping().table_setting(
        "metrics",
        "listen",
        &format!("\"127.0.0.1:{port}\""),
    ));
    let (status, before) = scrape(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(before.contains("# EOF"), "OpenMetrics text: {before}");
    let (status, _) = scrape(port, "/other");
    assert!(status.contains("404"), "{status}");

    let agent = b.granted_agent();
    assert_output(&agent.run("echo counted"), 0, "counted\n");
    assert_command_refused(&agent, "rm -rf /");
    let stranger = b.signed_agent(&CaKey::generate("stranger").private, &CertSpec::standard());
    assert_cert_refused(&stranger, "not trusted");

    thread::scope(|s| {
        let running = run_in_background(s, &agent, "sleep 600");
        wait_for_execs(&b, 2);
        let (_, now) = scrape(port, "/metrics");
        let moved = |series: &str| sample(&now, series) - sample(&before, series);
        assert_eq!(
            moved("portcullis_events_total{kind=\"exec.allowed\"}"),
            2.0,
            "{now}"
        );
        assert_eq!(
            moved("portcullis_events_total{kind=\"exec.refused\"}"),
            1.0,
            "{now}"
        );
        assert_eq!(
            moved("portcullis_events_total{kind=\"auth.accepted\"}"),
            3.0,
            "{now}"
        );
        assert_eq!(
            moved("portcullis_auth_refused_total{reason=\"untrusted_ca\"}"),
            1.0,
            "{now}"
        );
        assert!(moved("portcullis_recorded_bytes_total") >= 8.0, "{now}");
        assert!(
            sample(&now, "portcullis_commit_seconds_count") > 0.0,
            "{now}"
        );
        assert_eq!(sample(&now, "portcullis_live_sessions"), 1.0, "{now}");
        assert!(sample(&now, "portcullis_live_channels") >= 1.0, "{now}");
        assert_eq!(sample(&now, "portcullis_store_healthy"), 1.0, "{now}");
        b.cli_ok("revoke", &["--identity", AGENT]);
        let _ = running.join();
    });
}
