//! The web viewer's sessions list end to end: filters by time and outcome,
//! the command search (literal whatever its syntax, escaped when shown),
//! and the lists of refused authentications and grant requests.
mod common;

use common::*;
use serde_json::Value;

const REVIEWER: &str = "alice";

fn api(port: u16, cookie: &str, query: &str) -> Value {
    let answer = get(port, &format!("/api/sessions?{query}"), Some(cookie));
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    serde_json::from_str(&answer.body).expect("a JSON answer")
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .map(|items| items.iter().filter_map(|s| s["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// Percent-encodes a query value (every byte outside the unreserved set).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => char::from(b).into(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_list_filters_searches_and_shows_refusals_and_requests() {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    let b = Bastion::start(setup);
    let web = b.start_web(port);
    assert_output(
        &b.granted_agent().run("echo needle-in-the-stack"),
        0,
        "needle-in-the-stack\n",
    );
    let refused = b.granted_agent().run("ls /etc/shadow");
    assert_ne!(refused.code, 0, "{refused:?}");
    let sessions = eventually("both sessions ended", || {
        let all = sessions_json(&b);
        match all.as_array() {
            Some(list) if list.len() == 2 && list.iter().all(|s| !s["ended_at"].is_null()) => {
                Ok(all.clone())
            }
            _ => Err(format!("{all:#}")),
        }
    });
    let (ran, denied) = (
        sessions[0]["id"].as_i64().unwrap(),
        sessions[1]["id"].as_i64().unwrap(),
    );
    let cookie = sign_in(web.port, &review_link(&b, &id, web.port));

    // Time range: from is inclusive, until exclusive; a date is a whole day.
    let second = encode(sessions[1]["started_at"].as_str().unwrap());
    assert_eq!(
        ids(&api(web.port, &cookie, &format!("from={second}"))),
        vec![denied]
    );
    assert_eq!(
        ids(&api(web.port, &cookie, &format!("until={second}"))),
        vec![ran]
    );
    let today = &sessions[0]["started_at"].as_str().unwrap()[..10];
    let day = format!("from={today}&until={today}");
    assert_eq!(ids(&api(web.port, &cookie, &day)), vec![denied, ran]);
    assert_eq!(
        ids(&api(web.port, &cookie, "until=2000-01-01")),
        Vec::<i64>::new()
    );

    // Outcome: both were closed by the client; none is open.
    assert_eq!(
        ids(&api(web.port, &cookie, "outcome=closed")),
        vec![denied, ran]
    );
    assert_eq!(
        ids(&api(web.port, &cookie, "outcome=open")),
        Vec::<i64>::new()
    );
    for bad in [
        "outcome=everything",
        "from=soon",
        "show=all",
        "show=refused&q=cat",
        "q=ls",
    ] {
        let answer = get(web.port, &format!("/api/sessions?{bad}"), Some(&cookie));
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
        assert_eq!(
            get(web.port, &format!("/sessions?{bad}"), Some(&cookie)).status,
            400
        );
    }

    // The search: a command that ran, and one that was refused.
    assert_eq!(ids(&api(web.port, &cookie, "q=needle")), vec![ran]);
    assert_eq!(ids(&api(web.port, &cookie, "q=shadow")), vec![denied]);
    let page = get(web.port, "/sessions?q=needle", Some(&cookie)).body;
    assert!(page.contains(&format!("/sessions/{ran}\"")), "{page}");
    assert!(!page.contains(&format!("/sessions/{denied}\"")), "{page}");
    for syntax in [
        "\"\"\"",
        "needle*",
        "needle OR shadow",
        "'; DROP TABLE sessions; --",
        "%%%",
        "a_b",
    ] {
        let query = format!("q={}", encode(syntax));
        assert_eq!(
            ids(&api(web.port, &cookie, &query)),
            Vec::<i64>::new(),
            "{syntax}"
        );
    }
    assert_eq!(
        ids(&api(web.port, &cookie, "q=%2Fetc%2Fshad")),
        vec![denied]
    );
    let typed = get(
        web.port,
        "/sessions?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        Some(&cookie),
    );
    assert_eq!(typed.status, 200);
    assert!(
        typed.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        typed.body
    );
    assert!(!typed.body.contains("<script>"), "{}", typed.body);

    // A refused authentication and a grant request, each in its own list.
    assert_eq!(b.agent_without_cert().run("echo hello").code, 255);
    let refusals = eventually("the refusal in the list", || {
        let list = api(web.port, &cookie, "show=refused");
        match list.as_array() {
            Some(events) if events.iter().any(|e| e["kind"] == "auth.refused") => Ok(list.clone()),
            _ => Err(format!("{list:#}")),
        }
    });
    let cli: Vec<Value> = String::from_utf8_lossy(&b.cli_ok("events", &["--json"]).stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let first = &refusals[0];
    assert_eq!(
        cli.iter().find(|e| e["seq"] == first["seq"]),
        Some(first),
        "the API's events are `events --json`'s"
    );
    let html = get(web.port, "/sessions?show=refused", Some(&cookie)).body;
    assert!(
        html.contains("auth.refused") && html.contains("127.0.0.1"),
        "{html}"
    );

    let task = b.new_key();
    let asked = id.request(&b, &task, "--role ops --ttl 5m --exec true");
    assert_eq!(asked.code, 0, "{asked:?}");
    let requests = api(web.port, &cookie, "show=requests");
    assert_eq!(requests[0]["kind"], "grant.requested", "{requests:#}");
    assert_eq!(requests[0]["identity"], REVIEWER);
    let html = get(web.port, "/sessions?show=requests", Some(&cookie)).body;
    assert!(html.contains("issued"), "{html}");
    assert!(html.contains(REVIEWER), "{html}");
    let other = api(web.port, &cookie, "show=requests&identity=nobody");
    assert_eq!(other, Value::Array(vec![]));
}
