//! HTTP by hand for the web viewer's tests: one request per connection,
//! and signing in with a link from `ssh review@bastion`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{web_setup, Bastion, IdentityKey, Setup, ROLE};

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One HTTP/1.1 request; the server closes after each answer.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to web");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

pub fn get(port: u16, path: &str, cookie: Option<&str>) -> Response {
    let header = cookie.map(|c| format!("portcullis_session={c}"));
    let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Cookie", h.as_str())).collect();
    http(port, "GET", path, &headers, "")
}

/// Every event in the store, as `portcullis events --json` prints them.
pub fn all_events(b: &Bastion) -> Vec<serde_json::Value> {
    let out = b.cli_ok("events", &["--json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event line"))
        .collect()
}

pub fn sign_in(port: u16, path: &str) -> String {
    let answer = get(port, path, None);
    assert_eq!(answer.status, 303, "{}", answer.head);
    assert_eq!(answer.header("location").as_deref(), Some("/sessions"));
    let cookie = answer.header("set-cookie").expect("a cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let value = cookie
        .strip_prefix("portcullis_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("the cookie's value");
    value.to_owned()
}

/// A standard setup with `reviewer` (role ops, an identity key, review =
/// true) and the viewer on a free port.
pub fn reviewer_setup(reviewer: &str) -> (Setup, u16, IdentityKey) {
    let id = IdentityKey::generate();
    let setup = Setup::standard()
        .identity(reviewer, &[ROLE])
        .identity_key(reviewer, &id.line)
        .reviewer(reviewer);
    let (setup, port) = web_setup(setup);
    (setup, port, id)
}

/// The CSRF value of the page at `path`.
pub fn csrf_of(port: u16, path: &str, cookie: &str) -> String {
    get(port, path, Some(cookie))
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the CSRF field")
        .to_owned()
}

pub fn post_form(port: u16, path: &str, cookie: &str, origin: &str, form: &str) -> Response {
    let jar = format!("portcullis_session={cookie}");
    let headers = [
        ("Cookie", jar.as_str()),
        ("Origin", origin),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    http(port, "POST", path, &headers, form)
}
