//! The chain's hash function is a property of the store: new stores use
//! BLAKE3, a chain begun with SHA-256 (schema 1) keeps it after migration,
//! and the recorded choice is itself bound by the hashes.

use bytes::Bytes;
use rusqlite::Connection;

use super::{new_session, reader, temp_store};
use crate::audit::chain::{self, ChainAlgorithm, ChainHead, ChainRow};
use crate::audit::schema::MIGRATIONS;
use crate::audit::{Event, Store, Stream};

fn algorithm_name(path: &std::path::Path) -> String {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT algorithm FROM chain_format", [], |r| r.get(0))
        .unwrap()
}

async fn some_rows(store: &Store) {
    let sid = store
        .begin_session(new_session("agent-a", "web1"))
        .await
        .unwrap();
    let event = Event::ExecAllowed {
        command: "uptime".into(),
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    };
    store.record(Some(sid), Some(0), event).await.unwrap();
    let data = Bytes::from_static(b" 10:00:00 up 1 day\n");
    store.chunk(sid, 0, Stream::Stdout, data).await.unwrap();
    store
        .end_session(sid, "client closed".into())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_new_store_chains_with_blake3() {
    let (_dir, path, store) = temp_store();
    some_rows(&store).await;
    drop(store);
    assert_eq!(algorithm_name(&path), "blake3");
    assert!(reader(&path).verify(None).unwrap().is_ok());
}

#[tokio::test]
async fn a_changed_algorithm_name_fails_verification() {
    let (_dir, path, store) = temp_store();
    some_rows(&store).await;
    drop(store);
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE chain_format SET algorithm = 'sha256'", [])
        .unwrap();
    let report = reader(&path).verify(None).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.first_bad_seq, Some(1));
}

#[tokio::test]
async fn a_schema_1_sha256_chain_keeps_its_algorithm_after_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    {
        // A store as the first release wrote it: schema 1, SHA-256 rows.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let mut head = ChainHead::empty(ChainAlgorithm::Sha256);
        let row = ChainRow {
            seq: 0,
            session_id: None,
            channel: None,
            at_us: 1,
            kind: "note",
            detail: "{}",
            stream: None,
            data: None,
        };
        chain::append(&conn, &mut head, row).unwrap();
        // Rows before schema 4 keep their bytes inline, and still verify.
        let inline = ChainRow {
            data: Some(&b"inline bytes"[..]),
            ..row
        };
        chain::append(&conn, &mut head, inline).unwrap();
        chain::store_head(&conn, &head).unwrap();
    }
    assert!(reader(&path).verify(None).unwrap().is_ok());
    let store = Store::open(&path).unwrap();
    some_rows(&store).await;
    drop(store);
    assert_eq!(algorithm_name(&path), "sha256");
    let report = reader(&path).verify(None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.rows > 1);
}
