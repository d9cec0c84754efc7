//! The reviewers' web viewer, end to end: a real `portcullis serve` and a
//! real `portcullis web` on one store; a link from `ssh review@bastion`
//! with an identity key; HTTP by hand over a TcpStream.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::Value;

const REVIEWER: &str = "alice";

/// Sends `request` as is; what came back before the connection ended
/// (a reset ends it too).
fn raw_exchange(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to web");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(request.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn a_reviewer_signs_in_with_an_ssh_key_and_reads_sessions() {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    let b = Bastion::start(setup);
    let web = b.start_web(port);
    let agent = b.granted_agent();
    assert_output(&agent.run("echo hello"), 0, "hello\n");
    assert_output(
        &agent.run("echo '<script>alert(1)</script>'"),
        0,
        "<script>alert(1)</script>\n",
    );
    // The client returns before the bastion commits the session's end.
    let sessions = eventually("both sessions ended", || {
        let sessions = sessions_json(&b);
        match sessions
            .as_array()
            .is_some_and(|all| all.iter().all(|s| !s["ended_at"].is_null()))
        {
            true => Ok(sessions),
            false => Err(sessions.to_string()),
        }
    });
    let last = sessions[1]["id"].as_i64().unwrap();

    // Nothing without the cookie.
    for path in ["/sessions", &format!("/sessions/{last}")] {
        let answer = get(web.port, path, None);
        assert_eq!(answer.status, 303, "{path}");
        assert_eq!(answer.header("location").as_deref(), Some("/signin"));
        assert!(!answer.body.contains("hello"));
    }
    for path in ["/api/sessions", &format!("/api/sessions/{last}")] {
        assert_eq!(get(web.port, path, None).status, 401, "{path}");
    }
    let forged = "0".repeat(64);
    assert_eq!(get(web.port, "/api/sessions", Some(&forged)).status, 401);
    assert_eq!(
        http(web.port, "POST", "/signout", &[], "csrf=x").status,
        401
    );

    let path = review_link(&b, &id, web.port);
    let cookie = sign_in(web.port, &path);
    // A link signs in once.
    let again = get(web.port, &path, None);
    assert_eq!(again.status, 403);
    assert_eq!(again.body.lines().count(), 1, "{}", again.body);

    let list = get(web.port, "/sessions", Some(&cookie));
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!("/sessions/{last}")),
        "{}",
        list.body
    );
    assert!(list.header("content-security-policy").is_some());

    let page = get(web.port, &format!("/sessions/{last}"), Some(&cookie));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page.body.contains("exec.allowed"), "{}", page.body);
    let serial = sessions[1]["cert_serial"].to_string();
    for field in [
        "identity:    agent-7",
        "task:        T-1",
        "client:",
        "ended:",
    ] {
        assert!(page.body.contains(field), "{field}: {}", page.body);
    }
    assert!(
        page.body.contains(&format!("serial {serial}")),
        "{}",
        page.body
    );
    assert!(page.body.contains("viewed by alice"), "{}", page.body);
    let first = sessions[0]["id"].as_i64().unwrap();
    let page = get(web.port, &format!("/sessions/{first}"), Some(&cookie));
    assert!(page.body.contains("echo hello"), "{}", page.body);
    assert!(page.body.contains("hello\n"), "{}", page.body);

    // The API's shapes are the CLI's (the list newest first).
    let api: Value =
        serde_json::from_str(&get(web.port, "/api/sessions", Some(&cookie)).body).unwrap();
    let mut cli = sessions.as_array().unwrap().clone();
    cli.reverse();
    assert_eq!(api, Value::Array(cli));
    let filtered = get(web.port, "/api/sessions?identity=nobody", Some(&cookie));
    assert_eq!(
        serde_json::from_str::<Value>(&filtered.body).unwrap(),
        Value::Array(vec![])
    );
    let shown: Value =
        serde_json::from_str(&get(web.port, &format!("/api/sessions/{last}"), Some(&cookie)).body)
            .unwrap();
    assert_eq!(shown, show_json(&b, last));

    let all = all_events(&b);
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["review.link_issued", "review.signed_in"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    let viewed: Vec<&Value> = all
        .iter()
        .filter(|e| e["kind"] == "review.viewed")
        .collect();
    assert_eq!(viewed.len(), 3, "{viewed:?}");
    assert!(viewed
        .iter()
        .all(|e| e["identity"] == REVIEWER && e["session"].is_null()));
    assert!(viewed.iter().any(|e| e["session_viewed"] == last));
    assert_eq!(json_of(&b, "verify", &["--json"])["ok"], true);

    // Sign-out: only same-origin, only with the page's CSRF value.
    let html = get(web.port, "/sessions", Some(&cookie)).body;
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the CSRF field")
        .to_owned();
    let jar = format!("portcullis_session={cookie}");
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let form = format!("csrf={csrf}");
    let evil = [
        ("Cookie", jar.as_str()),
        ("Origin", "http://evil.example"),
        form_type,
    ];
    assert_eq!(http(web.port, "POST", "/signout", &evil, &form).status, 403);
    let no_csrf = [("Cookie", jar.as_str()), form_type];
    assert_eq!(
        http(web.port, "POST", "/signout", &no_csrf, "csrf=00").status,
        403
    );
    assert_eq!(get(web.port, "/api/sessions", Some(&cookie)).status, 200);
    let origin = format!("http://127.0.0.1:{}", web.port);
    let ours = [
        ("Cookie", jar.as_str()),
        ("Origin", origin.as_str()),
        form_type,
    ];
    assert_eq!(http(web.port, "POST", "/signout", &ours, &form).status, 303);
    assert_eq!(get(web.port, "/api/sessions", Some(&cookie)).status, 401);
}

#[test]
fn only_reviewers_get_links_and_only_real_links_sign_in() {
    let (setup, port, reviewer) = reviewer_setup(REVIEWER);
    let agent_id = IdentityKey::generate();
    let b = Bastion::start(setup.identity_key(AGENT, &agent_id.line));
    let web = b.start_web(port);

    let out = ssh(&b, "review", &agent_id.key, None, "link");
    assert_eq!(out.code, 126, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.starts_with("portcullis: refused: "), "{out:?}");
    let refused: Vec<Value> = all_events(&b)
        .into_iter()
        .filter(|e| e["kind"] == "review.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["identity"], AGENT);

    // A key no identity holds is refused at authentication.
    let stranger = b.new_key();
    assert_eq!(ssh(&b, "review", &stranger, None, "link").code, 255);

    for path in [
        format!("/signin?token={}", "a".repeat(64)),
        "/signin?token=%3Cscript%3E".to_owned(),
    ] {
        let answer = get(web.port, &path, None);
        assert_eq!(answer.status, 403, "{path}");
        assert!(answer.header("set-cookie").is_none());
    }
    assert_eq!(get(web.port, "/signin", None).status, 200);

    // A real link past its minute is refused like an unknown one (aged in
    // the store rather than waited for).
    let reviewer_link = review_link(&b, &reviewer, web.port);
    let db = rusqlite::Connection::open(b.dir().join("portcullis.db")).unwrap();
    db.execute(
        "UPDATE review_links SET expires_at_us = created_at_us - 1 WHERE used = 0",
        [],
    )
    .unwrap();
    let expired = get(web.port, &reviewer_link, None);
    assert_eq!(expired.status, 403, "{}", expired.body);
    assert!(expired.header("set-cookie").is_none());

    // Peer input is bounded: a head over 16 KiB, a body over 4 KiB.
    let huge = "x".repeat(20 * 1024);
    let answer = raw_exchange(
        web.port,
        &format!("GET /signin HTTP/1.1\r\nHost: x\r\nX-Filler: {huge}\r\n\r\n"),
    );
    // 431, or the connection cut before the answer was read (the server
    // closing with unread bytes resets it): never the page.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    let body = format!("csrf={}", "0".repeat(5000));
    let answer = raw_exchange(
        web.port,
        &format!(
            "POST /signout HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
        "{answer}"
    );
}

#[test]
fn taking_review_away_shuts_the_reviewer_out() {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    let b = Bastion::start(setup.clone());
    let web = b.start_web(port);
    let cookie = sign_in(web.port, &review_link(&b, &id, web.port));
    assert_eq!(get(web.port, "/api/sessions", Some(&cookie)).status, 200);
    let pending = review_link(&b, &id, web.port);

    let mut without = setup;
    without.reviewers.clear();
    b.rewrite_policy(&without);
    // The browser session and the unspent link alike.
    assert_eq!(get(web.port, "/api/sessions", Some(&cookie)).status, 401);
    assert_eq!(get(web.port, "/sessions", Some(&cookie)).status, 303);
    let answer = get(web.port, &pending, None);
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.header("set-cookie").is_none());
    let refused: Vec<Value> = all_events(&b)
        .into_iter()
        .filter(|e| e["kind"] == "review.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["identity"], REVIEWER);
}

#[test]
fn a_suspended_reviewer_gets_no_link_and_is_shut_out() {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    let b = Bastion::start(setup);
    let web = b.start_web(port);
    let cookie = sign_in(web.port, &review_link(&b, &id, web.port));
    let pending = review_link(&b, &id, web.port);
    b.cli_ok("revoke", &["--identity", REVIEWER]);
    assert_eq!(get(web.port, "/api/sessions", Some(&cookie)).status, 401);
    assert_eq!(get(web.port, &pending, None).status, 403);
    let out = ssh(&b, "review", &id.key, None, "link");
    assert_eq!(out.code, 126, "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("suspended"), "{out:?}");
    b.cli_ok("reinstate", &[REVIEWER]);
    let cookie = sign_in(web.port, &review_link(&b, &id, web.port));
    assert_eq!(get(web.port, "/api/sessions", Some(&cookie)).status, 200);
}

#[test]
fn an_approver_approves_a_held_command_in_the_browser_and_others_cannot() {
    let approver_key = IdentityKey::generate();
    let reader_key = IdentityKey::generate();
    let setup = Setup::standard()
        .role(
            ROLE,
            Role::on(&[TARGET]).exec(&["echo *"]).ask(&["printf ..."]),
        )
        .identity(REVIEWER, &[ROLE])
        .identity_key(REVIEWER, &approver_key.line)
        .approver(REVIEWER)
        .identity("bob", &[ROLE])
        .identity_key("bob", &reader_key.line)
        .reviewer("bob");
    let (setup, port) = web_setup(setup);
    let b = Bastion::start(setup);
    let web = b.start_web(port);
    let origin = format!("http://127.0.0.1:{}", web.port);
    let agent = b.granted_agent();
    std::thread::scope(|s| {
        let waiting = run_in_background(s, &agent, "printf '<b>held</b>'");
        let id = eventually("a held command", || {
            let list = json_of(&b, "requests", &["--json"]);
            list[0]["id"].as_i64().ok_or_else(|| list.to_string())
        });
        let action = format!("/requests/{id}/approve");

        // A reviewer without approve = true reads, but cannot decide.
        let reader = sign_in(web.port, &review_link(&b, &reader_key, web.port));
        let page = get(web.port, "/requests", Some(&reader));
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("&lt;b&gt;held&lt;/b&gt;"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("<b>held</b>"), "{}", page.body);
        assert!(!page.body.contains(&action), "{}", page.body);
        let csrf = csrf_of(web.port, "/requests", &reader);
        let refused = post_form(web.port, &action, &reader, &origin, &format!("csrf={csrf}"));
        assert_eq!(refused.status, 403, "{}", refused.body);

        let cookie = sign_in(web.port, &review_link(&b, &approver_key, web.port));
        assert!(get(web.port, "/requests", Some(&cookie))
            .body
            .contains(&action));
        let csrf = csrf_of(web.port, "/requests", &cookie);
        // Cross-site, or without the session's CSRF value: refused.
        let evil = post_form(
            web.port,
            &action,
            &cookie,
            "http://evil.example",
            &format!("csrf={csrf}"),
        );
        assert_eq!(evil.status, 403);
        assert_eq!(
            post_form(web.port, &action, &cookie, &origin, "csrf=00").status,
            403
        );
        assert_eq!(json_of(&b, "requests", &["--json"])[0]["status"], "pending");

        let approved = post_form(web.port, &action, &cookie, &origin, &format!("csrf={csrf}"));
        assert_eq!(approved.status, 303, "{}", approved.body);
        let (out, _) = waiting.join().expect("the ssh thread");
        assert_output(&out, 0, "<b>held</b>");
        // Decided once: a second approval is refused.
        let again = post_form(web.port, &action, &cookie, &origin, &format!("csrf={csrf}"));
        assert_eq!(again.status, 409, "{}", again.body);
    });
    let approved: Vec<Value> = all_events(&b)
        .into_iter()
        .filter(|e| e["kind"] == "command.approved")
        .collect();
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["by"], format!("{REVIEWER} (web)"));
}

#[test]
fn downloads_verify_and_live_need_a_session_and_are_recorded() {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    let b = Bastion::start(setup);
    let web = b.start_web(port);
    assert_output(&b.granted_agent().run("echo hello"), 0, "hello\n");
    let session = *session_ids(&b).last().expect("a session");
    let routes = [
        format!("/sessions/{session}/asciicast"),
        format!("/sessions/{session}/transcript.json"),
        format!("/api/sessions/{session}/verify"),
        format!("/sessions/{session}/live?after=0"),
    ];
    for path in &routes {
        let answer = get(web.port, path, None);
        assert_eq!(answer.status, 401, "{path}");
        assert!(!answer.body.contains("hello"), "{path}");
    }
    // Only the embedded assets, by exact name.
    let script = get(web.port, "/assets/session.js", None);
    assert_eq!(script.status, 200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    for path in [
        "/assets/nope.js",
        "/assets/..%2f..%2fCargo.toml",
        "/assets/",
    ] {
        assert_eq!(get(web.port, path, None).status, 404, "{path}");
    }
    let csp = script.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");

    let cookie = sign_in(web.port, &review_link(&b, &id, web.port));
    let cast = get(web.port, &routes[0], Some(&cookie));
    assert_eq!(cast.status, 200);
    assert_eq!(
        cast.header("content-disposition").as_deref(),
        Some(format!("attachment; filename=\"session-{session}.cast\"").as_str())
    );
    let header: Value = serde_json::from_str(cast.body.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let exported = b.cli_ok("export", &[&session.to_string(), "--format", "json"]);
    let transcript = get(web.port, &routes[1], Some(&cookie));
    assert_eq!(transcript.body.as_bytes(), exported.stdout.as_slice());
    let verified: Value =
        serde_json::from_str(&get(web.port, &routes[2], Some(&cookie)).body).unwrap();
    assert_eq!(verified["ok"], true, "{verified}");

    // An ended session's live view sends its rows, then `end`, and closes.
    let live = get(web.port, &routes[3], Some(&cookie));
    assert_eq!(live.status, 200);
    assert!(live
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(live.body.contains("event: row"), "{}", live.body);
    assert!(live.body.contains("stdout| hello"), "{}", live.body);
    assert!(live.body.contains("event: end"), "{}", live.body);
    let after_all = get(
        web.port,
        &format!("{}&x=1", routes[3].replace("after=0", "after=999999")),
        Some(&cookie),
    );
    assert!(
        !after_all.body.contains("stdout| hello"),
        "{}",
        after_all.body
    );

    let forms: Vec<String> = all_events(&b)
        .iter()
        .filter(|e| e["kind"] == "review.viewed" && e["session_viewed"] == session)
        .filter_map(|e| e["form"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        forms,
        ["asciicast", "transcript", "live", "live"],
        "{forms:?}"
    );
}

#[test]
fn a_live_view_ends_when_its_reviewer_signs_out() {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    let setup = setup.role(
        ROLE,
        Role::on(&[TARGET]).exec(&["echo *"]).ask(&["printf ..."]),
    );
    let b = Bastion::start(setup);
    let web = b.start_web(port);
    let agent = b.granted_agent();
    let cookie = sign_in(web.port, &review_link(&b, &id, web.port));
    std::thread::scope(|s| {
        let waiting = run_in_background(s, &agent, "printf held");
        let request = eventually("a held command", || {
            let list = json_of(&b, "requests", &["--json"]);
            list[0]["id"].as_i64().ok_or_else(|| list.to_string())
        });
        let session = *session_ids(&b).last().expect("the waiting session");
        let path = format!("/sessions/{session}/live?after=0");
        let stream = std::thread::spawn({
            let cookie = cookie.clone();
            move || {
                let started = std::time::Instant::now();
                let answer = get(port, &path, Some(&cookie));
                (answer, started.elapsed())
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        let csrf = csrf_of(web.port, "/sessions", &cookie);
        let origin = format!("http://127.0.0.1:{}", web.port);
        let out = post_form(
            web.port,
            "/signout",
            &cookie,
            &origin,
            &format!("csrf={csrf}"),
        );
        assert_eq!(out.status, 303);
        let (answer, took) = stream.join().expect("the stream thread");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(answer.body.contains("command.held"), "{}", answer.body);
        assert!(!answer.body.contains("event: end"), "{}", answer.body);
        b.cli_ok("deny", &[&request.to_string()]);
        let _ = waiting.join();
    });
}
