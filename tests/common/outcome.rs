//! Outcomes as the contract states them.

use super::*;

/// The command ran: this exit status and exactly this stdout.
#[track_caller]
pub fn assert_output(out: &SshOutput, code: i32, stdout: &str) {
    assert_eq!(
        (out.code, out.stdout_text().as_str()),
        (code, stdout),
        "{out:?}"
    );
}

/// The command was refused: exit status 126, nothing on stdout, and stderr
/// starts with `portcullis: refused:`.
#[track_caller]
pub fn assert_refused(out: &SshOutput) {
    assert_eq!(out.code, 126, "a refused command exits 126\n{out:?}");
    assert!(
        out.stderr.starts_with("portcullis: refused:"),
        "stderr starts with `portcullis: refused:`\n{out:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "a refused command prints nothing on stdout\n{out:?}"
    );
}

/// The certificate was refused at authentication: ssh gave up (255),
/// nothing ran, no session opened, and `sessions --refused --json` holds an
/// auth.refused event for this login whose reason contains `word`
/// (case-insensitive).
#[track_caller]
pub fn assert_cert_refused(agent: &Agent<'_>, word: &str) {
    assert_auth_refused(agent, &[word], || agent.run("echo hello"));
}

/// Like [`assert_cert_refused`] for the login `attempt` makes (the agent's
/// key and cert with options of its own); the reason contains one of
/// `words` (case-insensitive).
#[track_caller]
pub fn assert_auth_refused(agent: &Agent<'_>, words: &[&str], attempt: impl FnOnce() -> SshOutput) {
    let sessions_before = sessions_json(agent.bastion).as_array().map_or(0, Vec::len);
    let out = attempt();
    assert_eq!(out.code, 255, "ssh fails to authenticate\n{out:?}");
    assert!(out.stdout.is_empty(), "nothing ran\n{out:?}");
    assert!(
        out.stderr.contains("Permission denied"),
        "ssh says permission denied\n{out:?}"
    );
    let words: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    eventually(
        &format!(
            "an auth.refused event for login {} whose reason contains one of {words:?}",
            agent.login
        ),
        || {
            let refused = refused_json(agent.bastion);
            let events = refused
                .as_array()
                .ok_or_else(|| format!("not an array: {refused}"))?;
            let reasons: Vec<String> = events
                .iter()
                .filter(|e| e["kind"] == "auth.refused" && e["login"] == agent.login.as_str())
                .map(|e| e["reason"].as_str().unwrap_or_default().to_lowercase())
                .collect();
            if reasons
                .iter()
                .any(|r| words.iter().any(|w| r.contains(w.as_str())))
            {
                Ok(())
            } else {
                Err(format!("refusals recorded: {refused:#}"))
            }
        },
    );
    let sessions = sessions_json(agent.bastion);
    assert_eq!(
        sessions.as_array().map(Vec::len),
        Some(sessions_before),
        "a refused certificate opens no session: {sessions:#}"
    );
}

/// The command was refused before it reached the target: exit status 126,
/// nothing on stdout, one `portcullis: refused:` line, an `exec.refused`
/// row for exactly this command, and no `exec.allowed` row for it.
#[track_caller]
pub fn assert_command_refused(agent: &Agent<'_>, command: &str) -> SshOutput {
    let out = agent.run(command);
    assert_refused(&out);
    assert_eq!(
        out.portcullis_lines().len(),
        1,
        "one refusal line for {command:?}\n{out:?}"
    );
    wait_for_event(agent.bastion, "exec.refused", |e| e["command"] == command);
    assert!(
        find_event(agent.bastion, "exec.allowed", |e| e["command"] == command).is_none(),
        "{command:?} was allowed as well as refused"
    );
    out
}
