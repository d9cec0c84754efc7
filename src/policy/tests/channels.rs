//! Role options beyond commands: `sftp`, `sftp_paths`, `listen`, `capture`.

use crate::policy::{ListenAddress, Policy};

fn load(role_extra: &str) -> Result<Policy, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
    write(
        "targets.toml",
        "[targets.web1]\naddress = \"h:22\"\nuser = \"u\"\n",
    )
    .map_err(|e| e.to_string())?;
    write(
        "roles.toml",
        &format!("[roles.r]\ntargets = [\"web1\"]\nmax_ttl = \"1m\"\n{role_extra}"),
    )
    .map_err(|e| e.to_string())?;
    write("identities.toml", "[identities.a]\nroles = [\"r\"]\n").map_err(|e| e.to_string())?;
    Policy::load(dir.path()).map_err(|e| e.to_string())
}

#[test]
fn nothing_beyond_commands_is_granted_by_default() {
    let policy = load("").unwrap();
    let grants = &policy.roles["r"].channels;
    assert!(grants.sftp.is_none() && grants.listen.is_empty() && !grants.capture);
}

#[test]
fn sftp_listen_and_capture_are_read() {
    let policy = load(
        "sftp = true\nsftp_paths = [\"/srv/up\", \"/home/*/x\"]\nlisten = [\"127.0.0.1:8080\"]\ncapture = true\n",
    )
    .unwrap();
    let grants = &policy.roles["r"].channels;
    let paths = grants.sftp.as_ref().unwrap();
    assert!(paths.allows("/srv/up/a/b") && paths.allows("/home/u/x"));
    assert!(!paths.allows("/srv") && !paths.allows("/home/u/y"));
    assert_eq!(
        grants.listen,
        [ListenAddress::parse("127.0.0.1:8080").unwrap()]
    );
    assert!(grants.capture);
}

#[test]
fn bad_channel_options_are_reported() {
    for (extra, word) in [
        ("sftp = true\nsftp_paths = [\"relative\"]\n", "not absolute"),
        ("sftp = true\nsftp_paths = [\"/a/../b\"]\n", ". or .."),
        ("sftp_paths = [\"/srv\"]\n", "only used with sftp = true"),
        ("listen = [\"*:8080\"]\n", "listen address"),
        ("listen = [\"127.0.0.1:0\"]\n", "listen address"),
        ("listen = [\"localhost:80\"]\n", "listen address"),
    ] {
        let error = load(extra).expect_err(extra);
        assert!(error.contains(word), "{extra}: {error}");
    }
}
