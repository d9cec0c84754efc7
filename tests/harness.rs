//! The harness's own pieces, straight against a plain sshd (no bastion):
//! target sshd config, ssh-keygen certs, the ssh client invocation, the sshd
//! log parser. When these fail the machine is at fault (sshd, ssh-keygen,
//! /run/sshd), not portcullis. `--nocapture` prints the timings.
mod common;

use common::*;
use std::time::Instant;

struct Direct {
    ca: CaKey,
    target: Target,
    dir: tempfile::TempDir,
}

impl Direct {
    fn start() -> Direct {
        let ca = CaKey::generate("upstream_ca");
        let target = Target::start("web1", &ca.public);
        Direct {
            ca,
            target,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn key(&self, name: &str, spec: &CertSpec) -> (AgentKey, std::path::PathBuf) {
        let key = AgentKey::generate(self.dir.path(), name);
        let cert = spec.sign(&self.ca.private, &key);
        (key, cert)
    }

    fn user_spec(&self) -> CertSpec {
        CertSpec::standard()
            .key_id("session-42 agent-7")
            .principals(&[&whoami()])
    }

    fn ssh(
        &self,
        key: &AgentKey,
        cert: Option<&std::path::Path>,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> SshOutput {
        let user = whoami();
        SshCall {
            port: self.target.port,
            host_key: &self.target.host_key,
            login: &user,
            key: &key.private,
            cert,
            command,
            stdin,
            via_ssh_agent: false,
        }
        .run()
    }

    fn ssh_via_agent(&self, key: &AgentKey, command: &str) -> SshOutput {
        let user = whoami();
        SshCall {
            port: self.target.port,
            host_key: &self.target.host_key,
            login: &user,
            key: &key.private,
            cert: None,
            command,
            stdin: None,
            via_ssh_agent: true,
        }
        .run()
    }
}

#[test]
fn sshd_accepts_a_ca_signed_cert_and_runs_the_command() {
    let t0 = Instant::now();
    let d = Direct::start();
    let started = t0.elapsed();
    let (key, cert) = d.key("k", &d.user_spec().serial(77));
    let t1 = Instant::now();
    let out = d.ssh(&key, Some(&cert), "echo ok", None);
    let one_exec = t1.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, b"ok\n", "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");

    let expected = CertLogin {
        user: whoami(),
        key_id: "session-42 agent-7".into(),
        serial: 77,
    };
    assert_eq!(d.target.cert_logins(), vec![expected], "{}", d.target.log());

    let mut execs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = d.ssh(&key, Some(&cert), "echo ok", None);
        execs.push(t.elapsed());
        assert_eq!(out.code, 0, "{out:?}");
    }
    execs.sort();
    eprintln!(
        "TIMING ca+hostkey+sshd start: {started:?}; first ssh exec: {one_exec:?}; median of 5 more: {:?}",
        execs[2]
    );
}

#[test]
fn exit_codes_stderr_and_large_stdin_pass_through_sshd() {
    let d = Direct::start();
    let (key, cert) = d.key("k", &d.user_spec());
    let exit3 = script(d.dir.path(), "exit3", "exit 3");

    assert_eq!(d.ssh(&key, Some(&cert), "false", None).code, 1);
    assert_eq!(
        d.ssh(&key, Some(&cert), exit3.to_str().unwrap(), None).code,
        3
    );

    let out = d.ssh(&key, Some(&cert), "echo out; echo err >&2", None);
    assert_eq!(
        (out.code, out.stdout.as_slice(), out.stderr.as_str()),
        (0, &b"out\n"[..], "err\n")
    );

    let input = noise(8 << 20);
    let t = Instant::now();
    let out = d.ssh(&key, Some(&cert), "cat", Some(&input));
    eprintln!("TIMING 8 MiB through cat, direct: {:?}", t.elapsed());
    assert_eq!(out.code, 0);
    assert!(
        out.stdout == input,
        "8 MiB round trip differs ({} bytes back)",
        out.stdout.len()
    );
}

#[test]
fn plain_sshd_refuses_bad_certs_as_the_harness_builds_them() {
    let d = Direct::start();
    for (name, spec) in [
        ("expired", d.user_spec().validity("-30m:-20m")),
        ("not_yet_valid", d.user_spec().validity("+20m:+30m")),
        (
            "wrong_principal",
            d.user_spec().principals(&["someone-else"]),
        ),
        ("no_principals", d.user_spec().principals(&[])),
        ("host_cert", d.user_spec().host_cert()),
        ("exec_critical", d.user_spec().exec(&["echo *"])),
        (
            "source_address",
            d.user_spec().option("source-address=10.9.9.9/32"),
        ),
    ] {
        let (key, cert) = d.key(name, &spec);
        let out = d.ssh(&key, Some(&cert), "echo ok", None);
        assert_eq!(out.code, 255, "{name}: {out:?}");
        assert!(out.stderr.contains("Permission denied"), "{name}: {out:?}");
    }
    // A cert from an unknown CA, and no cert at all.
    let other = CaKey::generate("other");
    let key = AgentKey::generate(d.dir.path(), "wrong_ca");
    let cert = d.user_spec().sign(&other.private, &key);
    assert_eq!(d.ssh(&key, Some(&cert), "echo ok", None).code, 255);
    let key = AgentKey::generate(d.dir.path(), "plain");
    assert_eq!(d.ssh(&key, None, "echo ok", None).code, 255);
    // force-command replaces the client's command.
    let (key, cert) = d.key("forced", &d.user_spec().option("force-command=echo forced"));
    let out = d.ssh(&key, Some(&cert), "echo mine", None);
    assert_eq!(out.stdout, b"forced\n", "{out:?}");
    // From a file ssh skips a host cert; through an agent it offers it.
    let (key, _) = d.key("host_via_agent", &d.user_spec().host_cert());
    let out = d.ssh_via_agent(&key, "echo ok");
    assert_eq!(out.code, 255, "{out:?}");
    // And a user cert through the agent works.
    let (key, _) = d.key("user_via_agent", &d.user_spec());
    let out = d.ssh_via_agent(&key, "echo ok");
    assert_eq!(out.stdout, b"ok\n", "{out:?}");

    let log = d.target.log();
    assert!(log.contains("Certificate invalid: expired"), "{log}");
    assert!(log.contains("not a user certificate"), "{log}");
    assert!(log.contains("Certificate invalid: not yet valid"), "{log}");
}

#[test]
fn stopped_target_and_replaced_host_key_fail_the_client() {
    let mut d = Direct::start();
    let (key, cert) = d.key("k", &d.user_spec());
    let pinned = d.target.host_key.clone();
    let port = d.target.port;

    d.target.replace_with_new_host_key();
    assert_eq!(d.target.port, port);
    assert_ne!(d.target.host_key, pinned);
    let user = whoami();
    let out = SshCall {
        port,
        host_key: &pinned,
        login: &user,
        key: &key.private,
        cert: Some(&cert),
        command: "echo ok",
        stdin: None,
        via_ssh_agent: false,
    }
    .run();
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr.contains("IDENTIFICATION HAS CHANGED")
            || out.stderr.contains("verification failed"),
        "{out:?}"
    );
    assert!(!d.target.log().contains("Accepted"), "{}", d.target.log());

    d.target.stop();
    let out = d.ssh(&key, Some(&cert), "echo ok", None);
    assert_eq!(out.code, 255, "{out:?}");
}
