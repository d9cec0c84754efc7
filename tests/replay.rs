//! Reviewers play sessions back: `portcullis replay` with the original
//! timing (pauses cut, speed up), `export --format asciicast` for any
//! asciinema player (checked with the real `asciinema cat`), and
//! `export --format json` with every byte exactly. Shell and exec sessions
//! alike.
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::Value;

/// An interactive session through the bastion: a command whose output has
/// a non-ASCII character, a resize, another command, exit. Returns its id.
fn record_shell_session(b: &Bastion) -> i64 {
    let term = b.granted_agent().interactive(None);
    wait_ready(&term);
    term.type_line("printf 'caf\\303\\251 %s\\n' $((6*7))");
    term.wait_for("café 42");
    resize_and_wait(b, &term, 100, 30);
    term.type_line("stty size");
    term.wait_for("30 100");
    term.type_line("exit");
    term.wait_exit();
    let (show, _) = wait_for_event(b, "exit.status", |_| true);
    show["session"]["id"].as_i64().expect("session id")
}

/// `export --format json`, parsed.
fn export_json(b: &Bastion, id: i64) -> Value {
    json_of(b, "export", &[&id.to_string(), "--format", "json"])
}

/// Every output byte (stdout and stderr, in order) from the JSON export.
fn recorded_output(b: &Bastion, id: i64) -> Vec<u8> {
    let export = export_json(b, id);
    let mut out = Vec::new();
    for e in export["events"].as_array().expect("events") {
        if e["kind"] == "data" && e["stream"] != "stdin" {
            let b64 = e["base64"].as_str().expect("data rows carry base64");
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("valid base64"),
            );
        }
    }
    out
}

fn write_cast(b: &Bastion, id: i64) -> std::path::PathBuf {
    let cast = b.dir().join(format!("session-{id}.cast"));
    b.cli_ok(
        "export",
        &[
            &id.to_string(),
            "--format",
            "asciicast",
            "-o",
            cast.to_str().unwrap(),
        ],
    );
    cast
}

#[test]
fn json_export_holds_the_whole_transcript_with_exact_bytes() {
    let b = Bastion::start(shell_setup());
    let id = record_shell_session(&b);

    let export = export_json(&b, id);
    assert_eq!(export["format"], "portcullis-transcript", "{export:#}");
    assert_eq!(export["version"], 1);
    assert_eq!(export["session"]["id"], id);
    assert_eq!(export["terminal"]["cols"], 80, "{export:#}");
    assert_eq!(export["terminal"]["rows"], 24, "{export:#}");
    let kinds: Vec<&str> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in [
        "pty.allowed",
        "shell.allowed",
        "data",
        "pty.resize",
        "command.observed",
    ] {
        assert!(kinds.contains(&kind), "{kind} is exported: {kinds:?}");
    }
    let output = String::from_utf8(recorded_output(&b, id)).expect("the output is UTF-8");
    assert!(output.contains("café 42"), "{output:?}");
}

#[test]
fn asciicast_export_plays_in_asciinema_cat_as_the_recorded_output() {
    let b = Bastion::start(shell_setup());
    let id = record_shell_session(&b);
    let cast = write_cast(&b, id);

    let text = std::fs::read_to_string(&cast).expect("read the cast");
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default()).expect("header");
    assert_eq!(header["version"], 2, "{header}");
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(80), Some(24))
    );
    assert!(
        header["timestamp"].as_i64().unwrap_or_default() > 1_700_000_000,
        "{header}"
    );
    assert!(
        header["title"].as_str().unwrap_or_default().contains(AGENT),
        "{header}"
    );
    let events: Vec<Value> = lines
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect();
    let times: Vec<f64> = events.iter().filter_map(|e| e[0].as_f64()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times never go back: {times:?}"
    );
    assert!(
        events.iter().any(|e| e[1] == "r" && e[2] == "100x30"),
        "the resize is an \"r\" event"
    );
    let typed: String = events
        .iter()
        .filter(|e| e[1] == "i")
        .filter_map(|e| e[2].as_str())
        .collect();
    assert!(
        typed.contains("stty size\r"),
        "input is an \"i\" event: {typed:?}"
    );

    // asciinema reads /dev/tty: give it a terminal with `script`, and its
    // stdout a file, so the bytes are compared as they are.
    let played = b.dir().join("asciinema-cat.out");
    let cat = format!(
        "asciinema cat {} > {}",
        shell_quote(cast.to_str().unwrap()),
        shell_quote(played.to_str().unwrap())
    );
    run_ok(
        Command::new("script").args(["-qec", &cat, "/dev/null"]),
        "asciinema cat (install Debian's asciinema: scripts/test does)",
    );
    let played = std::fs::read(&played).expect("asciinema cat wrote its output");
    assert!(
        played == recorded_output(&b, id),
        "asciinema cat gives back exactly the recorded output:\n{:?}",
        String::from_utf8_lossy(&played)
    );
}

#[test]
fn replay_at_high_speed_reproduces_the_output_bytes() {
    let b = Bastion::start(shell_setup());
    let id = record_shell_session(&b);

    let out = b.cli_ok("replay", &[&id.to_string(), "--speed", "1000"]);

    assert!(
        out.stdout == recorded_output(&b, id),
        "replay writes exactly the recorded output:\n{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("replay: session"));
}

#[test]
fn replay_plays_exec_sessions_too() {
    let b = Bastion::start(Setup::standard());
    let out = b.granted_agent().run("echo exec-output");
    assert_output(&out, 0, "exec-output\n");
    let (show, _) = wait_for_event(&b, "exit.status", |_| true);
    let id = show["session"]["id"].as_i64().unwrap();

    let replayed = b.cli_ok("replay", &[&id.to_string(), "--speed", "1000"]);
    assert_eq!(String::from_utf8_lossy(&replayed.stdout), "exec-output\n");

    // Without a PTY the cast shows what the agent's terminal showed.
    let cast = std::fs::read_to_string(write_cast(&b, id)).unwrap();
    assert!(cast.contains(r#""o","exec-output\r\n"]"#), "{cast}");
}

#[test]
fn replay_cuts_long_pauses_to_max_idle() {
    let scripts = tempfile::tempdir().unwrap();
    let pause = script(scripts.path(), "pause", "echo before; sleep 2; echo after");
    let pause = pause.to_str().unwrap();
    let b = Bastion::start(Setup::standard().allow(&[pause]));
    assert_output(&b.granted_agent().run(pause), 0, "before\nafter\n");
    let (show, _) = wait_for_event(&b, "exit.status", |_| true);
    let id = show["session"]["id"].to_string();

    let started = Instant::now();
    let out = b.cli_ok("replay", &[&id, "--max-idle", "0.2"]);
    let capped = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\nafter\n");
    assert!(
        capped < Duration::from_millis(1500),
        "the 2 s pause is cut: {capped:?}"
    );

    let started = Instant::now();
    b.cli_ok("replay", &[&id, "--max-idle", "inf", "--speed", "2"]);
    let kept = started.elapsed();
    assert!(
        kept >= Duration::from_millis(900),
        "the pause is kept, halved: {kept:?}"
    );
}

/// Plays a recorded shell very slowly in a terminal, shows the progress
/// line, sends `key`, and checks playback stopped and the terminal is back
/// in cooked mode.
fn assert_replay_stops_on(key: &str) {
    let b = Bastion::start(shell_setup());
    let id = record_shell_session(&b);
    let replay = format!(
        "{} replay --config {} {id} --speed 0.01 --max-idle inf; code=$?; stty -a; exit $code",
        shell_quote(bin().to_str().unwrap()),
        shell_quote(b.config.to_str().unwrap()),
    );
    let term = Terminal::start(&["sh".into(), "-c".into(), replay], 80, 24);
    term.wait_for("q quits");

    term.send_keys(&[key]);
    let (code, screen) = term.wait_exit();

    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains(&format!("replay: session {id} stopped")),
        "{screen}"
    );
    // `stty -a` after the replay: the terminal is back in cooked mode.
    let modes: Vec<&str> = screen.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig", "opost"] {
        assert!(modes.contains(&mode), "{mode} is restored:\n{screen}");
    }
}

#[test]
fn replay_quits_on_q_and_restores_the_terminal() {
    assert_replay_stops_on("q");
}

#[test]
fn replay_quits_on_ctrl_c_and_restores_the_terminal() {
    assert_replay_stops_on("C-c");
}

#[test]
fn replay_of_an_unknown_session_is_a_clear_error() {
    let b = Bastion::start(Setup::standard());
    let out = b.cli("replay", &["999"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no session 999"), "{stderr}");
}
