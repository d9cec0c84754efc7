//! The example policy shipped in the repository's `policy/` directory.

use std::path::Path;
use std::time::Duration;

use crate::policy::{Approval, CommandLine, Policy, RoleClaim};

const MINUTE: Duration = Duration::from_secs(60);

fn example() -> Policy {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy");
    match Policy::load(&dir) {
        Ok(policy) => policy,
        Err(errors) => panic!("the example policy must load:\n{errors}"),
    }
}

#[test]
fn example_policy_loads() {
    let policy = example();
    assert_eq!(policy.targets.keys().collect::<Vec<_>>(), ["db1", "web1"]);
    assert_eq!(
        policy.roles.keys().collect::<Vec<_>>(),
        ["db-tunnel", "web-readonly", "web-restart"]
    );
    assert_eq!(policy.roles["db-tunnel"].approval, Approval::Manual);
    assert_eq!(
        policy.roles["db-tunnel"].open.to_strings(),
        ["127.0.0.1:5432"]
    );
    assert_eq!(
        policy.identities["agent-7"].roles,
        ["web-restart", "web-readonly"]
    );
}

#[test]
fn example_agent_may_restart_nginx_with_a_short_cert_only() {
    let policy = example();
    let line = |command: &str| match CommandLine::parse(command) {
        Ok(line) => line,
        Err(refusal) => panic!("{refusal}"),
    };
    let unnamed = RoleClaim::Unnamed;
    let short = policy.ceiling("agent-7", "web1", 10 * MINUTE, unnamed);
    assert!(short.is_ok_and(|c| c.exec().matches_any(&line("sudo systemctl restart nginx"))));

    let longer = policy.ceiling("agent-7", "web1", 20 * MINUTE, unnamed);
    assert!(longer.is_ok_and(|c| {
        !c.exec().matches_any(&line("sudo systemctl restart nginx"))
            && c.exec().matches_any(&line("cat /var/log/nginx/error.log"))
            && !c
                .exec()
                .matches_any(&line("cat /var/log/nginx/../../../etc/shadow"))
    }));
    assert!(CommandLine::parse("cat /var/log/nginx/error.log; id").is_err());

    let refusal = policy.ceiling("agent-7", "db1", 10 * MINUTE, unnamed);
    assert!(refusal.is_err());
}
