use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use crate::policy::{Approval, Approver, Policy, PolicyErrors, Review, UpstreamAuth};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIARskWH999Pn4VK4zPlYhgTg88pR3OQC6py9dqnJFXBn agent-7";

/// A policy directory holding the given files (`None` leaves one out).
fn policy_dir(targets: Option<&str>, roles: Option<&str>, identities: Option<&str>) -> TempDir {
    let dir = match TempDir::new() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot make a temp dir: {error}"),
    };
    let files = [
        ("targets.toml", targets),
        ("roles.toml", roles),
        ("identities.toml", identities),
    ];
    for (name, text) in files {
        if let Some(text) = text {
            if let Err(error) = std::fs::write(dir.path().join(name), text) {
                panic!("cannot write {name}: {error}");
            }
        }
    }
    dir
}

fn load_errors(dir: &Path) -> PolicyErrors {
    match Policy::load(dir) {
        Ok(policy) => panic!("expected problems, loaded {policy:?}"),
        Err(errors) => errors,
    }
}

/// (file name, line, text the message must contain) for each problem.
fn assert_problems(errors: &PolicyErrors, expected: &[(&str, Option<usize>, &str)]) {
    let found: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.errors.len(), expected.len(), "problems: {found:#?}");
    for (error, (file, line, text)) in errors.errors.iter().zip(expected) {
        let name = error.file.file_name().and_then(|n| n.to_str());
        assert_eq!(
            (name, error.line),
            (Some(*file), *line),
            "problems: {found:#?}"
        );
        assert!(
            error.message.contains(text),
            "{:?} lacks {text:?}",
            error.message
        );
    }
}

const TARGETS: &str = "[targets.web1]\naddress = \"127.0.0.1:22201\"\nuser = \"deploy\"\n";
const ROLES: &str = "[roles.ops]\ntargets = [\"web1\"]\nexec = [\"uptime\"]\nmax_ttl = \"15m\"\n";
const IDENTITIES: &str = "[identities.agent-7]\nroles = [\"ops\"]\n";

#[test]
fn minimal_policy_loads_with_safe_defaults() {
    let dir = policy_dir(Some(TARGETS), Some(ROLES), Some(IDENTITIES));
    let policy = match Policy::load(dir.path()) {
        Ok(policy) => policy,
        Err(errors) => panic!("{errors}"),
    };
    let ops = &policy.roles["ops"];
    assert_eq!(ops.max_ttl, Duration::from_secs(900));
    assert_eq!(ops.approval, Approval::Manual);
    assert!(!ops.pty && !ops.single_session && ops.open.is_empty());
    assert_eq!(policy.targets["web1"].auth, UpstreamAuth::Certificate);
    assert_eq!(policy.targets["web1"].host_key, None);
    assert!(policy.identities["agent-7"].keys.is_empty());
}

#[test]
fn key_file_is_resolved_against_the_policy_dir() {
    let targets = "[targets.old]\naddress = \"[::1]:22\"\nuser = \"ops\"\nauth = \"key\"\nkey_file = \"keys/old\"\n";
    let roles = "[roles.ops]\ntargets = [\"old\"]\nmax_ttl = \"1h\"\n";
    let dir = policy_dir(Some(targets), Some(roles), Some(IDENTITIES));
    let policy = match Policy::load(dir.path()) {
        Ok(policy) => policy,
        Err(errors) => panic!("{errors}"),
    };
    let UpstreamAuth::KeyFile(path) = &policy.targets["old"].auth else {
        panic!("expected a key file");
    };
    assert!(path.is_absolute());
    assert!(path.ends_with("keys/old"));
    assert!(path.starts_with(dir.path()));
}

#[test]
fn every_mistake_is_reported_with_file_and_line() {
    let targets = r#"[targets.web1]
address = "127.0.0.1"
user = "deploy"
auth = "key"

[targets.grant]
address = "127.0.0.1:22"
user = "deploy"
key_file = "keys/grant"
host_key = "ssh-ed25519 not-base64!"
"#;
    let roles = r#"[roles.ops]
targets = [
  "web1",
  "web9",
]
exec = ["", "ls *", "ls; id"]
open = ["db:port"]
max_ttl = "15x"
approval = "sometimes"
"#;
    let identities = format!(
        "[identities.\"agent 7\"]\nkeys = [\"ssh-ed25519\"]\nroles = [\"ops\", \"nope\"]\n\n\
         [identities.a]\nkeys = [\"{KEY}\"]\nroles = []\n\n\
         [identities.b]\nkeys = [\"{KEY}\"]\nroles = []\n"
    );
    let dir = policy_dir(Some(targets), Some(roles), Some(&identities));
    let errors = load_errors(dir.path());
    assert_problems(
        &errors,
        &[
            (
                "targets.toml",
                Some(2),
                "target \"web1\": address \"127.0.0.1\" is not host:port",
            ),
            ("targets.toml", Some(4), "auth = \"key\" needs key_file"),
            ("targets.toml", Some(6), "\"grant\" is reserved"),
            (
                "targets.toml",
                Some(9),
                "key_file is only used with auth = \"key\"",
            ),
            (
                "targets.toml",
                Some(10),
                "host_key has a key blob that is not base64",
            ),
            (
                "roles.toml",
                Some(4),
                "role \"ops\": target \"web9\" is not in targets.toml",
            ),
            ("roles.toml", Some(6), "exec: command pattern \"\" is empty"),
            (
                "roles.toml",
                Some(6),
                "exec: command pattern \"ls; id\" has shell syntax ';' outside single quotes",
            ),
            (
                "roles.toml",
                Some(7),
                "open pattern \"db:port\" has a bad port",
            ),
            ("roles.toml", Some(8), "max_ttl \"15x\": unknown unit \"x\""),
            (
                "roles.toml",
                Some(9),
                "approval \"sometimes\" is not \"auto\" or \"manual\"",
            ),
            (
                "identities.toml",
                Some(1),
                "identity name \"agent 7\" contains ' '",
            ),
            (
                "identities.toml",
                Some(2),
                "key is not an OpenSSH public key",
            ),
            (
                "identities.toml",
                Some(3),
                "role \"nope\" is not in roles.toml",
            ),
            (
                "identities.toml",
                Some(10),
                "key is already held by identity \"a\"",
            ),
        ],
    );
    let first = errors.to_string();
    let expected = format!(
        "{}:2: target \"web1\": address",
        dir.path().join("targets.toml").display()
    );
    assert!(first.starts_with(&expected), "{first}");
    assert_eq!(first.lines().count(), 15);
}

#[test]
fn unknown_key_is_reported_at_its_line_and_other_files_are_still_checked() {
    let targets =
        "[targets.web1]\naddress = \"127.0.0.1:22\"\nuser = \"deploy\"\nadress = \"typo\"\n";
    let roles = "[roles.ops]\ntargets = [\"web1\", \"web9\"]\nmax_ttl = \"forever\"\n";
    let dir = policy_dir(Some(targets), Some(roles), Some(IDENTITIES));
    let errors = load_errors(dir.path());
    // web9 is not reported: with targets.toml unreadable, nothing can be
    // said about which targets exist.
    assert_problems(
        &errors,
        &[
            ("targets.toml", Some(4), "unknown field `adress`"),
            ("roles.toml", Some(3), "max_ttl \"forever\""),
        ],
    );
}

#[test]
fn toml_syntax_errors_and_missing_keys_are_reported_at_their_lines() {
    let targets = "[targets.web1]\naddress = \"127.0.0.1:22\"\nuser = deploy\n";
    let roles = "[roles.ops]\ntargets = []\n";
    let dir = policy_dir(Some(targets), Some(roles), Some(IDENTITIES));
    let errors = load_errors(dir.path());
    assert_problems(
        &errors,
        &[
            ("targets.toml", Some(3), "invalid string; expected"),
            ("roles.toml", Some(1), "missing field `max_ttl`"),
        ],
    );
}

#[test]
fn missing_files_are_each_reported() {
    let dir = policy_dir(None, None, None);
    let errors = load_errors(dir.path());
    assert_problems(
        &errors,
        &[
            ("targets.toml", None, "file is missing"),
            ("roles.toml", None, "file is missing"),
            ("identities.toml", None, "file is missing"),
        ],
    );
}

#[test]
fn addresses_must_be_host_and_port() {
    for (address, fine) in [
        ("db.internal:22", true),
        ("[::1]:22", true),
        ("[fe80::1]:2222", true),
        ("::1:22", false),
        ("[::1]", false),
        ("[not-v6]:22", false),
        ("host:0", false),
        ("host:65536", false),
        ("host:+22", false),
        (":22", false),
        ("host name:22", false),
    ] {
        let targets = format!("[targets.t]\naddress = \"{address}\"\nuser = \"u\"\n");
        let dir = policy_dir(Some(&targets), Some("[roles]\n"), Some("[identities]\n"));
        assert_eq!(Policy::load(dir.path()).is_ok(), fine, "{address}");
    }
}

#[test]
fn open_patterns_need_a_port_number_range_or_star() {
    for (pattern, fine) in [
        ("127.0.0.1:5432", true),
        ("db.internal:8000-8099", true),
        ("*:*", true),
        ("[::1]:5432", true),
        ("*.internal:443", true),
        ("db:9-1", false),
        ("db", false),
        ("db:", false),
        (":5432", false),
        ("db:http", false),
    ] {
        let roles = format!("[roles.r]\ntargets = []\nopen = [\"{pattern}\"]\nmax_ttl = \"1m\"\n");
        let dir = policy_dir(Some("[targets]\n"), Some(&roles), Some("[identities]\n"));
        assert_eq!(Policy::load(dir.path()).is_ok(), fine, "{pattern}");
    }
}

#[test]
fn names_that_would_confuse_ssh_are_rejected() {
    for (name, fine) in [
        ("web-1.prod_a", true),
        ("-oProxyCommand", false),
        ("web@1", false),
    ] {
        let targets = format!("[targets.\"{name}\"]\naddress = \"h:22\"\nuser = \"u\"\n");
        let dir = policy_dir(Some(&targets), Some("[roles]\n"), Some("[identities]\n"));
        assert_eq!(Policy::load(dir.path()).is_ok(), fine, "{name}");
    }
}

#[test]
fn parsing_texts_reports_exactly_what_loading_the_files_reports() {
    let targets = "[targets.web1]\naddress = \"127.0.0.1\"\nuser = \"deploy\"\nauth = \"key\"\nkey_file = \"keys/web1\"\n";
    let roles = "[roles.ops]\ntargets = [\n  \"web1\",\n  \"web9\",\n]\nmax_ttl = \"15x\"\n";
    let cases = [
        (TARGETS, ROLES, IDENTITIES),
        (targets, roles, IDENTITIES),
        (
            "[targets.web1]\nuser = deploy\n",
            ROLES,
            "[identities.a]\nroles = [\"nope\"]\n",
        ),
    ];
    for (targets, roles, identities) in cases {
        let dir = policy_dir(Some(targets), Some(roles), Some(identities));
        let loaded = Policy::load(dir.path());
        let parsed = Policy::parse(dir.path(), targets, roles, identities);
        assert_eq!(parsed, loaded, "{targets}\n{roles}\n{identities}");
    }
}

#[test]
fn parsed_problems_name_the_files_under_the_given_dir() {
    let dir = Path::new("/etc/portcullis/policy");
    let errors = match Policy::parse(dir, TARGETS, "[roles.ops]\n", IDENTITIES) {
        Ok(policy) => panic!("expected problems, loaded {policy:?}"),
        Err(errors) => errors,
    };
    assert_problems(
        &errors,
        &[("roles.toml", Some(1), "missing field `targets`")],
    );
    assert_eq!(errors.errors[0].file, dir.join("roles.toml"));
}

#[test]
fn review_is_a_bool_and_defaults_to_denied() {
    let identities = "[identities.agent-7]\nroles = [\"ops\"]\n\n[identities.alice]\nroles = [\"ops\"]\nreview = true\n";
    let dir = policy_dir(Some(TARGETS), Some(ROLES), Some(identities));
    let policy = Policy::load(dir.path()).unwrap();
    assert_eq!(policy.identities["agent-7"].review, Review::Denied);
    assert_eq!(policy.identities["alice"].review, Review::Allowed);

    let bad = "[identities.alice]\nroles = [\"ops\"]\nreview = \"yes\"\n";
    let dir = policy_dir(Some(TARGETS), Some(ROLES), Some(bad));
    let errors = load_errors(dir.path());
    assert_problems(&errors, &[("identities.toml", Some(3), "")]);
}

#[test]
fn no_target_may_be_named_review() {
    let targets = "[targets.review]\naddress = \"127.0.0.1:22201\"\nuser = \"deploy\"\n";
    let roles = "[roles.ops]\ntargets = [\"review\"]\nexec = [\"uptime\"]\nmax_ttl = \"15m\"\n";
    let dir = policy_dir(Some(targets), Some(roles), Some(IDENTITIES));
    let errors = load_errors(dir.path());
    assert_problems(
        &errors,
        &[("targets.toml", Some(1), "reserved for the web viewer")],
    );
}

#[test]
fn approve_needs_review() {
    let identities = "[identities.alice]\nroles = [\"ops\"]\nreview = true\napprove = true\n\n[identities.bob]\nroles = [\"ops\"]\nreview = true\n";
    let dir = policy_dir(Some(TARGETS), Some(ROLES), Some(identities));
    let policy = Policy::load(dir.path()).unwrap();
    assert_eq!(policy.identities["alice"].approve, Approver::Allowed);
    assert_eq!(policy.identities["bob"].approve, Approver::Denied);

    let bad = "[identities.carol]\nroles = [\"ops\"]\napprove = true\n";
    let dir = policy_dir(Some(TARGETS), Some(ROLES), Some(bad));
    let errors = load_errors(dir.path());
    assert_problems(
        &errors,
        &[(
            "identities.toml",
            Some(1),
            "approve = true needs review = true",
        )],
    );
}
