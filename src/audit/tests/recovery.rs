//! Interrupted sessions keep their rows and are marked on the next open.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;

use super::{new_session, reader};
use crate::audit::{Entry, Event, Reader, SessionFilter, Store, StoreError, Stream, INTERRUPTED};

const CRASH_DB: &str = "PORTCULLIS_TEST_CRASH_DB";

/// Run as a child process by `killed_bastion_...`: writes, then waits to be
/// killed with SIGKILL. Does nothing when run normally.
#[test]
#[ignore = "helper process for killed_bastion_keeps_committed_rows_and_marks_the_session_interrupted"]
fn crash_helper_writes_then_waits_to_be_killed() {
    let Ok(path) = std::env::var(CRASH_DB) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&path).unwrap();
        let sid = store
            .begin_session(new_session("agent-7", "web1"))
            .await
            .unwrap();
        store
            .record(
                Some(sid),
                Some(0),
                Event::ExecAllowed {
                    command: "cat".into(),
                    forced_command: None,
                    instead_of: None,
                    approved_request: None,
                    approved_by: None,
                },
            )
            .await
            .unwrap();
        for i in 0..100 {
            store
                .chunk(sid, 0, Stream::Stdout, Bytes::from(format!("line {i}\n")))
                .await
                .unwrap();
        }
        store.flush().await.unwrap();
        println!("READY {sid}");
        std::thread::sleep(std::time::Duration::from_secs(60));
    });
}

/// Ends the helper process even when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_bastion_keeps_committed_rows_and_marks_the_session_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, rest)| rest);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "--nocapture", "--test-threads=1"])
        .arg(format!(
            "{module}::crash_helper_writes_then_waits_to_be_killed"
        ))
        .env(CRASH_DB, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    let sid = loop {
        let line = lines.next().expect("helper printed READY").unwrap();
        // libtest prints "test <name> ... " on the same line first.
        if let Some((_, id)) = line.split_once("READY ") {
            break crate::audit::SessionId(id.trim().parse().unwrap());
        }
    };
    child.0.kill().unwrap(); // SIGKILL: no destructor, no clean close
    child.0.wait().unwrap();

    let before = reader(&path).transcript(sid).unwrap().unwrap();
    assert_eq!(before.session.ended_at_us, None, "left open by the crash");
    let _store = Store::open(&path).unwrap();
    let after = reader(&path).transcript(sid).unwrap().unwrap();
    assert_eq!(
        after.events[..before.events.len()],
        before.events[..],
        "committed rows kept"
    );
    let text: String = after
        .events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Data { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(
        text,
        (0..100).map(|i| format!("line {i}\n")).collect::<String>()
    );
    let last_before = before.events.last().unwrap().at_us;
    let end = after.events.last().unwrap();
    assert_eq!(
        end.entry,
        Entry::Event(Event::SessionEnd {
            reason: INTERRUPTED.into()
        })
    );
    assert_eq!(end.at_us, last_before, "ended at its last committed row");
    assert_eq!(after.session.end_reason.as_deref(), Some(INTERRUPTED));
    assert_eq!(after.session.ended_at_us, Some(last_before));
    assert!(reader(&path).verify(None).unwrap().is_ok());
}

#[tokio::test]
async fn reopening_marks_only_open_sessions_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let (open, closed) = {
        let store = Store::open(&path).unwrap();
        let open = store
            .begin_session(new_session("agent-1", "web1"))
            .await
            .unwrap();
        let closed = store
            .begin_session(new_session("agent-2", "web1"))
            .await
            .unwrap();
        store
            .end_session(closed, "client closed".into())
            .await
            .unwrap();
        (open, closed)
    };
    drop(Store::open(&path).unwrap());
    let store = Store::open(&path).unwrap();
    store.flush().await.unwrap();
    let r = reader(&path);
    let sessions = r.list_sessions(&SessionFilter::default()).unwrap();
    let reason = |id| {
        sessions
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.end_reason.clone())
    };
    assert_eq!(reason(open).as_deref(), Some(INTERRUPTED));
    assert_eq!(reason(closed).as_deref(), Some("client closed"));
    let ends = r
        .transcript(open)
        .unwrap()
        .unwrap()
        .events
        .iter()
        .filter(|e| matches!(e.entry, Entry::Event(Event::SessionEnd { .. })))
        .count();
    assert_eq!(ends, 1);
    assert!(r.verify(None).unwrap().is_ok());
}

#[test]
fn garbage_files_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db");
    std::fs::write(
        &path,
        b"this is not an SQLite database, not even close......",
    )
    .unwrap();
    assert!(Store::open(&path).is_err());
    assert!(Reader::open(&path).is_err());
    let missing = dir.path().join("missing.db");
    assert!(Reader::open(&missing).is_err());
    assert!(!missing.exists(), "the reader never creates a store");
    let empty = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert!(matches!(
        Reader::open(&empty),
        Err(StoreError::NotAStore(_))
    ));
}

#[tokio::test]
async fn a_cleanly_closed_store_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let store = Store::open(&path).unwrap();
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    store.end_session(sid, "done".into()).await.unwrap();
    drop(store);
    // The writer thread closes its connection (and SQLite removes the WAL).
    let wal = dir.path().join("portcullis.db-wal");
    for _ in 0..100 {
        if !wal.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!wal.exists(), "writer closed its connection");
    let r = reader(&path);
    assert_eq!(r.list_sessions(&SessionFilter::default()).unwrap().len(), 1);
    assert!(r.verify(None).unwrap().is_ok());
}
