//! The grant login for tools: `request --json` takes the whole request as
//! one JSON object on stdin and `status ID --json` answers like it, one
//! JSON object on stdout, by the same path and with the same exit statuses
//! as the plain commands; and a plain request whose pattern was quoted
//! only once is refused with the quoting that works.
mod common;

use std::fs;
use std::process::Command;
use std::thread;

use common::*;
use serde_json::{json, Value};

fn with_identity(setup: Setup) -> (Bastion, IdentityKey) {
    let id = IdentityKey::generate();
    let bastion = Bastion::start(setup.identity_key(AGENT, &id.line));
    (bastion, id)
}

/// The task key's public line, as a JSON request's `pubkey`.
fn pubkey(key: &AgentKey) -> String {
    fs::read_to_string(&key.public)
        .expect("read the task key")
        .trim()
        .to_owned()
}

/// `ssh grant@bastion request --json < body`.
fn request_json(b: &Bastion, id: &IdentityKey, body: &[u8]) -> SshOutput {
    id.grant_command(b, "request --json", Some(body))
}

/// The one JSON object (and newline) that is all of stdout.
#[track_caller]
fn answer(out: &SshOutput) -> Value {
    let text = out.stdout_text();
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "one line on stdout: {out:?}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// Writes an issued answer's cert beside the task key.
fn keep_cert(key: &AgentKey, answer: &Value) {
    let cert = answer["cert"].as_str().expect("a cert");
    fs::write(key.cert_path(), format!("{cert}\n")).expect("write the cert");
}

fn requests_all(b: &Bastion) -> Value {
    json_of(b, "requests", &["--all", "--json"])
}

#[test]
fn json_request_issues_a_working_cert_with_its_pattern_intact() {
    let (b, id) = with_identity(Setup::standard());
    let task = b.new_key();
    let body = json!({
        "role": ROLE, "ttl": "5m", "task": "T-7", "reason": "nginx returns 502",
        "targets": [TARGET], "exec": ["echo *"], "pubkey": pubkey(&task),
    });
    let out = request_json(&b, &id, body.to_string().as_bytes());
    assert_eq!(out.code, 0, "{out:?}");
    let issued = answer(&out);
    assert_eq!(issued["status"], "issued", "{issued:#}");
    assert!(
        issued["request"].is_i64() && issued["serial"].is_u64(),
        "{issued:#}"
    );
    assert_eq!(issued["exec"], json!(["echo *"]), "{issued:#}");
    assert_eq!(issued["targets"], json!([TARGET]));
    assert_eq!(issued["role"], ROLE);
    assert!(
        issued["cert"]
            .as_str()
            .is_some_and(|c| c.starts_with("ssh-ed25519-cert-v01@openssh.com ")),
        "{issued:#}"
    );
    let valid_before = issued["valid_before"].as_str().unwrap_or_default();
    assert!(
        valid_before.len() > 20 && valid_before.contains('T') && valid_before.ends_with('Z'),
        "{issued:#}"
    );

    // The pattern arrived as one pattern, spaces and all.
    let requests = requests_all(&b);
    assert_eq!(requests[0]["id"], issued["request"], "{requests:#}");
    assert_eq!(requests[0]["scope"]["exec"], json!(["echo *"]));
    assert_eq!(requests[0]["reason"], "nginx returns 502");
    let recorded = stored_events(&b, "grant.issued");
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    assert_eq!(recorded[0]["serial"], issued["serial"]);
    assert_eq!(recorded[0]["request_id"], issued["request"]);
    assert_eq!(recorded[0]["task"], "T-7");
    assert_eq!(
        stored_events(&b, "grant.requested")[0]["exec"],
        json!(["echo *"])
    );

    keep_cert(&task, &issued);
    let agent = b.agent_with(task);
    assert_output(&agent.run("echo hello"), 0, "hello\n");
    // `*` stands for one word, and the other patterns of the role are gone.
    assert_refused(&agent.run("echo hello world"));
    assert_refused(&agent.run("printf wide"));
}

fn manual_setup() -> Setup {
    Setup::standard().role(
        ROLE,
        Role::on(&[TARGET]).exec(STANDARD_EXEC).approval("manual"),
    )
}

#[test]
fn json_pending_then_status_json_after_approve_and_denied_with_its_reason() {
    let (b, id) = with_identity(manual_setup());
    let task = b.new_key();
    let body = json!({"role": ROLE, "ttl": "5m", "pubkey": pubkey(&task), "wait": 1});
    let out = request_json(&b, &id, body.to_string().as_bytes());
    assert_eq!(out.code, 2, "{out:?}");
    let pending = answer(&out);
    let request = pending["request"].as_i64().expect("a request id");
    assert_eq!(
        pending,
        json!({"status": "pending", "request": request, "role": ROLE})
    );
    assert!(
        out.stderr.contains(&format!(
            "ask again with: ssh grant@bastion status {request} --json"
        )),
        "{out:?}"
    );

    let status = format!("status {request} --json");
    let still = id.grant_command(&b, &status, None);
    assert_eq!(still.code, 2, "{still:?}");
    assert_eq!(answer(&still)["status"], "pending");

    b.cli_ok("approve", &[&request.to_string()]);
    let fetched = id.grant_command(&b, &status, None);
    assert_eq!(fetched.code, 0, "{fetched:?}");
    let issued = answer(&fetched);
    assert_eq!(issued["status"], "issued", "{issued:#}");
    assert_eq!(issued["request"], request);
    // Asked again, the same cert, from the record.
    let again = id.grant_command(&b, &status, None);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(answer(&again), issued);
    keep_cert(&task, &issued);
    assert_output(&b.agent_with(task).run("echo approved"), 0, "approved\n");

    // Denied while waiting: the operator and the reason, and the refusal code.
    let task = b.new_key();
    let body = json!({"role": ROLE, "ttl": "5m", "pubkey": pubkey(&task), "wait": 30});
    let out = thread::scope(|s| {
        let waiting = s.spawn(|| request_json(&b, &id, body.to_string().as_bytes()));
        let denied = eventually("a second pending request", || {
            let list = json_of(&b, "requests", &["--json"]);
            list[0]["id"]
                .as_i64()
                .ok_or_else(|| format!("none yet: {list}"))
        });
        b.cli_ok("deny", &[&denied.to_string(), "--reason", "not today"]);
        waiting.join().expect("the waiting request")
    });
    assert_eq!(out.code, 126, "{out:?}");
    let denied = answer(&out);
    assert_eq!(denied["status"], "denied", "{denied:#}");
    assert_eq!(denied["reason"], "not today");
    assert!(denied["request"].as_i64().is_some_and(|r| r != request));
    assert!(denied["by"].as_str().is_some_and(|by| !by.is_empty()));
}

#[test]
fn json_refusals_are_one_object_with_the_plain_exit_code_and_on_record() {
    let names = ["agent-a", "agent-b", "agent-c", "agent-d", "agent-e"];
    let keys: Vec<IdentityKey> = names.iter().map(|_| IdentityKey::generate()).collect();
    // One identity per case, so the rate limit never decides one.
    let mut setup = Setup::standard();
    for (name, key) in names.iter().zip(&keys) {
        setup = setup.identity(name, &[ROLE]).identity_key(name, &key.line);
    }
    let b = Bastion::start(setup);
    let task = b.new_key();
    let line = pubkey(&task);
    let valid = |extra: Value| {
        let mut body = json!({"role": ROLE, "ttl": "5m", "pubkey": line});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body.to_string().into_bytes()
    };
    let oversized = valid(json!({"reason": "x".repeat(20 * 1024)}));
    let cases: [(&[u8], &str, Option<&str>); 5] = [
        (
            &valid(json!({"role": "admin"})),
            "role \"admin\" is not one this identity holds",
            Some("--role admin --ttl 5m"),
        ),
        (
            &valid(json!({"ttl": "2h"})),
            "exceeds max_ttl 15m",
            Some("--role ops --ttl 2h"),
        ),
        (
            &valid(json!({"sudo": true})),
            "request --json: unknown field `sudo`",
            None,
        ),
        (
            b"{\"role\": \"ops\", ",
            "request --json: EOF while parsing",
            None,
        ),
        (&oversized, "stdin is too long for a request", None),
    ];
    for ((name, key), (body, word, plain)) in names.iter().zip(&keys).zip(cases) {
        let out = request_json(&b, key, body);
        assert_eq!(out.code, 126, "{word}: {out:?}");
        let refused = answer(&out);
        assert_eq!(refused["status"], "refused", "{word}: {refused:#}");
        let reason = refused["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(word), "{word}: {refused:#}");
        assert_eq!(
            out.portcullis_lines(),
            [format!("portcullis: refused: {reason}")],
            "{word}: {out:?}"
        );
        let recorded = wait_for_stored_event(&b, "grant.refused", |e| e["identity"] == *name);
        assert_eq!(recorded["reason"], reason, "{word}: {recorded:#}");
        if let Some(args) = plain {
            let plain = key.request(&b, &task, args);
            assert_eq!(plain.code, out.code, "{args}: {plain:?}");
            assert_eq!(
                plain.portcullis_lines(),
                out.portcullis_lines(),
                "{args}: the same refusal"
            );
        }
    }
    assert!(stored_events(&b, "grant.issued").is_empty());

    // status --json refuses the same way.
    let out = keys[0].grant_command(&b, "status 999 --json", None);
    assert_eq!(out.code, 126, "{out:?}");
    assert_eq!(
        answer(&out),
        json!({"status": "refused", "reason": "no request 999 for identity agent-a"})
    );
}

/// What the client's shell passes on for `words` (e.g. `--exec "'echo *'"`).
fn as_the_shell_passes(words: &str) -> String {
    let out = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {words}")),
        "sh -c printf",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_pattern_quoted_once_is_refused_with_the_quoting_that_works() {
    let (b, id) = with_identity(Setup::standard().allow(&["systemctl status *"]));
    let task = b.new_key();
    // `--exec "systemctl status *"` typed once-quoted: ssh sends this.
    let out = id.request(&b, &task, "--role ops --ttl 5m --exec systemctl status *");
    assert_refused(&out);
    let expected = r#"unexpected word "status" after --exec systemctl: quote a pattern with spaces twice (--exec "'systemctl status *'") or use request --json"#;
    assert_eq!(
        out.portcullis_lines(),
        [format!("portcullis: refused: {expected}")],
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    wait_for_stored_event(&b, "grant.refused", |e| e["reason"] == expected);

    // The quoting it shows, through the client's shell, is a request.
    let suggested = expected
        .split_once("(--exec ")
        .and_then(|(_, rest)| rest.split_once(") or"))
        .map(|(quoted, _)| quoted)
        .expect("the suggested quoting");
    let exec = as_the_shell_passes(suggested);
    assert_eq!(exec, "'systemctl status *'");
    let out = id.request(&b, &task, &format!("--role ops --ttl 5m --exec {exec}"));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        requests_all(&b)[0]["scope"]["exec"],
        json!(["systemctl status *"])
    );
}
