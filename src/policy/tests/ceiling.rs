use std::collections::BTreeMap;
use std::time::Duration;

use crate::policy::{
    Approval, CeilingRefusal, CommandLine, Identity, OpenPatternSet, PatternSet, Policy, Role,
    RoleClaim, Target, UpstreamAuth,
};

const MINUTE: Duration = Duration::from_secs(60);

fn role(name: &str, targets: &[&str], exec: &[&str], max_ttl: Duration) -> Role {
    Role {
        name: name.to_owned(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        exec: PatternSet::parse(exec).unwrap_or_default(),
        ask: PatternSet::new(),
        open: OpenPatternSet::default(),
        pty: false,
        max_ttl,
        approval: Approval::Auto,
        single_session: false,
        channels: Default::default(),
    }
}

fn target(name: &str) -> Target {
    Target {
        name: name.to_owned(),
        address: "127.0.0.1:22".to_owned(),
        user: "deploy".to_owned(),
        host_key: None,
        auth: UpstreamAuth::Certificate,
    }
}

/// agent-7 holds web-restart (15m) and web-readonly (30m, pty, a forward);
/// both reach web1. db-tunnel reaches db1 but agent-7 does not hold it.
fn policy() -> Policy {
    let mut readonly = role(
        "web-readonly",
        &["web1"],
        &["uptime", "systemctl status *"],
        30 * MINUTE,
    );
    readonly.pty = true;
    readonly.open = OpenPatternSet::parse(&["127.0.0.1:8080"]).unwrap_or_default();
    let mut restart = role(
        "web-restart",
        &["web1"],
        &["systemctl status *", "sudo systemctl restart nginx"],
        15 * MINUTE,
    );
    restart.single_session = true;
    let mut deploy = role("web-deploy", &["web1"], &["deploy *"], 60 * MINUTE);
    deploy.approval = Approval::Manual;
    let roles = [
        restart,
        readonly,
        deploy,
        role("db-tunnel", &["db1"], &[], 60 * MINUTE),
    ];
    let identity = Identity {
        name: "agent-7".to_owned(),
        keys: Vec::new(),
        roles: vec![
            "web-restart".to_owned(),
            "web-readonly".to_owned(),
            "web-deploy".to_owned(),
        ],
        review: Default::default(),
        approve: Default::default(),
    };
    Policy {
        targets: ["web1", "db1"].map(|n| (n.to_owned(), target(n))).into(),
        roles: roles.map(|r| (r.name.clone(), r)).into(),
        identities: BTreeMap::from([(identity.name.clone(), identity)]),
    }
}

#[test]
fn ceiling_is_the_union_of_the_roles_that_reach_the_target() {
    let ceiling = policy().ceiling("agent-7", "web1", 10 * MINUTE, RoleClaim::Unnamed);
    let Ok(ceiling) = ceiling else {
        panic!("expected a ceiling, got {ceiling:?}");
    };
    assert_eq!(ceiling.target().name, "web1");
    assert_eq!(ceiling.roles(), ["web-restart", "web-readonly"]);
    assert_eq!(ceiling.named_role(), None);
    assert_eq!(
        ceiling.exec().to_strings(),
        [
            "systemctl status *",
            "sudo systemctl restart nginx",
            "uptime"
        ]
    );
    assert_eq!(ceiling.open().to_strings(), ["127.0.0.1:8080"]);
    assert!(ceiling.pty());
    assert!(ceiling.single_session());
}

#[test]
fn roles_whose_max_ttl_is_shorter_than_the_cert_do_not_count() {
    let ceiling = policy().ceiling("agent-7", "web1", 20 * MINUTE, RoleClaim::Unnamed);
    let Ok(ceiling) = ceiling else {
        panic!("expected a ceiling, got {ceiling:?}");
    };
    assert_eq!(ceiling.roles(), ["web-readonly"]);
    let restart = CommandLine::parse("sudo systemctl restart nginx");
    assert!(restart.is_ok_and(|line| !ceiling.exec().matches_any(&line)));
    assert!(!ceiling.single_session());
}

#[test]
fn a_cert_that_names_no_role_never_reaches_a_manual_role() {
    let ceiling = policy().ceiling("agent-7", "web1", 10 * MINUTE, RoleClaim::Unnamed);
    let Ok(ceiling) = ceiling else {
        panic!("expected a ceiling, got {ceiling:?}");
    };
    assert!(!ceiling.roles().iter().any(|r| r == "web-deploy"));
    let deploy = CommandLine::parse("deploy v2");
    assert!(deploy.is_ok_and(|line| !ceiling.exec().matches_any(&line)));
}

#[test]
fn a_cert_that_names_a_role_gets_that_role_alone() {
    let named = RoleClaim::Named("web-deploy");
    let ceiling = policy().ceiling("agent-7", "web1", 10 * MINUTE, named);
    let Ok(ceiling) = ceiling else {
        panic!("expected a ceiling, got {ceiling:?}");
    };
    assert_eq!(ceiling.roles(), ["web-deploy"]);
    assert_eq!(ceiling.named_role(), Some("web-deploy"));
    assert_eq!(ceiling.exec().to_strings(), ["deploy *"]);
    assert!(!ceiling.pty() && !ceiling.single_session());
}

#[test]
fn a_named_role_must_be_held_reach_the_target_and_cover_the_lifetime() {
    let p = policy();
    assert!(matches!(
        p.ceiling("agent-7", "web1", MINUTE, RoleClaim::Named("db-tunnel")),
        Err(CeilingRefusal::RoleNotHeld { .. })
    ));
    assert!(matches!(
        p.ceiling("agent-7", "web1", MINUTE, RoleClaim::Named("nope")),
        Err(CeilingRefusal::RoleNotHeld { .. })
    ));
    let mut p = policy();
    if let Some(identity) = p.identities.get_mut("agent-7") {
        identity.roles.push("db-tunnel".into());
    }
    assert!(matches!(
        p.ceiling("agent-7", "web1", MINUTE, RoleClaim::Named("db-tunnel")),
        Err(CeilingRefusal::RoleNotForTarget { .. })
    ));
    // web-readonly (30m) would cover 20m; the named web-restart (15m) does not.
    assert!(matches!(
        p.ceiling(
            "agent-7",
            "web1",
            20 * MINUTE,
            RoleClaim::Named("web-restart")
        ),
        Err(CeilingRefusal::LifetimeExceedsMaxTtl { .. })
    ));
}

#[test]
fn an_identity_with_only_manual_roles_for_the_target_needs_a_named_role() {
    let mut p = policy();
    for role in p.roles.values_mut() {
        role.approval = Approval::Manual;
    }
    let refusal = p.ceiling("agent-7", "web1", MINUTE, RoleClaim::Unnamed);
    assert!(matches!(
        refusal,
        Err(CeilingRefusal::OnlyManualRoles { .. })
    ));
    assert!(refusal
        .err()
        .is_some_and(|r| r.to_string().contains("role@portcullis")));
}

#[test]
fn a_lifetime_equal_to_max_ttl_is_allowed() {
    assert!(policy()
        .ceiling("agent-7", "web1", 30 * MINUTE, RoleClaim::Unnamed)
        .is_ok());
}

#[test]
fn unknown_identity_is_refused() {
    let refusal = policy().ceiling("agent-9", "web1", MINUTE, RoleClaim::Unnamed);
    assert_eq!(
        refusal,
        Err(CeilingRefusal::UnknownIdentity("agent-9".into()))
    );
    assert_eq!(
        refusal.err().map(|r| r.to_string()).as_deref(),
        Some("identity \"agent-9\" is not in the policy")
    );
}

#[test]
fn unknown_target_is_refused() {
    let refusal = policy().ceiling("agent-7", "web9", MINUTE, RoleClaim::Unnamed);
    assert_eq!(refusal, Err(CeilingRefusal::UnknownTarget("web9".into())));
    assert_eq!(
        refusal.err().map(|r| r.to_string()).as_deref(),
        Some("target \"web9\" is not in the policy")
    );
}

#[test]
fn target_outside_the_identitys_roles_is_refused() {
    let refusal = policy().ceiling("agent-7", "db1", MINUTE, RoleClaim::Unnamed);
    assert_eq!(
        refusal.err().map(|r| r.to_string()).as_deref(),
        Some("identity \"agent-7\" holds no role that reaches target \"db1\"")
    );
}

#[test]
fn lifetime_longer_than_every_max_ttl_is_refused() {
    let refusal = policy().ceiling("agent-7", "web1", 2 * 60 * MINUTE, RoleClaim::Unnamed);
    assert_eq!(
        refusal,
        Err(CeilingRefusal::LifetimeExceedsMaxTtl {
            lifetime: 2 * 60 * MINUTE,
            max_ttl: 30 * MINUTE,
            roles: vec!["web-readonly".into()],
        })
    );
    assert_eq!(
        refusal.err().map(|r| r.to_string()).as_deref(),
        Some("certificate lifetime 2h exceeds max_ttl 30m of role web-readonly")
    );
}

#[test]
fn lifetime_refusal_names_every_role_with_the_largest_max_ttl() {
    let mut policy = policy();
    if let Some(restart) = policy.roles.get_mut("web-restart") {
        restart.max_ttl = 30 * MINUTE;
    }
    let refusal = policy.ceiling("agent-7", "web1", 60 * MINUTE, RoleClaim::Unnamed);
    assert_eq!(
        refusal.err().map(|r| r.to_string()).as_deref(),
        Some("certificate lifetime 1h exceeds max_ttl 30m of roles web-restart, web-readonly")
    );
}

/// What reload keeps: a session goes on only when the new ceiling covers
/// the one it was admitted under.
#[test]
fn a_ceiling_covers_an_equal_or_wider_one_and_no_narrower_one() {
    let ceiling = |p: &Policy| {
        p.ceiling("agent-7", "web1", 10 * MINUTE, RoleClaim::Unnamed)
            .unwrap_or_else(|e| panic!("expected a ceiling, got {e:?}"))
    };
    let was = ceiling(&policy());
    assert!(was.covers(&was));

    let mut unrelated = policy();
    unrelated.roles.insert(
        "db-tunnel".into(),
        role("db-tunnel", &["db1"], &["psql"], MINUTE),
    );
    assert!(ceiling(&unrelated).covers(&was), "an edit elsewhere");

    let mut wider = policy();
    if let Some(r) = wider.roles.get_mut("web-readonly") {
        r.exec
            .extend(&PatternSet::parse(["df -h"]).unwrap_or_default());
    }
    let widened = ceiling(&wider);
    assert!(widened.covers(&was) && !was.covers(&widened));

    let mut narrower = policy();
    if let Some(r) = narrower.roles.get_mut("web-readonly") {
        r.exec = PatternSet::parse(["systemctl status *"]).unwrap_or_default();
    }
    assert!(!ceiling(&narrower).covers(&was), "a pattern taken away");

    let mut no_pty = policy();
    if let Some(r) = no_pty.roles.get_mut("web-readonly") {
        r.pty = false;
    }
    assert!(!ceiling(&no_pty).covers(&was), "pty taken away");

    let mut moved = policy();
    if let Some(t) = moved.targets.get_mut("web1") {
        t.address = "127.0.0.1:2200".into();
    }
    assert!(!ceiling(&moved).covers(&was), "the target changed");
}
