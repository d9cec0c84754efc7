//! Exec through the bastion: an allowed command runs on the target with its
//! output, exit status and stdin intact; anything outside the scope (the
//! role's patterns ∩ the cert's `exec@portcullis`) is refused with one
//! `portcullis: refused:` line and exit status 126, and never reaches the
//! target; every run and every refusal is in the store.
mod common;

use common::*;

#[test]
fn allowed_command_returns_output_and_exit_code() {
    let scripts = tempfile::tempdir().unwrap();
    let exit3 = script(scripts.path(), "exit3", "echo bye; exit 3");
    let exit3 = exit3.to_str().unwrap();
    let b = Bastion::start(Setup::standard().allow(&[exit3]));
    let agent = b.granted_agent();

    let out = agent.run("echo hello");
    assert_output(&out, 0, "hello\n");
    assert_eq!(out.stderr, "", "{out:?}");

    let out = agent.run("printf no-newline");
    assert_output(&out, 0, "no-newline");

    let out = agent.run("false");
    assert_output(&out, 1, "");

    let out = agent.run(exit3);
    assert_output(&out, 3, "bye\n");
}

#[test]
fn stderr_stays_separate() {
    let scripts = tempfile::tempdir().unwrap();
    let both = script(
        scripts.path(),
        "both",
        "echo to-out; echo to-err >&2; echo more-out",
    );
    let both = both.to_str().unwrap();
    let b = Bastion::start(Setup::standard().allow(&[both]));

    let out = b.granted_agent().run(both);

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout_text(), "to-out\nmore-out\n", "{out:?}");
    assert_eq!(out.stderr, "to-err\n", "{out:?}");
}

#[test]
fn stdin_is_piped() {
    let b = Bastion::start(Setup::standard());
    let agent = b.granted_agent();

    let out = agent.run_with_stdin("cat", b"line one\nline two\n");
    assert_output(&out, 0, "line one\nline two\n");

    // 8 MiB: far more than any window or queue, so the bastion must apply
    // backpressure both ways rather than drop or reorder.
    let input = noise(8 << 20);
    let out = agent.run_with_stdin("cat", &input);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.len(), input.len(), "every byte comes back");
    assert!(
        out.stdout == input,
        "the bytes come back unchanged and in order"
    );
}

#[test]
fn out_of_scope_command_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.granted_agent();

    assert_refused(&agent.run("id"));
    assert_refused(&agent.run("rm -rf /tmp/nothing-here"));
    // Exact patterns are exact: `true` is allowed, `true x` is not.
    assert_refused(&agent.run("true x"));
    assert_output(&agent.run("true"), 0, "");
}

/// `echo *` must not let shell syntax through: the command is refused and the
/// injected part never runs on the target (its marker file is not created).
#[track_caller]
fn assert_injection_refused(template: &str) {
    let b = Bastion::start(Setup::standard());
    let marker = b.dir().join("injected");
    let command = template.replace("MARKER", marker.to_str().unwrap());

    assert_refused(&b.granted_agent().run(&command));
    assert!(!marker.exists(), "the injected command ran: {command:?}");
}

#[test]
fn semicolon_injection_is_refused() {
    assert_injection_refused("echo hi; touch MARKER");
}

#[test]
fn and_injection_is_refused() {
    assert_injection_refused("echo hi && touch MARKER");
}

#[test]
fn pipe_injection_is_refused() {
    assert_injection_refused("echo hi | touch MARKER");
}

#[test]
fn command_substitution_injection_is_refused() {
    assert_injection_refused("echo $(touch MARKER)");
}

#[test]
fn backtick_injection_is_refused() {
    assert_injection_refused("echo `touch MARKER`");
}

#[test]
fn newline_injection_is_refused() {
    assert_injection_refused("echo hi\ntouch MARKER");
}

#[test]
fn exec_option_in_cert_narrows_the_role() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().exec(&["echo *"]));

    let out = agent.run("echo narrowed");
    assert_output(&out, 0, "narrowed\n");
    // The role allows `printf *`; the cert does not.
    assert_refused(&agent.run("printf hi"));
}

#[test]
fn exec_option_in_cert_cannot_widen_the_role() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().exec(&["echo *", "id"]));

    assert_refused(&agent.run("id"));
    assert_output(&agent.run("echo fine"), 0, "fine\n");
}

#[test]
fn force_command_replaces_the_clients_command() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard().option("force-command=echo forced"),
    );

    let out = agent.run("printf mine");

    assert_output(&out, 0, "forced\n");
    let (_, allowed) = wait_for_event(&b, "exec.allowed", |e| e["forced_command"] == "echo forced");
    assert_eq!(
        allowed["command"], "printf mine",
        "the client's command is recorded too: {allowed}"
    );
}

#[test]
fn force_command_outside_the_role_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard().option("force-command=id"),
    );

    assert_refused(&agent.run("echo hello"));
}

#[test]
fn every_run_and_refusal_is_in_the_store_with_its_reason() {
    let b = Bastion::start(Setup::standard());
    let agent = b.granted_agent();
    assert_output(&agent.run("echo hello"), 0, "hello\n");
    assert_refused(&agent.run("id"));

    let (show, allowed) = wait_for_event(&b, "exec.allowed", |e| e["command"] == "echo hello");
    let session = &show["session"];
    assert_eq!(session["identity"], AGENT, "{session}");
    assert_eq!(session["key_id"], AGENT, "{session}");
    assert_eq!(session["target"], TARGET, "{session}");
    assert_eq!(session["login"], TARGET, "{session}");
    assert_eq!(session["task"], "T-1", "{session}");
    assert!(allowed["forced_command"].is_null(), "{allowed}");

    let stdout: String = events_of_kind(&show, "data")
        .iter()
        .filter(|e| e["stream"] == "stdout")
        .map(|e| e["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        stdout, "hello\n",
        "the output is in the transcript: {show:#}"
    );

    let (show, _) = wait_for_event(&b, "exit.status", |e| e["status"] == 0);
    let seq = |kind: &str| events_of_kind(&show, kind)[0]["seq"].as_i64().unwrap();
    assert!(
        seq("exec.allowed") < seq("data"),
        "the command is recorded before its output: {show:#}"
    );
    assert!(
        seq("data") < seq("exit.status"),
        "the output is recorded before the exit status: {show:#}"
    );

    let (_, refused) = wait_for_event(&b, "exec.refused", |e| e["command"] == "id");
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        !reason.trim().is_empty(),
        "a refusal is recorded with its reason: {refused}"
    );
}
