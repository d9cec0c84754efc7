use super::*;

fn map(entries: &[(&str, &str)]) -> OptionsMap {
    let mut map = OptionsMap::new();
    for (name, value) in entries {
        map.insert((*name).to_owned(), (*value).to_owned());
    }
    map
}

fn scope(critical: &[(&str, &str)], extensions: &[(&str, &str)]) -> CertScope {
    match CertScope::from_cert(&map(critical), &map(extensions)) {
        Ok(scope) => scope,
        Err(refusal) => panic!("{refusal}"),
    }
}

fn refusal(critical: &[(&str, &str)]) -> CertRefusal {
    match CertScope::from_cert(&map(critical), &OptionsMap::new()) {
        Ok(scope) => panic!("accepted {scope:?}"),
        Err(refusal) => refusal,
    }
}

#[test]
fn unknown_critical_option_is_refused_on_one_line() {
    // Found by fuzz/cert_verify: the option name went into the refusal
    // raw, so a newline in it split the client's and the audit's line.
    let shown = refusal(&[("evil\nportcullis: accepted", "")]).to_string();
    assert_eq!(
        shown,
        r#"certificate has an unknown critical option "evil\nportcullis: accepted""#
    );
    let shown = refusal(&[("no-touch-required", "")]).to_string();
    assert_eq!(
        shown,
        r#"certificate has an unknown critical option "no-touch-required""#
    );
}

#[test]
fn wrong_principal_refusal_quotes_the_login_on_one_line() {
    let shown = CertRefusal::WrongPrincipal("web1\r\nroot".to_owned()).to_string();
    assert_eq!(
        shown,
        r#"login "web1\r\nroot" is not a listed principal of the certificate"#
    );
}

#[test]
fn every_known_option_is_kept_in_the_scope() {
    let scope = scope(
        &[
            (EXEC_OPTION, r#"["systemctl status *"]"#),
            (OPEN_OPTION, r#"["127.0.0.1:5432"]"#),
            (LISTEN_OPTION, r#"["127.0.0.1:8080"]"#),
            (SFTP_OPTION, r#"["/srv/upload"]"#),
            (CAPTURE_OPTION, ""),
            (FORCE_COMMAND, "uptime"),
            (SOURCE_ADDRESS, "10.0.0.0/8,::1"),
        ],
        &[
            (PERMIT_PTY, ""),
            (TASK_EXTENSION, "T-1"),
            (ROLE_EXTENSION, "ops"),
        ],
    );
    let command = crate::policy::CommandLine::parse("systemctl status nginx");
    assert!(scope
        .exec
        .as_ref()
        .zip(command.ok())
        .is_some_and(|(exec, line)| exec.matches_any(&line)));
    assert!(scope.open.is_some_and(|open| !open.is_empty()));
    assert_eq!(scope.listen.map(|l| l.len()), Some(1));
    assert!(scope.sftp.is_some_and(|s| s.allows("/srv/upload/x")));
    assert!(scope.capture);
    assert_eq!(scope.force_command.as_deref(), Some("uptime"));
    assert_eq!(scope.source_address.map(|list| list.len()), Some(2));
    assert!(scope.permit_pty && !scope.permit_port_forwarding);
    assert_eq!(scope.task.as_deref(), Some("T-1"));
    assert_eq!(scope.role.as_deref(), Some("ops"));
}

#[test]
fn a_plain_cert_leaves_every_dimension_to_the_ceiling() {
    let scope = scope(&[(FORCE_COMMAND, "uptime")], &[(PERMIT_PTY, "")]);
    assert!(!scope.is_explicit());
    assert!(scope.exec.is_none() && scope.open.is_none());
    assert!(scope.listen.is_none() && scope.sftp.is_none());
}

#[test]
fn a_cert_naming_only_its_role_leaves_its_dimensions_to_that_role() {
    let scope = scope(&[(CAPTURE_OPTION, "")], &[(ROLE_EXTENSION, "ops")]);
    assert!(!scope.is_explicit());
    assert_eq!(scope.role.as_deref(), Some("ops"));
    assert!(scope.capture);
}

#[test]
fn an_explicit_cert_has_nothing_it_does_not_name() {
    for (critical, extensions) in [
        (vec![(EXEC_OPTION, r#"["uptime"]"#)], vec![]),
        (
            vec![(SFTP_OPTION, r#"["/srv"]"#)],
            vec![(ROLE_EXTENSION, "ops")],
        ),
    ] {
        let scope = scope(&critical, &extensions);
        assert!(scope.is_explicit(), "{critical:?} {extensions:?}");
        assert!(scope.open.is_some_and(|o| o.is_empty()));
        assert!(scope.listen.is_some_and(|l| l.is_empty()));
        assert!(scope.exec.is_some());
    }
}

#[test]
fn malformed_known_options_are_refused() {
    for (option, value) in [
        (EXEC_OPTION, r#"["", "ls"]"#),
        (EXEC_OPTION, "ls"),
        (OPEN_OPTION, r#"[1]"#),
        (LISTEN_OPTION, r#"["*:80"]"#),
        (SFTP_OPTION, r#"["relative/path"]"#),
        (SOURCE_ADDRESS, "10.0.0.0/33"),
    ] {
        assert!(
            matches!(refusal(&[(option, value)]), CertRefusal::BadOption { .. }),
            "{option}={value}"
        );
    }
}

#[test]
fn a_role_name_outside_the_name_rule_is_refused() {
    let refused = CertScope::from_cert(&OptionsMap::new(), &map(&[(ROLE_EXTENSION, "ops\nx")]));
    assert!(matches!(refused, Err(CertRefusal::BadOption { .. })));
}
