//! Interactive shells through the bastion, with the real `ssh -tt` typing
//! into a real sshd: a shell opens only when the cert carries permit-pty, a
//! role grants pty, and commands are unrestricted (`"*"`) on both sides;
//! otherwise one `portcullis: refused:` line, a recorded refusal, and no
//! shell on the target. Everything typed and shown is in the store with
//! its timing, terminal sizes, and the command lines as observed.
mod common;

use common::*;
use serde_json::Value;

/// The transcript of the newest session.
fn last_transcript(b: &Bastion) -> Value {
    let id = *session_ids(b).last().expect("a session was recorded");
    show_json(b, id)
}

fn shell_started_on_target(b: &Bastion) -> bool {
    b.target(TARGET).log().contains("Starting session: shell")
}

/// `ssh` in a terminal asks for a shell and gets exactly one refusal line
/// naming `word`, exit status 126, a recorded `shell.refused`, and the
/// target never starts a shell.
#[track_caller]
fn assert_shell_refused(agent: &Agent<'_>, word: &str) {
    let term = Terminal::start(&agent.ssh_argv(Tty::Auto, &[], None), 80, 24);
    let (code, screen) = term.wait_exit();
    assert_eq!(code, 126, "a refused shell exits 126\n{screen}");
    let lines: Vec<&str> = screen
        .lines()
        .filter(|l| l.starts_with("portcullis:"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear line\n{screen}");
    assert!(
        lines[0].starts_with("portcullis: refused: ") && lines[0].contains(word),
        "the line says why ({word})\n{screen}"
    );
    wait_for_event(agent.bastion, "shell.refused", |e| {
        e["reason"].as_str().unwrap_or_default().contains(word)
    });
    assert!(
        !shell_started_on_target(agent.bastion),
        "no shell started on the target"
    );
}

#[test]
fn shell_opens_when_cert_role_and_exec_scope_allow_it() {
    let b = Bastion::start(shell_setup());
    let term = b.granted_agent().interactive(None);
    wait_ready(&term);
    term.type_line("exit");
    let (code, screen) = term.wait_exit();
    assert_eq!(code, 0, "{screen}");
    assert!(shell_started_on_target(&b), "the target started a shell");

    let show = last_transcript(&b);
    let shell = events_of_kind(&show, "shell.allowed");
    assert_eq!(shell.len(), 1, "{show:#}");
    assert_eq!(shell[0]["pty"], true, "{show:#}");
    let pty = events_of_kind(&show, "pty.allowed");
    assert_eq!(
        (pty[0]["cols"].as_u64(), pty[0]["rows"].as_u64()),
        (Some(80), Some(24))
    );
    let first_data = events_of_kind(&show, "data")[0]["seq"].as_i64();
    assert!(
        shell[0]["seq"].as_i64() < first_data,
        "the shell is recorded before any byte flows: {show:#}"
    );
    b.cli_ok("verify", &[]);
}

/// With OpenSSH's meaning, a cert's force-command replaces a shell too.
#[test]
fn shell_request_runs_the_forced_command_instead() {
    let b = Bastion::start(shell_setup());
    let spec = CertSpec::standard()
        .option("permit-pty")
        .option("force-command=echo forced");
    let out = b
        .signed_agent(&b.task_ca(), &spec)
        .run_ssh(Tty::Never, &[], None);

    assert_output(&out, 0, "forced\n");
    wait_for_event(&b, "exec.allowed", |e| e["forced_command"] == "echo forced");
    assert!(
        !shell_started_on_target(&b),
        "no shell started on the target"
    );
}

#[test]
fn shell_is_refused_without_permit_pty_in_the_cert() {
    let b = Bastion::start(shell_setup());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard());
    assert_shell_refused(&agent, "permit-pty");
    wait_for_event(&b, "request.refused", |e| e["request"] == "pty-req");
}

#[test]
fn shell_is_refused_when_no_role_grants_a_pty() {
    let b =
        Bastion::start(Setup::standard().role(ROLE, Role::on(&[TARGET]).exec(&["*"]).pty(false)));
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().option("permit-pty"));
    assert_shell_refused(&agent, "pty = true");
}

#[test]
fn shell_is_refused_when_the_role_limits_commands() {
    let b = Bastion::start(
        Setup::standard().role(ROLE, Role::on(&[TARGET]).exec(STANDARD_EXEC).pty(true)),
    );
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().option("permit-pty"));
    assert_shell_refused(&agent, "policy limits");
}

#[test]
fn shell_is_refused_when_the_cert_limits_commands() {
    let b = Bastion::start(shell_setup());
    let spec = CertSpec::standard().option("permit-pty").exec(&["echo *"]);
    let agent = b.signed_agent(&b.task_ca(), &spec);
    assert_shell_refused(&agent, "exec@portcullis");
}

#[test]
fn typed_commands_run_on_the_target() {
    let b = Bastion::start(shell_setup());
    let marker = b.dir().join("typed-marker");
    let term = b.granted_agent().interactive(None);
    wait_ready(&term);

    term.type_line(&format!("touch {} && echo made-$((3*3))", marker.display()));
    term.wait_for("made-9");
    assert!(marker.exists(), "the typed command ran on the target");
    term.type_line("exit 7");
    let (code, screen) = term.wait_exit();
    assert_eq!(code, 7, "the shell's exit status comes back: {screen}");
    wait_for_event(&b, "exit.status", |e| e["status"] == 7);
}

#[test]
fn resize_reaches_the_target() {
    let b = Bastion::start(shell_setup());
    let term = b.granted_agent().interactive(None);
    wait_ready(&term);
    term.type_line("stty size");
    term.wait_for("24 80");

    resize_and_wait(&b, &term, 120, 40);
    term.type_line("stty size");
    term.wait_for("40 120");
}

#[test]
fn recording_holds_the_output_in_order_with_increasing_timestamps() {
    let b = Bastion::start(shell_setup());
    let term = b.granted_agent().interactive(None);
    wait_ready(&term);
    term.type_line("echo first-$((1))");
    term.wait_for("first-1");
    term.type_line("echo second-$((2))");
    term.wait_for("second-2");
    term.type_line("exit");
    term.wait_exit();

    let (show, _) = wait_for_event(&b, "exit.status", |_| true);
    let data = events_of_kind(&show, "data");
    let seqs: Vec<i64> = data.iter().filter_map(|e| e["seq"].as_i64()).collect();
    let offsets: Vec<i64> = data
        .iter()
        .filter_map(|e| e["offset_us"].as_i64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        offsets.windows(2).all(|w| w[0] <= w[1]) && offsets.first() < offsets.last(),
        "timestamps increase: {offsets:?}"
    );
    let text = |stream: &str| -> String {
        data.iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["text"].as_str().unwrap_or_default())
            .collect()
    };
    let stdout = text("stdout");
    let first = stdout.find("first-1").expect("first output recorded");
    let second = stdout.find("second-2").expect("second output recorded");
    assert!(first < second, "output in order: {stdout:?}");
    let stdin = text("stdin");
    assert!(
        stdin.contains("echo first-$((1))\r") && stdin.contains("echo second-$((2))\r"),
        "what was typed is recorded: {stdin:?}"
    );
}

#[test]
fn observed_commands_list_what_was_typed() {
    let b = Bastion::start(shell_setup());
    let term = b.granted_agent().interactive(None);
    wait_ready(&term);
    term.type_line("echo observed-$((0+1))");
    // The correction below must be made on the prompt: keys typed ahead
    // are echoed by the kernel and drawn again by the shell, and the
    // screen, like the observer, then shows both.
    term.wait_for_prompt_after("observed-1");
    // Typed with a mistake and corrected: the screen shows the final line.
    term.send_keys(&["-l", "echo tyop"]);
    term.send_keys(&["BSpace", "BSpace"]);
    term.send_keys(&["-l", "po-$((4+4))"]);
    term.send_keys(&["Enter"]);
    term.wait_for("typo-8");
    term.type_line("exit");
    term.wait_exit();

    let (show, _) = wait_for_event(&b, "command.observed", |e| {
        e["line"].as_str().unwrap_or_default().contains("typo-")
    });
    let lines: Vec<&str> = events_of_kind(&show, "command.observed")
        .iter()
        .filter_map(|e| e["line"].as_str())
        .collect();
    // The first line was typed before the prompt, like an agent does.
    assert!(lines.contains(&"echo ready-$((20+22))"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("Last login")), "{lines:?}");
    assert!(lines.contains(&"echo observed-$((0+1))"), "{lines:?}");
    assert!(lines.contains(&"echo typo-$((4+4))"), "{lines:?}");

    let id = show["session"]["id"].to_string();
    let text = String::from_utf8_lossy(&b.cli_ok("show", &[&id]).stdout).into_owned();
    let section = text
        .split("observed commands")
        .nth(1)
        .unwrap_or_else(|| panic!("show lists the observed commands:\n{text}"));
    assert!(
        section.contains("echo observed-$((0+1))") && section.contains("echo typo-$((4+4))"),
        "{text}"
    );
    // The asciicast marks each observed line, where a player can jump.
    let cast = b.cli_ok("export", &[&id, "--format", "asciicast"]);
    let markers: Vec<Value> = String::from_utf8_lossy(&cast.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|frame| frame[1] == "m")
        .collect();
    let labels: Vec<&str> = markers.iter().filter_map(|m| m[2].as_str()).collect();
    assert_eq!(labels, lines, "{markers:?}");
}

#[test]
fn pty_exec_follows_the_exec_scope() {
    let role = Role::on(&[TARGET])
        .exec(STANDARD_EXEC)
        .exec(&["tty"])
        .pty(true);
    let b = Bastion::start(Setup::standard().role(ROLE, role));
    let agent = b.granted_agent();

    let out = agent.run_ssh(Tty::Forced, &[], Some("tty"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout_text().starts_with("/dev/pts/"), "{out:?}");

    let out = agent.run_ssh(Tty::Forced, &[], Some("id"));
    assert_eq!(out.code, 126, "{out:?}");
    assert_eq!(out.portcullis_lines().len(), 1, "{out:?}");
    wait_for_event(&b, "exec.refused", |e| e["command"] == "id");
}

/// `ssh -tt` gives up when its terminal is refused (as it does with
/// sshd): it exits 255 with its own line, and the refusal is recorded.
#[test]
fn forced_terminal_without_the_grant_is_refused_and_recorded() {
    let b = Bastion::start(Setup::standard().allow(&["tty"]));
    let out = b.granted_agent().run_ssh(Tty::Forced, &[], Some("tty"));

    assert_eq!(out.code, 255, "ssh gives up without its terminal: {out:?}");
    assert!(
        out.stderr.contains("PTY allocation request failed"),
        "{out:?}"
    );
    assert!(out.portcullis_lines().len() <= 1, "{out:?}");
    wait_for_event(&b, "request.refused", |e| {
        e["request"] == "pty-req"
            && e["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("permit-pty")
    });
}

#[test]
fn only_term_lang_and_lc_variables_reach_the_target() {
    let b = Bastion::start(Setup::standard().allow(&["printenv ..."]));
    let agent = b.granted_agent();
    let set_env = "SetEnv=LANG=C.UTF-8 LC_TIME=C PORTCULLIS_FOO=bar";

    let out = agent.run_ssh(
        Tty::Never,
        &["-o", set_env],
        Some("printenv LANG LC_TIME PORTCULLIS_FOO"),
    );

    // The target accepts PORTCULLIS_*; the bastion does not pass it on.
    assert_eq!(out.stdout_text(), "C.UTF-8\nC\n", "{out:?}");
    let (show, _) = wait_for_event(&b, "env.allowed", |e| e["name"] == "LANG");
    let names: Vec<&str> = events_of_kind(&show, "env.allowed")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["LANG", "LC_TIME"], "{show:#}");
}
