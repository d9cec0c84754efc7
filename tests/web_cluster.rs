//! The web viewer of a cluster: replica b's viewer lists the cluster's
//! index (every replica's sessions, with their replica) and shows a
//! session recorded on replica a from the archive, checked against its
//! seal; a name no replica could have, or none has, is 404 with nothing
//! recorded; a session not archived yet gets a page saying so; a command
//! held through a is approved in b's viewer; a sign-in link or cookie of
//! a's viewer signs in nowhere else.
mod common;

use common::*;
use serde_json::Value;

const REVIEWER: &str = "alice";

/// The rig with `[web] listen` in its config (b's is a copy of a's), b's
/// viewer started and signed in through b: (rig, viewer, cookie).
fn rig_with_b_viewer() -> (Rig, WebViewer, String) {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    rig_of(setup, port, &id)
}

/// The rig of `setup` (with `[web] listen` on `port`), b's viewer
/// started and `id` signed in through b.
fn rig_of(setup: Setup, port: u16, id: &IdentityKey) -> (Rig, WebViewer, String) {
    let rig = Rig::with_archive(setup);
    let web = rig.b.start_web(port);
    let cookie = sign_in(web.port, &review_link_via(rig.lb.to[1], id, port));
    (rig, web, cookie)
}

/// A one-time sign-in link from the `review` login through `frontend`
/// (the replica behind it makes it): its path on the viewer at `port`.
fn review_link_via(frontend: u16, id: &IdentityKey, port: u16) -> String {
    let out = ssh_to_frontend(frontend, &id.key.private)
        .args(["review@::1", "link"])
        .output()
        .expect("run ssh");
    assert!(out.status.success(), "{out:?}");
    let link = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    link.strip_prefix(&format!("http://127.0.0.1:{port}"))
        .expect("a link to the viewer")
        .to_owned()
}

/// An ended session recorded on replica a (through its own frontend).
fn session_on_a(rig: &Rig, command: &str) -> i64 {
    session_on(rig, "a", command)
}

/// An ended session recorded on `replica` (`a` or `b`), through its own
/// frontend; its id (the first ended one of that replica's).
fn session_on(rig: &Rig, replica: &str, command: &str) -> i64 {
    let agent = rig.a.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    let frontend = rig.lb.to[usize::from(replica == "b")];
    let out = ssh_via(frontend, &agent.key.private, &cert, command);
    assert!(out.status.success(), "{out:?}");
    eventually("the session ended in the index", || {
        let all = cluster_sessions(&rig.a);
        all.iter()
            .find(|s| s["replica"] == replica && !s["ended_at"].is_null())
            .and_then(|s| s["id"].as_i64())
            .ok_or_else(|| format!("{all:#?}"))
    })
}

fn views(b: &Bastion) -> Vec<Value> {
    all_events(b)
        .into_iter()
        .filter(|e| e["kind"] == "review.viewed")
        .collect()
}

#[test]
fn a_session_of_replica_a_is_listed_and_read_on_replica_b_from_the_archive() {
    let (rig, web, cookie) = rig_with_b_viewer();
    let id = session_on_a(&rig, "echo recorded-on-a");
    let own = session_on(&rig, "b", "echo recorded-on-b");
    let path = format!("/replicas/a/sessions/{id}");

    let list = get(web.port, "/sessions", Some(&cookie));
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("<th>replica</th>"), "{}", list.body);
    // a's session opens from the archive, b's own from b's store.
    for link in [
        format!("<td>a</td><td><a href=\"{path}\">{id}</a>"),
        format!("<td>b</td><td><a href=\"/sessions/{own}\">{own}</a>"),
    ] {
        assert!(list.body.contains(&link), "{link}: {}", list.body);
    }
    let api: Value =
        serde_json::from_str(&get(web.port, "/api/sessions", Some(&cookie)).body).expect("json");
    let listed = api.as_array().expect("an array");
    assert!(
        listed.iter().any(|s| s["replica"] == "a" && s["id"] == id),
        "{api:#}"
    );
    let filtered = get(web.port, "/api/sessions?identity=nobody", Some(&cookie));
    assert_eq!(filtered.body.trim(), "[]");
    // The index has no commands to search: refused, not ignored.
    assert_eq!(get(web.port, "/sessions?q=echo", Some(&cookie)).status, 400);

    let page = eventually("the session archived", || {
        let page = get(web.port, &path, Some(&cookie));
        match page.status {
            200 => Ok(page),
            _ => Err(format!("{} {}", page.status, page.body)),
        }
    });
    for text in [
        "Session",
        "of replica a",
        "echo recorded-on-a",
        "recorded-on-a\n",
        "matches its seal",
    ] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    assert!(page.body.contains("viewed by alice"), "{}", page.body);
    let shown: Value =
        serde_json::from_str(&get(web.port, &format!("/api{path}"), Some(&cookie)).body)
            .expect("json");
    assert_eq!(
        shown,
        show_json(&rig.a, id),
        "b's viewer shows what a recorded"
    );
    let download = get(web.port, &format!("{path}/transcript.json"), Some(&cookie));
    assert_eq!(download.status, 200);
    let exported = rig
        .a
        .cli_ok("export", &[&id.to_string(), "--format", "json"]);
    assert_eq!(download.body.as_bytes(), exported.stdout.as_slice());

    // Every read is on b's record, naming the replica.
    let viewed = views(&rig.b);
    assert_eq!(viewed.len(), 3, "{viewed:#?}");
    assert!(viewed
        .iter()
        .all(|e| e["replica"] == "a" && e["session_viewed"] == id && e["identity"] == REVIEWER));
}

#[test]
fn a_name_no_replica_could_have_or_has_is_404_and_nothing_is_recorded() {
    let (rig, web, cookie) = rig_with_b_viewer();
    let id = session_on_a(&rig, "echo secret-of-a");
    for replica in ["..", "..%2Fx", "a%2F..", "%2E%2E", &"a".repeat(65), "a%00"] {
        let answer = get(
            web.port,
            &format!("/replicas/{replica}/sessions/{id}"),
            Some(&cookie),
        );
        assert_eq!(answer.status, 404, "{replica}");
        assert_eq!(answer.body, "no such replica\n", "{replica}");
    }
    let answer = get(
        web.port,
        &format!("/api/replicas/..%2Fx/sessions/{id}"),
        Some(&cookie),
    );
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body, "no such replica\n");
    for path in [
        format!("/replicas/zzz/sessions/{id}"),
        format!("/replicas/a/sessions/{}", id + 1000),
    ] {
        let answer = get(web.port, &path, Some(&cookie));
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.body, "no such session\n", "{path}");
    }
    assert!(
        views(&rig.b).is_empty(),
        "nothing was read, nothing recorded"
    );
}

#[test]
fn a_session_not_archived_yet_gets_a_page_saying_so() {
    let (rig, web, cookie) = rig_with_b_viewer();
    let agent = rig.a.granted_agent();
    let _held = Held::open(rig.lb.to[0], &agent);
    let id = rig.open_on("a")["id"].as_i64().expect("an id");
    let page = get(
        web.port,
        &format!("/replicas/a/sessions/{id}"),
        Some(&cookie),
    );
    assert_eq!(page.status, 404, "{}", page.body);
    let kind = page.header("content-type").unwrap_or_default();
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(
        page.body
            .contains(&format!("session {id} of replica a is not archived yet")),
        "{}",
        page.body
    );
    let api = get(
        web.port,
        &format!("/api/replicas/a/sessions/{id}"),
        Some(&cookie),
    );
    assert_eq!(api.status, 404);
    assert!(api
        .body
        .starts_with(&format!("session {id} of replica a is not archived yet")));
    assert!(
        views(&rig.b).is_empty(),
        "nothing was shown, nothing recorded"
    );
}

#[test]
fn a_command_held_through_replica_a_is_approved_in_replica_bs_viewer() {
    let id = IdentityKey::generate();
    let setup = Setup::standard()
        .role(
            ROLE,
            Role::on(&[TARGET]).exec(&["echo *"]).ask(&["printf ..."]),
        )
        .limit("held_command_wait", "\"1s\"")
        .identity(REVIEWER, &[ROLE])
        .identity_key(REVIEWER, &id.line)
        .approver(REVIEWER);
    let (setup, port) = web_setup(setup);
    let (rig, web, cookie) = rig_of(setup, port, &id);
    let agent = rig.a.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    let held = ssh_via(rig.lb.to[0], &agent.key.private, &cert, "printf web-%s 7");
    assert_eq!(held.status.code(), Some(75), "{held:?}");
    let request = json_of(&rig.b, "requests", &["--json"])[0]["id"]
        .as_i64()
        .expect("the hold, listed on b");
    let action = format!("/requests/{request}/approve");
    let page = get(web.port, "/requests", Some(&cookie));
    assert!(page.body.contains(&action), "{}", page.body);
    // Its session is a's: the link opens it from the archive.
    assert!(
        page.body.contains("href=\"/replicas/a/sessions/"),
        "{}",
        page.body
    );
    let csrf = csrf_of(web.port, "/requests", &cookie);
    let origin = format!("http://127.0.0.1:{}", web.port);
    let approved = post_form(web.port, &action, &cookie, &origin, &format!("csrf={csrf}"));
    assert_eq!(approved.status, 303, "{}", approved.body);
    let ran = ssh_via(rig.lb.to[0], &agent.key.private, &cert, "printf web-%s 7");
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "web-7", "{ran:?}");
    let again = post_form(web.port, &action, &cookie, &origin, &format!("csrf={csrf}"));
    assert_eq!(again.status, 409, "decided once: {}", again.body);
}

#[test]
fn a_sign_in_made_on_one_replicas_viewer_signs_in_nowhere_else() {
    let (setup, port, id) = reviewer_setup(REVIEWER);
    let rig = Rig::start(setup);
    // a's viewer, then b's on the same address (one config, copied).
    let (cookie_of_a, unused_link_of_a) = {
        let web_a = rig.a.start_web(port);
        let cookie = sign_in(web_a.port, &review_link_via(rig.lb.to[0], &id, port));
        assert_eq!(get(web_a.port, "/sessions", Some(&cookie)).status, 200);
        (cookie, review_link_via(rig.lb.to[0], &id, port))
    };
    let web_b = rig.b.start_web(port);
    let page = get(web_b.port, "/api/sessions", Some(&cookie_of_a));
    assert_ne!(page.status, 200, "a's cookie on b: {}", page.body);
    let link = get(web_b.port, &unused_link_of_a, None);
    assert_eq!(link.status, 403, "a's link on b: {}", link.body);
    assert!(link.header("set-cookie").is_none());
    // b's own sign-in works.
    let cookie = sign_in(web_b.port, &review_link_via(rig.lb.to[1], &id, port));
    assert_eq!(get(web_b.port, "/api/sessions", Some(&cookie)).status, 200);
}

#[test]
fn a_forged_archived_object_is_refused_by_the_viewer_and_nothing_of_it_is_shown() {
    let (rig, web, cookie) = rig_with_b_viewer();
    let id = session_on_a(&rig, "echo recorded-on-a");
    let path = format!("/replicas/a/sessions/{id}");
    eventually("the session archived", || {
        let page = get(web.port, &path, Some(&cookie));
        (page.status == 200)
            .then_some(())
            .ok_or_else(|| format!("{} {}", page.status, page.body))
    });
    let s3 = rig.s3.as_ref().expect("the archive");
    let key = format!("cluster/sessions/a/{id}.json");
    let forged = String::from_utf8_lossy(&s3.get(&key)).replace("recorded-on-a", "recorded-on-X");
    s3.overwrite(&key, forged.as_bytes());
    for route in [
        path.clone(),
        format!("/api{path}"),
        format!("{path}/transcript.json"),
        format!("{path}/asciicast"),
    ] {
        let answer = get(web.port, &route, Some(&cookie));
        assert_eq!(answer.status, 502, "{route}: {}", answer.body);
        assert!(
            answer.body.contains("does not match its seal"),
            "{route}: {}",
            answer.body
        );
        assert!(
            !answer.body.contains("recorded-on-X"),
            "{route}: {}",
            answer.body
        );
    }
}
