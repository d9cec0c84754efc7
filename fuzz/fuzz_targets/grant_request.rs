//! Any command line sent to the `grant` login: parsing never panics, and a
//! request is never narrowed into a scope wider than its role.
//!
//! Input: the command text, as the client sends it.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis::grants::request::{narrow, parse, GrantCommand, RequestError};
use portcullis::policy::{
    Approval, ChannelGrants, CommandLine, CommandPattern, OpenPatternSet, PatternSet, Role,
};

/// A restricted role and an unrestricted one.
fn roles() -> &'static [Role; 2] {
    static ROLES: OnceLock<[Role; 2]> = OnceLock::new();
    ROLES.get_or_init(|| {
        let role = |name: &str, exec: &[&str], pty: bool, max_ttl: u64| Role {
            name: name.to_owned(),
            targets: vec!["web1".to_owned(), "web2".to_owned()],
            exec: PatternSet::parse(exec).expect("fixed patterns parse"),
            ask: PatternSet::new(),
            open: OpenPatternSet::parse(&["127.0.0.1:5432", "db.internal:8000-8099"])
                .expect("fixed patterns parse"),
            pty,
            max_ttl: Duration::from_secs(max_ttl),
            approval: Approval::Manual,
            single_session: false,
            channels: ChannelGrants::default(),
        };
        [
            role(
                "web-restart",
                &[
                    "systemctl status *",
                    "systemctl restart nginx",
                    "journalctl -u nginx -n *",
                ],
                false,
                900,
            ),
            role("ops", &["*"], true, 86_400),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let command = String::from_utf8_lossy(data);
    let args = match parse(&command) {
        Ok(GrantCommand::Request(args)) => args,
        Ok(_) => return,
        Err(error) => {
            assert!(matches!(error, RequestError::Syntax(_)));
            assert!(!error.to_string().contains('\n'), "{error:?}");
            return;
        }
    };
    for role in roles() {
        let scope = match narrow(role, &args.ttl, &args.narrowing) {
            Ok(scope) => scope,
            Err(error) => {
                assert!(!error.to_string().contains('\n'), "{error:?}");
                continue;
            }
        };
        for target in &scope.targets {
            assert!(role.targets.contains(target), "{target:?} not in {role:?}");
        }
        for open in &scope.open {
            assert!(role.open.contains(open), "{open:?} not in {role:?}");
        }
        let role_exec = role.exec.to_strings();
        for pattern in &scope.exec {
            // Within the role: one of its patterns verbatim, or a literal
            // command one of them allows; and a pattern a cert can carry.
            let parsed = CommandPattern::parse(pattern);
            assert!(parsed.is_ok(), "granted an unusable pattern {pattern:?}");
            let literal = parsed.is_ok_and(|p| p.is_literal());
            let allowed = || CommandLine::parse(pattern).is_ok_and(|l| role.exec.matches_any(&l));
            assert!(
                role_exec.contains(pattern) || (literal && allowed()),
                "{pattern:?} is wider than {role:?}"
            );
        }
        assert!(scope.ttl_secs > 0 && scope.ttl_secs <= role.max_ttl.as_secs());
        assert!(!scope.pty || role.pty);
    }
});
