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
    let sessions_before = sessions_json(agent.bastion).as_array().map_or(0, Vec::len);
    let out = agent.run("echo hello");
    assert_eq!(out.code, 255, "ssh fails to authenticate\n{out:?}");
    assert!(out.stdout.is_empty(), "nothing ran\n{out:?}");
    assert!(
        out.stderr.contains("Permission denied"),
        "ssh says permission denied\n{out:?}"
    );
    let word = word.to_lowercase();
    eventually(
        &format!(
            "an auth.refused event for login {} whose reason contains {word:?}",
            agent.login
        ),
        || {
            let refused = refused_json(agent.bastion);
            let events = refused
                .as_array()
                .ok_or_else(|| format!("not an array: {refused}"))?;
            let reasons: Vec<&str> = events
                .iter()
                .filter(|e| e["kind"] == "auth.refused" && e["login"] == agent.login.as_str())
                .map(|e| e["reason"].as_str().unwrap_or_default())
                .collect();
            if reasons.iter().any(|r| r.to_lowercase().contains(&word)) {
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
