//! The web viewer over TLS (`[web] tls_cert`, `tls_key`) and inside
//! `portcullis serve` (`[web] serve = true`), end to end: a certificate
//! made by the `openssl` CLI, requests made by `curl`.
mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use tempfile::TempDir;

const REVIEWER: &str = "alice";

/// A self-signed certificate for 127.0.0.1 and its key (mode 0600), in a
/// directory of their own.
struct Pem {
    cert: PathBuf,
    key: PathBuf,
    _dir: TempDir,
}

fn self_signed() -> Pem {
    let dir = tempdir();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        "openssl req",
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod 600 the key");
    Pem {
        cert,
        key,
        _dir: dir,
    }
}

/// A reviewer's setup with the viewer on a free port; over TLS with `pem`.
fn setup(pem: Option<&Pem>) -> (Setup, u16, IdentityKey) {
    let id = IdentityKey::generate();
    let setup = Setup::standard()
        .identity(REVIEWER, &[ROLE])
        .identity_key(REVIEWER, &id.line)
        .reviewer(REVIEWER);
    let (mut setup, port) = web_setup(setup);
    if let Some(pem) = pem {
        let path = |p: &Path| toml_str(&p.display().to_string());
        setup = setup
            .table_setting("web", "tls_cert", &path(&pem.cert))
            .table_setting("web", "tls_key", &path(&pem.key));
    }
    (setup, port, id)
}

/// `curl -i URL` trusting only `cert`: the whole answer, head and body.
fn curl(url: &str, cert: &Path) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--include", "--max-time", "10"])
        .arg("--cacert")
        .arg(cert)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answer's `Set-Cookie` value, if any.
fn set_cookie(answer: &str) -> Option<String> {
    answer.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("set-cookie")
            .then(|| value.trim().to_owned())
    })
}

/// `ssh review@bastion`: the one line it prints.
fn review_link(b: &Bastion, id: &IdentityKey) -> String {
    let out = ssh(b, "review", &id.key, None, "link");
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout_text().trim().to_owned()
}

/// Plain HTTP by hand; whatever came back before the connection ended.
fn plain_http(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to web");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("set a read timeout");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn a_tls_viewer_serves_https_only_with_a_secure_cookie_and_https_links() {
    let pem = self_signed();
    let (setup, port, id) = setup(Some(&pem));
    let b = Bastion::start(setup);
    let _web = b.start_web(port);

    let page = curl(&format!("https://127.0.0.1:{port}/signin"), &pem.cert);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("ssh review@"), "{page}");

    let plain = plain_http(port, "/signin");
    assert!(!plain.contains("HTTP/1.1 200"), "{plain:?}");
    assert!(!plain.contains("ssh review@"), "{plain:?}");

    let link = review_link(&b, &id);
    let prefix = format!("https://127.0.0.1:{port}/signin?token=");
    assert!(link.starts_with(&prefix), "{link:?}");
    let signed_in = curl(&link, &pem.cert);
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    let cookie = set_cookie(&signed_in).expect("a cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
}

#[test]
fn serve_with_web_serve_true_answers_the_viewer_itself() {
    let (setup, port, id) = setup(None);
    let b = Bastion::start(setup.table_setting("web", "serve", "true"));

    let page = plain_http(port, "/signin");
    assert!(page.starts_with("HTTP/1.1 200"), "{page:?}");
    let link = review_link(&b, &id);
    let path = link
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("not a link to the viewer: {link:?}"));
    let signed_in = plain_http(port, path);
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in:?}");
    // Plain HTTP: a Secure cookie would never come back.
    let cookie = set_cookie(&signed_in).expect("a cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[test]
fn a_key_file_others_may_read_refuses_the_start() {
    let pem = self_signed();
    let (setup, _port, _id) = setup(Some(&pem));
    let b = Bastion::start(setup);
    fs::set_permissions(&pem.key, fs::Permissions::from_mode(0o644)).expect("chmod 644 the key");
    let out = Command::new(bin())
        .arg("web")
        .arg("--config")
        .arg(&b.config)
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .expect("run portcullis web");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("tls_key")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("mode 0644") && errors[0].contains("chmod 600"),
        "{stderr}"
    );
}
