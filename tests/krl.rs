//! KRLs both ways: `portcullis krl` (and `[ca] write_krl`) give targets an
//! OpenSSH KRL of every revoked cert, so a target refuses a revoked task
//! cert even when reached around the bastion; `[ca] revoked_keys` makes the
//! bastion refuse what an operator's own KRL revokes, and refuse everything
//! when that KRL cannot be read.
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn keygen(args: &[&str], file: &Path) -> Output {
    Command::new("ssh-keygen")
        .args(args)
        .arg(file)
        .output()
        .expect("run ssh-keygen")
}

fn serial_of(agent: &Agent<'_>) -> String {
    let cert = agent.cert.as_ref().expect("a cert");
    let out = keygen(&["-L", "-f"], cert);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Serial: "))
        .unwrap_or_else(|| panic!("no serial in {text}"))
        .to_string()
}

#[test]
fn portcullis_krl_is_read_by_ssh_keygen_as_exactly_the_revoked_certs() {
    let b = Bastion::start(Setup::standard());
    let doomed = b.granted_agent();
    let spared = b.granted_agent();
    let external = b.signed_agent(&b.task_ca(), &CertSpec::standard().serial(0).key_id(AGENT));
    assert_output(&external.run("echo seen"), 0, "seen\n");

    b.cli_ok("revoke", &["--serial", &serial_of(&doomed)]);
    b.cli_ok("revoke", &["--fingerprint", &external.key.fingerprint()]);
    let krl = b.dir().join("out.krl");
    let out = b.cli_ok("krl", &["-o", krl.to_str().expect("utf-8 path")]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 revocation"),
        "{out:?}"
    );

    let listed = keygen(&["-Q", "-l", "-f"], &krl);
    assert!(listed.status.success(), "ssh-keygen -Q -l: {listed:?}");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&serial_of(&doomed)), "{listed}");
    assert!(openssh_says_revoked(
        &krl,
        doomed.cert.as_ref().expect("cert")
    ));
    assert!(openssh_says_revoked(
        &krl,
        external.cert.as_ref().expect("cert")
    ));
    assert!(!openssh_says_revoked(
        &krl,
        spared.cert.as_ref().expect("cert")
    ));
}

#[test]
fn a_target_with_the_written_krl_refuses_a_revoked_cert_reached_around_the_bastion() {
    let b = Bastion::start(Setup::standard().ca_setting("write_krl", "\"revoked.krl\""));
    let krl = b.dir().join("revoked.krl");
    assert!(krl.exists(), "serve writes the KRL at start");
    // A target that (wrongly, or for break-glass) trusts the task CA itself.
    let principals = b.dir().join("principals");
    fs::write(&principals, format!("{TARGET}\n")).expect("write principals");
    let around = Target::start_with(
        "around",
        &b.dir().join("ca/task_ca.pub"),
        &format!(
            "RevokedKeys {}\nAuthorizedPrincipalsFile {}\n",
            krl.display(),
            principals.display()
        ),
    );
    // A plain cert (no scope options: portcullis's own certs carry critical
    // options a plain sshd refuses anyway) from the task CA.
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().serial(77));
    let direct = |agent: &Agent<'_>| {
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .arg("-i")
            .arg(&agent.key.private)
            .arg("-o")
            .arg(format!(
                "CertificateFile={}",
                agent.cert.as_ref().expect("cert").display()
            ))
            .args(["-p", &around.port.to_string()])
            .arg(format!("{}@127.0.0.1", whoami()))
            .arg("echo around")
            .output()
            .expect("run ssh")
    };
    let before = direct(&agent);
    assert_eq!(
        String::from_utf8_lossy(&before.stdout),
        "around\n",
        "{before:?}"
    );

    let out = b.cli_ok("revoke", &["--serial", "77"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("revoked.krl"),
        "{out:?}"
    );
    let after = direct(&agent);
    assert!(
        !after.status.success(),
        "the target still let it in: {after:?}"
    );
    assert_ne!(String::from_utf8_lossy(&after.stdout), "around\n");
    let other = b.signed_agent(&b.task_ca(), &CertSpec::standard().serial(78));
    assert_eq!(String::from_utf8_lossy(&direct(&other).stdout), "around\n");
}

#[test]
fn revoked_keys_refuses_what_an_operators_krl_revokes_and_everything_when_unreadable() {
    let b = Bastion::start(Setup::standard().ca_setting("revoked_keys", "\"operator.krl\""));
    let krl = b.dir().join("operator.krl");
    let doomed = b.granted_agent();
    let spared = b.granted_agent();
    // No file yet: unreadable, so every cert is refused (fail closed).
    assert_cert_refused(&spared, "cannot be read");

    let spec = b.dir().join("krl.spec");
    fs::write(&spec, format!("serial: {}\n", serial_of(&doomed))).expect("write spec");
    let made = Command::new("ssh-keygen")
        .args(["-k", "-f"])
        .arg(&krl)
        .arg("-s")
        .arg(b.dir().join("ca/task_ca.pub"))
        .arg(&spec)
        .output()
        .expect("run ssh-keygen -k");
    assert!(made.status.success(), "ssh-keygen -k: {made:?}");

    assert_cert_refused(&doomed, "revoked by the KRL");
    assert_output(&spared.run("echo spared"), 0, "spared\n");

    fs::write(&krl, b"SSHKRL\n\0garbage").expect("corrupt the KRL");
    assert_cert_refused(&spared, "cannot be read");
}
