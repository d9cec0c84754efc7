//! `verify` finds every kind of tampering and names the first bad row.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rusqlite::Connection;
use tempfile::TempDir;

use super::{new_session, reader, temp_store};
use crate::audit::{Event, ProblemKind, SessionId, Store, Stream, VerifyReport};

/// Two interleaved, ended sessions and a refused login; the store is closed.
async fn populated() -> (TempDir, PathBuf, SessionId, SessionId) {
    let (dir, path, store) = temp_store();
    store.record(None, None, refused()).await.unwrap();
    let a = store
        .begin_session(new_session("agent-a", "web1"))
        .await
        .unwrap();
    let b = store
        .begin_session(new_session("agent-b", "db1"))
        .await
        .unwrap();
    for (sid, cmd) in [(a, "uptime"), (b, "df -h")] {
        let event = Event::ExecAllowed {
            command: cmd.into(),
            forced_command: None,
            instead_of: None,
            approved_request: None,
            approved_by: None,
        };
        store.record(Some(sid), Some(0), event).await.unwrap();
    }
    for i in 0..4 {
        for sid in [a, b] {
            let data = Bytes::from(format!("{sid} output {i}\n"));
            store.chunk(sid, 0, Stream::Stdout, data).await.unwrap();
        }
    }
    for sid in [a, b] {
        store
            .record(Some(sid), Some(0), Event::ExitStatus { status: 0 })
            .await
            .unwrap();
        store
            .end_session(sid, "client closed".into())
            .await
            .unwrap();
    }
    drop(store);
    (dir, path, a, b)
}

fn refused() -> Event {
    Event::AuthRefused {
        login: "web1".into(),
        key_id: Some("agent-x".into()),
        serial: None,
        ca_fingerprint: None,
        cert_fingerprint: None,
        client_addr: "127.0.0.1:9".into(),
        reason: "unknown CA".into(),
    }
}

/// A connection like an attacker's `sqlite3` shell: foreign keys off.
fn tamper(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    conn
}

fn seqs(conn: &Connection, sql: &str, session: SessionId) -> Vec<i64> {
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([session.0], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn data_seqs(conn: &Connection, session: SessionId) -> Vec<i64> {
    seqs(
        conn,
        "SELECT seq FROM events WHERE session_id = ?1 AND kind = 'data' ORDER BY seq",
        session,
    )
}

fn verify(path: &Path, session: Option<SessionId>) -> VerifyReport {
    reader(&path.to_path_buf()).verify(session).unwrap()
}

fn kinds(report: &VerifyReport) -> Vec<ProblemKind> {
    report.problems.iter().map(|p| p.problem).collect()
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let (_dir, path, a, _) = populated().await;
    let report = verify(&path, None);
    assert!(report.is_ok(), "{report:?}");
    let total: i64 = tamper(&path)
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(report.rows, total as u64);
    assert_eq!(report.last_seq, Some(total));
    assert_eq!(report.last_hash.as_ref().map(String::len), Some(64));
    assert!(verify(&path, Some(a)).is_ok());
}

#[tokio::test]
async fn an_edited_event_is_detected() {
    let (_dir, path, a, b) = populated().await;
    let conn = tamper(&path);
    let target: i64 = conn
        .query_row(
            "SELECT seq FROM events WHERE session_id = ?1 AND kind = 'exec.allowed'",
            [a.0],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE events SET detail = replace(detail, 'uptime', 'reboot') WHERE seq = ?1",
        [target],
    )
    .unwrap();

    let report = verify(&path, None);
    assert_eq!(kinds(&report), [ProblemKind::RowEdited]);
    assert_eq!(report.first_bad_seq, Some(target));
    assert!(!verify(&path, Some(a)).is_ok());
    assert!(
        verify(&path, Some(b)).is_ok(),
        "an edit in another session is not this session's problem"
    );
}

#[tokio::test]
async fn a_deleted_middle_row_is_detected() {
    let (_dir, path, a, b) = populated().await;
    let conn = tamper(&path);
    let target = data_seqs(&conn, a)[2];
    conn.execute("DELETE FROM events WHERE seq = ?1", [target])
        .unwrap();
    let report = verify(&path, None);
    assert_eq!(kinds(&report), [ProblemKind::RowsMissing]);
    assert_eq!(report.first_bad_seq, Some(target));
    // A break of the chain concerns every session.
    assert!(!verify(&path, Some(b)).is_ok());
}

#[tokio::test]
async fn swapped_rows_are_detected() {
    let (_dir, path, a, _) = populated().await;
    let conn = tamper(&path);
    let s = data_seqs(&conn, a);
    let (x, y) = (s[0], s[1]);
    conn.execute_batch(&format!(
        "UPDATE events SET seq = -1 WHERE seq = {x};
         UPDATE events SET seq = {x} WHERE seq = {y};
         UPDATE events SET seq = {y} WHERE seq = -1;"
    ))
    .unwrap();
    let report = verify(&path, None);
    assert!(!report.is_ok());
    assert_eq!(report.first_bad_seq, Some(x));
}

#[tokio::test]
async fn a_deleted_tail_is_detected_even_after_new_writes() {
    let (_dir, path, a, _) = populated().await;
    let conn = tamper(&path);
    let last: i64 = conn
        .query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))
        .unwrap();
    conn.execute("DELETE FROM events WHERE seq > ?1", [last - 2])
        .unwrap();
    let report = verify(&path, None);
    assert_eq!(
        kinds(&report),
        [ProblemKind::TailRemoved, ProblemKind::SessionMismatch]
    );
    assert_eq!(report.first_bad_seq, Some(last - 1));

    // The bastion restarts and writes on: the hole stays visible.
    let store = Store::open(&path).unwrap();
    store.record(None, None, refused()).await.unwrap();
    drop(store);
    let report = verify(&path, None);
    assert!(
        kinds(&report).contains(&ProblemKind::RowsMissing),
        "{report:?}"
    );
    assert_eq!(report.first_bad_seq, Some(last - 1));
    let _ = a;
}

#[tokio::test]
async fn a_deleted_session_is_detected() {
    // Only the index row removed: its chained start has no row any more.
    let (_dir, path, a, b) = populated().await;
    tamper(&path)
        .execute("DELETE FROM sessions WHERE id = ?1", [a.0])
        .unwrap();
    let report = verify(&path, None);
    assert_eq!(kinds(&report), [ProblemKind::SessionRowMissing]);
    assert_eq!(report.problems[0].session, Some(a));
    assert!(!verify(&path, Some(a)).is_ok());
    assert!(verify(&path, Some(b)).is_ok());

    // The row and all its events removed: the chain has holes.
    let (_dir, path, a, _) = populated().await;
    let conn = tamper(&path);
    conn.execute("DELETE FROM events WHERE session_id = ?1", [a.0])
        .unwrap();
    conn.execute("DELETE FROM sessions WHERE id = ?1", [a.0])
        .unwrap();
    let report = verify(&path, None);
    assert!(
        kinds(&report).contains(&ProblemKind::RowsMissing),
        "{report:?}"
    );
}

#[tokio::test]
async fn an_edited_or_forged_session_row_is_detected() {
    let (_dir, path, a, b) = populated().await;
    let conn = tamper(&path);
    conn.execute(
        "UPDATE sessions SET identity = 'someone-else' WHERE id = ?1",
        [a.0],
    )
    .unwrap();
    conn.execute(
        "UPDATE sessions SET end_reason = 'normal' WHERE id = ?1",
        [b.0],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO sessions (started_at_us, identity, key_id, cert_serial, ca_fingerprint,
                               client_addr, target, login)
         VALUES (1, 'ghost', 'ghost', 1, 'x', 'x', 'web1', 'web1')",
        [],
    )
    .unwrap();
    let report = verify(&path, None);
    assert_eq!(
        kinds(&report),
        [
            ProblemKind::SessionMismatch,
            ProblemKind::SessionMismatch,
            ProblemKind::SessionStartMissing
        ]
    );
    assert!(
        report.problems[0].detail.contains("identity"),
        "{}",
        report.problems[0].detail
    );
}

#[tokio::test]
async fn verifying_an_unknown_session_says_so() {
    let (_dir, path, a, _) = populated().await;
    let report = verify(&path, Some(SessionId(a.0 + 1000)));
    assert_eq!(kinds(&report), [ProblemKind::SessionUnknown]);
}

#[tokio::test]
async fn a_removed_chain_head_is_detected() {
    let (_dir, path, _, _) = populated().await;
    tamper(&path).execute("DELETE FROM chain_head", []).unwrap();
    assert_eq!(kinds(&verify(&path, None)), [ProblemKind::HeadMissing]);
}
