//! The web viewer's queries: pages of sessions, and who viewed one.

use super::{new_session, reader, temp_store};
use crate::audit::{Event, SessionFilter, SessionId};

#[tokio::test]
async fn sessions_come_in_pages_newest_first() {
    let (_dir, path, store) = temp_store();
    let mut ids = Vec::new();
    for target in ["web1", "db1", "web1", "web1", "db1"] {
        ids.push(
            store
                .begin_session(new_session("agent-7", target))
                .await
                .unwrap(),
        );
    }
    let r = reader(&path);
    let all = SessionFilter::default();
    let page: Vec<SessionId> = r
        .page_sessions(&all, None, 2)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(page, vec![ids[4], ids[3]]);
    let next: Vec<SessionId> = r
        .page_sessions(&all, Some(ids[3].0), 2)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(next, vec![ids[2], ids[1]]);
    let web = SessionFilter {
        target: Some("web1".into()),
        ..SessionFilter::default()
    };
    let only: Vec<SessionId> = r
        .page_sessions(&web, Some(ids[3].0), 50)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(only, vec![ids[2], ids[0]]);
}

#[tokio::test]
async fn viewers_are_read_from_review_viewed_events() {
    let (_dir, path, store) = temp_store();
    let viewed = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    let other = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    let views = [
        ("alice", viewed, None),
        ("bob", other, None),
        ("carol", viewed, None),
        ("dave", viewed, Some("b")),
    ];
    for (identity, session, replica) in views {
        let event = Event::ReviewViewed {
            identity: identity.into(),
            session_viewed: session.0,
            replica: replica.map(str::to_owned),
            form: None,
        };
        store.record(None, None, event).await.unwrap();
    }
    let names = |replica: Option<&str>| -> Vec<String> {
        reader(&path)
            .viewers(replica, viewed, 10)
            .unwrap()
            .into_iter()
            .map(|(identity, _, _)| identity)
            .collect()
    };
    // Replica b's session of the same id is another session.
    assert_eq!(names(None), vec!["carol".to_owned(), "alice".to_owned()]);
    assert_eq!(names(Some("b")), vec!["dave".to_owned()]);
}
