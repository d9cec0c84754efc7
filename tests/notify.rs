//! `[notify]`: `serve` POSTs each grant request that awaits an operator to
//! a webhook, signed with HMAC-SHA256 over `TIMESTAMP.BODY`; a failed
//! delivery is retried with a back-off (not once the request is decided)
//! and recorded as `notify.failed`; a receiver that is down delays no
//! request; a secret others can read refuses the start.
mod common;

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tempfile::TempDir;

use common::*;

const SECRET: &str = "5f0c1e9a7b3d4c2e8f6a1b0d9c7e5a3f";
/// A second role of the agent that needs no approval.
const AUTO_ROLE: &str = "look";

/// One request as the receiver read it.
#[derive(Clone, Debug)]
struct Received {
    request_line: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1: records each request and
/// answers with the next status of its script (200 once it runs out).
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let port = listener.local_addr().expect("its address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_by, stop_by) = (seen.clone(), stop.clone());
        let mut script: VecDeque<u16> = script.iter().copied().collect();
        thread::spawn(move || {
            while !stop_by.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let status = script.pop_front().unwrap_or(200);
                if let Some(received) = serve_one(stream, status) {
                    seen_by.lock().expect("receiver lock").push(received);
                }
            }
        });
        Receiver { port, seen, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().expect("receiver lock").clone()
    }

    /// Waits for at least `n` requests.
    fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            if Instant::now() > deadline {
                panic!("{} of {n} requests within {within:?}: {seen:?}", seen.len());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one request (headers, then a Content-Length body) and answers.
fn serve_one(stream: TcpStream, status: u16) -> Option<Received> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let answer =
        format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let _ = stream.write_all(answer.as_bytes());
    Some(Received {
        request_line: request_line.trim_end().to_string(),
        headers,
        body,
        at: Instant::now(),
    })
}

/// The secret file, mode 0600, in a directory of the test's own.
fn secret_file() -> (TempDir, PathBuf) {
    let dir = tempdir();
    let path = dir.path().join("notify.secret");
    fs::write(&path, format!("{SECRET}\n")).expect("write the secret");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod the secret");
    (dir, path)
}

/// The standard world with `ops` needing approval, an auto-approved second
/// role, the agent's identity key, and `[notify]` to `url`.
fn notify_setup(id: &IdentityKey, url: &str, secret: &Path) -> Setup {
    Setup::standard()
        .role(
            ROLE,
            Role::on(&[TARGET]).exec(STANDARD_EXEC).approval("manual"),
        )
        .role(AUTO_ROLE, Role::on(&[TARGET]).exec(&["echo *"]))
        .identity(AGENT, &[ROLE, AUTO_ROLE])
        .identity_key(AGENT, &id.line)
        .table_setting("notify", "url", &toml_str(url))
        .table_setting(
            "notify",
            "secret_file",
            &toml_str(&secret.to_string_lossy()),
        )
}

/// A request of the manual role that stops waiting after a second.
fn request_pending(b: &Bastion, id: &IdentityKey) -> SshOutput {
    let task = b.new_key();
    let out = id.request(
        b,
        &task,
        "--role ops --ttl 5m --task T-9 --reason 'restart nginx' --wait 1",
    );
    assert_eq!(out.code, 2, "pending: {out:?}");
    out
}

fn pending_id(b: &Bastion) -> i64 {
    let list = json_of(b, "requests", &["--json"]);
    list[0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pending request: {list}"))
}

fn verify_signature(received: &Received) {
    let timestamp = received.header("x-portcullis-timestamp");
    let seconds: u64 = timestamp.parse().expect("unix seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert!(
        now.abs_diff(seconds) < 120,
        "timestamp {seconds}, now {now}"
    );
    let signature = received.header("x-portcullis-signature");
    let hex_mac = signature
        .strip_prefix("sha256=")
        .unwrap_or_else(|| panic!("not sha256=HEX: {signature}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("an HMAC key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    mac.verify_slice(&hex::decode(hex_mac).expect("hex"))
        .unwrap_or_else(|_| panic!("the signature does not verify: {signature}"));
}

#[test]
fn a_pending_request_is_posted_signed_and_an_auto_approved_one_is_not() {
    let receiver = Receiver::start(&[]);
    let (_secret_dir, secret) = secret_file();
    let id = IdentityKey::generate();
    let b = Bastion::start(notify_setup(&id, &receiver.url(), &secret));
    let auto = id.request(&b, &b.new_key(), &format!("--role {AUTO_ROLE} --ttl 5m"));
    assert_eq!(auto.code, 0, "auto-approved: {auto:?}");
    request_pending(&b, &id);
    let request = pending_id(&b);

    let received = receiver.wait_for(1, Duration::from_secs(15)).remove(0);
    assert_eq!(received.request_line, "POST /hook HTTP/1.1");
    assert_eq!(received.header("content-type"), "application/json");
    verify_signature(&received);
    let body = received.json();
    assert_eq!(body["kind"], "grant.requested", "{body:#}");
    assert_eq!(body["request"], request, "{body:#}");
    assert_eq!(body["identity"], AGENT);
    assert_eq!(body["role"], ROLE);
    assert_eq!(body["task"], "T-9");
    assert_eq!(body["reason"], "restart nginx");
    assert_eq!(body["approve"], format!("portcullis approve {request}"));
    assert!(body["at"].as_str().is_some_and(|at| at.ends_with('Z')));

    // `event` is the event as `events --json` prints it.
    let seq = body["seq"].as_i64().expect("the event's seq");
    let out = b.cli_ok("events", &["--json", "--after", &(seq - 1).to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line: Value = serde_json::from_str(text.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(body["event"], line);

    // The auto-approved request came first and was not posted.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.seen().len(), 1, "{:?}", receiver.seen());
    assert!(stored_events(&b, "notify.failed").is_empty());
}

#[test]
fn a_failed_delivery_is_retried_and_recorded_as_notify_failed() {
    let receiver = Receiver::start(&[500, 200]);
    let (_secret_dir, secret) = secret_file();
    let id = IdentityKey::generate();
    let b = Bastion::start(notify_setup(&id, &receiver.url(), &secret));
    request_pending(&b, &id);
    let request = pending_id(&b);

    let seen = receiver.wait_for(2, Duration::from_secs(20));
    assert_eq!(seen[0].body, seen[1].body, "the same notice again");
    verify_signature(&seen[1]);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "a back-off first: {gap:?}"
    );
    let seq = seen[0].json()["seq"].as_i64().expect("seq");

    let failed = wait_for_stored_event(&b, "notify.failed", |_| true);
    assert_eq!(failed["event_kind"], "grant.requested", "{failed:#}");
    assert_eq!(failed["event_seq"], seq);
    assert_eq!(failed["request_id"], request);
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["reason"], "HTTP 500");
    assert_eq!(failed["retry_in_secs"], 1);
    assert_eq!(failed["session"], Value::Null);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        stored_events(&b, "notify.failed").len(),
        1,
        "the second attempt succeeded"
    );
    assert_eq!(receiver.seen().len(), 2);
    b.cli_ok("verify", &[]);
}

#[test]
fn a_request_decided_meanwhile_is_not_retried() {
    let receiver = Receiver::start(&[500; 8]);
    let (_secret_dir, secret) = secret_file();
    let id = IdentityKey::generate();
    let b = Bastion::start(notify_setup(&id, &receiver.url(), &secret));
    request_pending(&b, &id);
    let request = pending_id(&b);
    let first = receiver.wait_for(1, Duration::from_secs(15)).remove(0);
    b.cli_ok("approve", &[&request.to_string()]);
    // Attempt 2 would be 1 s after the first, attempt 3 after 3 s.
    while first.at.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(100));
    }
    let seen = receiver.seen();
    assert!(seen.len() <= 2, "retried after the approval: {seen:?}");
    assert!(b.log().contains("not retried"), "{}", b.log());
}

#[test]
fn a_receiver_that_is_down_delays_nothing_and_failures_are_recorded() {
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    let (_secret_dir, secret) = secret_file();
    let id = IdentityKey::generate();
    let b = Bastion::start(notify_setup(&id, &closed, &secret));
    let started = Instant::now();
    request_pending(&b, &id);
    assert_output(&b.granted_agent().run("echo unaffected"), 0, "unaffected\n");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the request and a session went on as without notify: {:?}",
        started.elapsed()
    );
    let request = pending_id(&b);
    let failed = wait_for_stored_event(&b, "notify.failed", |e| e["attempt"] == 1);
    assert_eq!(failed["request_id"], request, "{failed:#}");
    assert_eq!(failed["reason"], "connection refused", "{failed:#}");
    let log = b.log();
    assert!(log.contains("notify: delivery failed"), "{log}");
    assert!(!log.contains(SECRET), "the secret is never logged");
    assert!(!log.contains("/hook"), "nor the URL's path");
}

#[test]
fn a_secret_others_can_read_refuses_the_start() {
    let (_secret_dir, secret) = secret_file();
    let id = IdentityKey::generate();
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let b = Bastion::start(notify_setup(&id, &url, &secret));
    b.cli_ok("check", &[]);
    b.kill9();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod 644");

    let check = b.cli("check", &[]);
    assert!(!check.status.success());
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains("chmod 600"), "{said}");

    let log = b.dir().join("refused-start.log");
    let mut serve = Daemon::spawn(
        std::process::Command::new(bin())
            .arg("serve")
            .arg("--config")
            .arg(&b.config)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .env_remove("PORTCULLIS_CONFIG"),
        &log,
    );
    let status = serve.wait_exit(Duration::from_secs(10));
    let said = fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {said}");
    assert!(
        said.contains("mode 0644") && said.contains("chmod 600"),
        "{said}"
    );
    assert!(!said.contains(SECRET));
}

#[test]
fn a_held_command_is_posted_with_its_command_and_how_to_decide_it() {
    let receiver = Receiver::start(&[]);
    let (_secret_dir, secret) = secret_file();
    let id = IdentityKey::generate();
    let b = Bastion::start(
        notify_setup(&id, &receiver.url(), &secret)
            .role(
                AUTO_ROLE,
                Role::on(&[TARGET]).exec(&["echo *"]).ask(&["printf ..."]),
            )
            .limit("held_command_wait", "\"1s\""),
    );
    let key = b.new_key();
    let cert = grant(&b, AGENT, AUTO_ROLE, "10m", &key, Some("T-3"));
    let agent = Agent {
        bastion: &b,
        key,
        cert: Some(cert),
        login: TARGET.to_string(),
        via_ssh_agent: false,
    };
    assert_eq!(agent.run("printf held").code, 75);
    let received = receiver.wait_for(1, Duration::from_secs(15)).remove(0);
    verify_signature(&received);
    let body = received.json();
    assert_eq!(body["kind"], "command.held", "{body:#}");
    assert_eq!(body["command"], "printf held");
    assert_eq!(body["target"], TARGET);
    assert_eq!(body["identity"], AGENT);
    assert_eq!(body["task"], "T-3");
    let request = body["request"].as_i64().expect("the request id");
    assert_eq!(body["approve"], format!("portcullis approve {request}"));
    assert!(body["session"].as_i64().is_some(), "{body:#}");
    assert_eq!(body["event"]["kind"], "command.held");
}
