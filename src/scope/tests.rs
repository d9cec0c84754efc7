//! The shell decision: all three conditions, each one necessary.

use super::{Scope, TerminalRefusal};
use crate::cert::{CertScope, VerifiedCert};
use crate::policy::{Ceiling, PatternSet, Target, UpstreamAuth};

fn cert(permit_pty: bool, exec: Option<&[&str]>) -> VerifiedCert {
    VerifiedCert {
        key_id: "agent-7".into(),
        serial: 1,
        ca_fingerprint: "SHA256:x".into(),
        principals: vec!["web1".into()],
        valid_after: 0,
        valid_before: 600,
        scope: CertScope {
            exec: exec.map(|p| PatternSet::parse(p).unwrap()),
            open: None,
            force_command: None,
            source_address: None,
            permit_pty,
            permit_port_forwarding: false,
            task: None,
        },
    }
}

fn ceiling(pty: bool, exec: &[&str]) -> Ceiling {
    Ceiling {
        target: Target {
            name: "web1".into(),
            address: "127.0.0.1:22".into(),
            user: "deploy".into(),
            host_key: None,
            auth: UpstreamAuth::Certificate,
        },
        roles: vec!["ops".into()],
        exec: PatternSet::parse(exec).unwrap(),
        open: Vec::new(),
        pty,
        single_session: false,
        channels: Default::default(),
    }
}

#[test]
fn shell_needs_permit_pty_a_pty_role_and_unrestricted_commands() {
    let scope = Scope::new(&cert(true, Some(&["*"])), ceiling(true, &["*"]), 1024);
    assert!(scope.authorize_shell().is_ok());
    // A cert without exec@portcullis does not narrow commands.
    let scope = Scope::new(&cert(true, None), ceiling(true, &["*", "uptime"]), 1024);
    assert!(scope.authorize_shell().is_ok());
}

#[test]
fn shell_without_permit_pty_is_refused() {
    let scope = Scope::new(&cert(false, None), ceiling(true, &["*"]), 1024);
    assert_eq!(
        scope.authorize_shell().unwrap_err(),
        TerminalRefusal::NoPermitPty
    );
    assert!(!scope.allows_pty());
}

#[test]
fn shell_without_a_pty_role_is_refused() {
    let scope = Scope::new(&cert(true, None), ceiling(false, &["*"]), 1024);
    assert!(matches!(
        scope.authorize_shell(),
        Err(TerminalRefusal::NoPtyRole { .. })
    ));
    assert!(!scope.allows_pty());
}

#[test]
fn shell_with_a_command_allow_list_in_the_policy_is_refused() {
    let scope = Scope::new(
        &cert(true, None),
        ceiling(true, &["uptime", "echo *"]),
        1024,
    );
    assert!(matches!(
        scope.authorize_shell(),
        Err(TerminalRefusal::PolicyRestrictsCommands { .. })
    ));
    // A terminal for an allowed command is still fine (`ssh -t host cmd`).
    assert!(scope.allows_pty());
}

#[test]
fn shell_with_a_command_allow_list_in_the_cert_is_refused() {
    let scope = Scope::new(&cert(true, Some(&["uptime"])), ceiling(true, &["*"]), 1024);
    assert_eq!(
        scope.authorize_shell().unwrap_err(),
        TerminalRefusal::CertRestrictsCommands
    );
}
