//! The web viewer's list queries: outcome and time filters, the command
//! search (literal, whatever its syntax), refusals and grant requests.

use super::{new_session, reader, temp_store};
use crate::audit::Event;
use crate::audit::{EventFilter, Outcome, Reader, SessionFilter, SessionId, Store, INTERRUPTED};

fn ids(r: &Reader, filter: &SessionFilter) -> Vec<SessionId> {
    r.page_sessions(filter, None, 50)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect()
}

fn searching(text: &str) -> SessionFilter {
    SessionFilter {
        text: Some(text.into()),
        ..SessionFilter::default()
    }
}

fn exec(command: &str) -> Event {
    Event::ExecAllowed {
        command: command.into(),
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    }
}

/// Three sessions: one ran a command, one had a line observed, one was
/// refused a command full of FTS and SQL syntax.
async fn searched_store(store: &Store) -> [SessionId; 3] {
    let ran = store.begin_session(new_session("a", "web1")).await.unwrap();
    store
        .record(Some(ran), Some(0), exec("grep -r Needle /srv"))
        .await
        .unwrap();
    let seen = store.begin_session(new_session("b", "web1")).await.unwrap();
    let line = Event::CommandObserved {
        line: "cat haystack".into(),
    };
    store.record(Some(seen), Some(0), line).await.unwrap();
    let refused = store.begin_session(new_session("c", "db1")).await.unwrap();
    let odd = Event::ExecRefused {
        command: "rm \"x\" OR * '; DROP TABLE sessions; -- <b>".into(),
        reason: "not in scope".into(),
    };
    store.record(Some(refused), Some(0), odd).await.unwrap();
    [ran, seen, refused]
}

#[tokio::test]
async fn sessions_filter_by_outcome_and_time() {
    let (_dir, path, store) = temp_store();
    let mut made = Vec::new();
    for reason in [
        Some("client disconnected"),
        Some(crate::gateway::registry::REVOKED),
        None,
        Some(INTERRUPTED),
        Some("idle for 10m (idle_timeout)"),
        Some("policy reloaded: role removed"),
    ] {
        let id = store.begin_session(new_session("a", "web1")).await.unwrap();
        if let Some(reason) = reason {
            store.end_session(id, reason.into()).await.unwrap();
        }
        made.push(id);
    }
    let r = reader(&path);
    for (outcome, expected) in [
        (Outcome::Closed, made[0]),
        (Outcome::Revoked, made[1]),
        (Outcome::Open, made[2]),
        (Outcome::Interrupted, made[3]),
        (Outcome::Idle, made[4]),
        (Outcome::Other, made[5]),
    ] {
        let filter = SessionFilter {
            outcome: Some(outcome),
            ..SessionFilter::default()
        };
        assert_eq!(ids(&r, &filter), vec![expected], "{outcome:?}");
    }
    let started: Vec<i64> = made
        .iter()
        .map(|id| r.session(*id).unwrap().unwrap().started_at_us)
        .collect();
    let window = SessionFilter {
        since_us: Some(started[1]),
        until_us: Some(started[3]),
        ..SessionFilter::default()
    };
    let inside = ids(&r, &window);
    assert!(
        inside.contains(&made[1]) && inside.contains(&made[2]),
        "{inside:?}"
    );
    assert!(
        !inside.contains(&made[0]) && !inside.contains(&made[3]),
        "{inside:?}"
    );
}

#[tokio::test]
async fn the_search_finds_commands_and_observed_lines_literally() {
    let (_dir, path, store) = temp_store();
    let [ran, seen, refused] = searched_store(&store).await;
    let r = reader(&path);
    assert_eq!(ids(&r, &searching("needle")), vec![ran]);
    assert_eq!(ids(&r, &searching("hayst")), vec![seen]);
    for literal in ["\"x\" OR *", "OR", "'; DROP", "\"", "*", "<b>", "rm"] {
        assert_eq!(ids(&r, &searching(literal)), vec![refused], "{literal}");
    }
    for absent in ["needle OR haystack", "\"needle\"", "NEAR(a b)", "x%", "_"] {
        assert_eq!(ids(&r, &searching(absent)), vec![], "{absent}");
    }
    let both = SessionFilter {
        target: Some("web1".into()),
        ..searching("s")
    };
    assert_eq!(ids(&r, &both), vec![seen, ran]);
}

#[tokio::test]
async fn the_search_table_is_backfilled_by_the_migration() {
    let (_dir, path, store) = temp_store();
    let [ran, ..] = searched_store(&store).await;
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER events_command_search; DROP TABLE command_search;
         DROP INDEX sessions_task; DROP INDEX sessions_target; PRAGMA user_version = 6;",
    )
    .unwrap();
    // A reader of a store not yet migrated still searches (row by row).
    assert_eq!(ids(&reader(&path), &searching("needle")), vec![ran]);
    drop(conn);
    let store = Store::open(&path).unwrap();
    assert_eq!(ids(&reader(&path), &searching("needle")), vec![ran]);
    drop(store);
}

#[tokio::test]
async fn refusals_and_grant_requests_come_in_pages_newest_first() {
    let (_dir, path, store) = temp_store();
    for n in 0..3 {
        let refused = Event::AuthRefused {
            login: "web1".into(),
            key_id: Some(format!("key-{n}")),
            serial: None,
            ca_fingerprint: None,
            cert_fingerprint: None,
            client_addr: "10.0.0.9:4000".into(),
            reason: "no valid certificate".into(),
        };
        store.record(None, None, refused).await.unwrap();
        let requested = Event::GrantRequested {
            request_id: n,
            identity: if n == 1 { "bob" } else { "alice" }.into(),
            role: "ops".into(),
            task: None,
            reason: None,
            targets: vec!["web1".into()],
            exec: vec![],
            open: vec![],
            ttl_secs: 600,
            client_addr: "10.0.0.9:4001".into(),
        };
        store.record(None, None, requested).await.unwrap();
    }
    let r = reader(&path);
    let all = EventFilter::default();
    let first = r.page_refused(&all, None, 2).unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].seq > first[1].seq);
    let rest = r.page_refused(&all, Some(first[1].seq), 2).unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest.iter().all(|e| e.entry.kind() == "auth.refused"));
    let bob = EventFilter {
        identity: Some("bob".into()),
        ..EventFilter::default()
    };
    let requests = r.page_requests(&bob, None, 50).unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].entry.kind(), "grant.requested");
    assert_eq!(r.page_requests(&all, None, 50).unwrap().len(), 3);
}
