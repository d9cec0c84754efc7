//! The Debian package as an operator installs it: `dpkg -i`, the man
//! pages, completions and unit in place, and `portcullis check` passing as
//! the service user against the installed config. `scripts/test` builds
//! the package (`packaging/build-deb`) and names it in `PORTCULLIS_DEB`;
//! a plain `cargo test` has none and says so.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn as_root(program: &str) -> Command {
    let root = whoami() == "root";
    let mut cmd = Command::new(if root { program } else { "sudo" });
    if !root {
        cmd.arg(program);
    }
    cmd
}

#[test]
fn the_deb_installs_and_check_passes_as_the_service_user() {
    let Some(deb) = std::env::var_os("PORTCULLIS_DEB") else {
        eprintln!("no PORTCULLIS_DEB: scripts/test builds the package and runs this test");
        return;
    };
    run_ok(as_root("dpkg").arg("-i").arg(&deb), "dpkg -i");
    for file in [
        "/usr/bin/portcullis",
        "/usr/share/man/man1/portcullis.1.gz",
        "/usr/share/man/man1/portcullis-serve.1.gz",
        "/usr/share/man/man1/portcullis-reload.1.gz",
        "/usr/share/man/man1/portcullis-events.1.gz",
        "/usr/share/bash-completion/completions/portcullis",
        "/usr/share/zsh/vendor-completions/_portcullis",
        "/usr/share/fish/vendor_completions.d/portcullis.fish",
        "/etc/portcullis/portcullis.toml",
        "/etc/portcullis/ca/task_ca",
    ] {
        assert!(Path::new(file).exists(), "the package installs {file}");
    }
    let unit = [
        "/lib/systemd/system/portcullis.service",
        "/usr/lib/systemd/system/portcullis.service",
    ]
    .into_iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .expect("the systemd unit is installed");
    assert!(
        unit.contains("ExecReload=") && unit.contains("TimeoutStopSec="),
        "{unit}"
    );
    let page = run_ok(
        Command::new("zcat").arg("/usr/share/man/man1/portcullis-reload.1.gz"),
        "zcat",
    );
    assert!(
        String::from_utf8_lossy(&page.stdout).contains(".TH"),
        "a man page"
    );
    let bash = std::fs::read_to_string("/usr/share/bash-completion/completions/portcullis")
        .expect("bash completion");
    assert!(
        bash.contains("reload") && bash.contains("krl"),
        "completes the subcommands"
    );

    let check = run_ok(
        as_root("runuser")
            .args(["-u", "portcullis", "--", "/usr/bin/portcullis", "check"])
            .args(["--config", "/etc/portcullis/portcullis.toml"]),
        "portcullis check as the service user",
    );
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains(": ok"), "{said}");

    run_ok(
        as_root("dpkg").args(["--purge", "portcullis"]),
        "dpkg --purge",
    );
}
