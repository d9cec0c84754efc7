//! When the store cannot commit, callers get errors, never silent success.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::Connection;

use super::{new_session, reader, temp_store_with};
use crate::audit::{Entry, Event, StoreError, StoreOptions, Stream};

#[tokio::test]
async fn a_locked_store_fails_closed_and_recovers_without_losing_queued_bytes() {
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let (_dir, path, store) = temp_store_with(options);
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();

    let locker = Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    // Already forwarded bytes are queued while the store still looked healthy.
    store
        .chunk(
            sid,
            0,
            Stream::Stdout,
            Bytes::from_static(b"before the failure"),
        )
        .await
        .unwrap();
    let refused = Event::ExecAllowed {
        command: "reboot".into(),
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    };
    let err = store.record(Some(sid), Some(0), refused).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(!store.is_healthy(), "fail closed after a failed commit");
    assert!(matches!(
        store
            .chunk(sid, 0, Stream::Stdout, Bytes::from_static(b"x"))
            .await,
        Err(StoreError::Unhealthy)
    ));
    assert!(store.flush().await.is_err());

    locker.execute_batch("ROLLBACK").unwrap();
    // The writer retries the held bytes by itself and turns healthy again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_healthy() {
        assert!(Instant::now() < deadline, "store recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let allowed = Event::ExecAllowed {
        command: "uptime".into(),
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    };
    store
        .record(Some(sid), Some(0), allowed.clone())
        .await
        .unwrap();

    let t = reader(&path).transcript(sid).unwrap().unwrap();
    let entries: Vec<&Entry> = t.events.iter().map(|e| &e.entry).collect();
    assert_eq!(
        entries[1..],
        [
            &Entry::Data {
                stream: Stream::Stdout,
                data: b"before the failure".to_vec()
            },
            &Entry::Event(allowed)
        ],
        "the refused action is absent, the queued bytes are kept"
    );
    assert!(reader(&path).verify(None).unwrap().is_ok());
}

#[tokio::test]
async fn a_failed_begin_is_an_error_and_the_store_heals_by_itself() {
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let (_dir, path, store) = temp_store_with(options);
    let locker = Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert!(store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .is_err());
    assert!(!store.is_healthy());
    locker.execute_batch("COMMIT").unwrap();
    // The writer finds out by itself, before anyone writes again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_healthy() {
        assert!(
            Instant::now() < deadline,
            "store recovered without a caller"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    assert!(
        store.is_healthy(),
        "healthy again after a successful commit"
    );
    assert_eq!(
        reader(&path).transcript(sid).unwrap().unwrap().events.len(),
        1
    );
}
