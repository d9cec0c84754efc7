//! The effective scope: cert ∩ ceiling for every channel kind.

use super::testing::scope;
use super::{ExecRefusal, Replaced, TerminalRefusal};

const PTY: (&str, &str) = ("permit-pty", "");
const FORWARDING: (&str, &str) = ("permit-port-forwarding", "");

fn role(exec: &str, extra: &str) -> String {
    format!("[roles.ops]\ntargets = [\"web1\"]\nexec = {exec}\nmax_ttl = \"15m\"\napproval = \"auto\"\n{extra}\n")
}

#[test]
fn a_command_must_be_allowed_by_both_the_cert_and_the_role() {
    let s = scope(
        &role(r#"["systemctl ..."]"#, ""),
        &[("exec@portcullis", r#"["systemctl status *"]"#)],
        &[],
    );
    assert!(s.decide_exec(b"systemctl status nginx").is_ok());
    assert!(matches!(
        s.decide_exec(b"systemctl restart nginx"),
        Err(ExecRefusal::NotInCert(_))
    ));
    let wide_cert = scope(
        &role(r#"["uptime"]"#, ""),
        &[("exec@portcullis", r#"["*"]"#)],
        &[],
    );
    assert!(matches!(
        wide_cert.decide_exec(b"rm -rf /"),
        Err(ExecRefusal::NotInPolicy { .. })
    ));
}

#[test]
fn a_plain_cert_is_bounded_by_the_role_alone() {
    let s = scope(&role(r#"["uptime"]"#, ""), &[], &[]);
    assert!(s.decide_exec(b"uptime").is_ok());
    assert!(s.decide_exec(b"uptime; id").is_err());
}

#[test]
fn shell_syntax_is_refused_before_any_pattern_is_tried() {
    let s = scope(&role(r#"["echo *"]"#, ""), &[], &[]);
    assert!(matches!(
        s.decide_exec(b"echo hi; id"),
        Err(ExecRefusal::ShellSyntax { .. })
    ));
    // The lone "*" allows any command, syntax and all.
    let any = scope(&role(r#"["*"]"#, ""), &[], &[]);
    assert!(any.decide_exec(b"echo hi; id").is_ok());
}

#[test]
fn force_command_replaces_the_request_and_must_itself_be_in_scope() {
    let s = scope(
        &role(r#"["uptime"]"#, ""),
        &[("force-command", "uptime")],
        &[],
    );
    let decision = s.decide_exec(b"rm -rf /").unwrap();
    assert_eq!(
        (decision.requested(), decision.run()),
        ("rm -rf /", "uptime")
    );
    assert_eq!(decision.forced_command(), Some("uptime"));
    let outside = scope(&role(r#"["uptime"]"#, ""), &[("force-command", "id")], &[]);
    assert!(outside.decide_exec(b"uptime").is_err());
}

#[test]
fn force_command_replaces_a_shell_and_a_subsystem() {
    let sftp = "sftp = true\nsftp_paths = [\"/srv\"]";
    let s = scope(
        &role(r#"["uptime"]"#, sftp),
        &[("force-command", "uptime")],
        &[PTY],
    );
    let forced = s
        .decide_forced(Replaced::Subsystem, "sftp")
        .unwrap()
        .unwrap();
    assert_eq!(forced.run(), "uptime");
    assert_eq!(forced.instead_of(), Some("subsystem sftp"));
    assert!(s.decide_forced(Replaced::Shell, "").is_some());
    let unforced = scope(&role(r#"["uptime"]"#, sftp), &[], &[]);
    assert!(unforced
        .decide_forced(Replaced::Subsystem, "sftp")
        .is_none());
}

#[test]
fn a_cert_that_narrows_commands_gets_no_sftp_it_did_not_name() {
    let sftp = "sftp = true\nsftp_paths = [\"/srv\"]";
    let narrowed = scope(
        &role(r#"["uptime"]"#, sftp),
        &[("exec@portcullis", r#"["uptime"]"#)],
        &[],
    );
    assert!(narrowed.decide_sftp("sftp").is_err());
    let named = scope(
        &role(r#"["uptime"]"#, sftp),
        &[
            ("exec@portcullis", r#"["uptime"]"#),
            ("sftp@portcullis", r#"["/srv/up"]"#),
        ],
        &[],
    );
    let decision = named.decide_sftp("sftp").unwrap();
    assert!(decision.check_path(b"/srv/up/f", None).is_ok());
    assert!(
        decision.check_path(b"/srv/other", None).is_err(),
        "the cert's paths narrow the role's"
    );
    let plain = scope(&role(r#"["uptime"]"#, sftp), &[], &[]);
    assert!(plain.decide_sftp("sftp").is_ok());
}

#[test]
fn an_explicit_cert_has_no_listener_or_forward_it_did_not_name() {
    let extra = "open = [\"db:5432\"]\nlisten = [\"127.0.0.1:8080\"]";
    let explicit = scope(
        &role(r#"["uptime"]"#, extra),
        &[("exec@portcullis", r#"["uptime"]"#)],
        &[FORWARDING],
    );
    assert!(explicit.check_destination("db", 5432).is_err());
    assert!(explicit.decide_listen("127.0.0.1", 8080).is_err());
    let plain = scope(&role(r#"["uptime"]"#, extra), &[], &[FORWARDING]);
    assert!(plain.check_destination("db", 5432).is_ok());
    assert!(plain.decide_listen("127.0.0.1", 8080).is_ok());
}

#[test]
fn shell_needs_permit_pty_a_pty_role_and_unrestricted_commands() {
    let s = scope(
        &role(r#"["*"]"#, "pty = true"),
        &[("exec@portcullis", r#"["*"]"#)],
        &[PTY],
    );
    assert!(s.decide_shell(true).is_ok());
    let plain = scope(&role(r#"["*", "uptime"]"#, "pty = true"), &[], &[PTY]);
    assert!(plain.decide_shell(true).is_ok());
}

#[test]
fn shell_without_permit_pty_is_refused() {
    let s = scope(&role(r#"["*"]"#, "pty = true"), &[], &[]);
    assert_eq!(
        s.decide_shell(false).unwrap_err(),
        TerminalRefusal::NoPermitPty
    );
    assert!(!s.allows_pty());
}

#[test]
fn shell_without_a_pty_role_is_refused() {
    let s = scope(&role(r#"["*"]"#, ""), &[], &[PTY]);
    assert!(matches!(
        s.decide_shell(true),
        Err(TerminalRefusal::NoPtyRole { .. })
    ));
    assert!(!s.allows_pty());
}

#[test]
fn shell_with_a_command_allow_list_is_refused() {
    let s = scope(&role(r#"["uptime", "echo *"]"#, "pty = true"), &[], &[PTY]);
    assert!(matches!(
        s.decide_shell(true),
        Err(TerminalRefusal::PolicyRestrictsCommands { .. })
    ));
    // A terminal for an allowed command is still fine (`ssh -t host cmd`).
    assert!(s.allows_pty());
    let cert = scope(
        &role(r#"["*"]"#, "pty = true"),
        &[("exec@portcullis", r#"["uptime"]"#)],
        &[PTY],
    );
    assert_eq!(
        cert.decide_shell(true).unwrap_err(),
        TerminalRefusal::CertRestrictsCommands
    );
}

#[test]
fn non_utf8_and_overlong_commands_are_refused() {
    let s = scope(&role(r#"["*"]"#, ""), &[], &[]);
    assert!(matches!(
        s.decide_exec(b"\xff\xfe"),
        Err(ExecRefusal::NotUtf8)
    ));
    assert!(matches!(
        s.decide_exec(&[b'a'; 1025]),
        Err(ExecRefusal::TooLong(1024))
    ));
}

#[test]
fn refusal_messages_quote_and_cut_the_command() {
    let s = scope(&role(r#"["uptime"]"#, ""), &[], &[]);
    let long = format!("echo {}\n", "x".repeat(500));
    let message = s.decide_exec(long.as_bytes()).unwrap_err().to_string();
    assert!(message.contains("\"echo xxx"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(message.len() < 400, "{message}");
}

#[test]
fn capture_is_on_when_the_role_or_the_cert_asks() {
    assert!(!scope(&role(r#"["uptime"]"#, ""), &[], &[]).captures_payload());
    assert!(scope(&role(r#"["uptime"]"#, "capture = true"), &[], &[]).captures_payload());
    assert!(scope(
        &role(r#"["uptime"]"#, ""),
        &[("capture@portcullis", "")],
        &[]
    )
    .captures_payload());
}
