//! Stream bytes live in payload segments beside the database: they are
//! still covered by the chain, cut back to what was committed after a
//! crash, and written by one writer at a time.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{params, Connection};

use super::{new_session, reader, temp_store, temp_store_with};
use crate::audit::{Entry, ProblemKind, SessionId, Store, StoreOptions, Stream, VerifyReport};

fn payload_dir(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-payload");
    PathBuf::from(name)
}

fn segment(store: &Path, n: i64) -> PathBuf {
    payload_dir(store).join(format!("{n:08}.seg"))
}

/// Where row `seq`'s bytes are: (segment, offset, len).
fn located(path: &Path, seq: i64) -> (i64, i64, i64) {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT payload_segment, payload_offset, payload_len FROM events WHERE seq = ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

fn data_seqs(path: &Path) -> Vec<i64> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq FROM events WHERE kind = 'data' ORDER BY seq")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn verify(path: &Path) -> VerifyReport {
    reader(&path.to_path_buf()).verify(None).unwrap()
}

fn kinds(report: &VerifyReport) -> Vec<ProblemKind> {
    report.problems.iter().map(|p| p.problem).collect()
}

/// A closed store holding one session with `chunks` output rows of
/// `size` bytes each (byte `i` of chunk `c` is `(c + i) % 251`).
async fn recorded(chunks: usize, size: usize) -> (tempfile::TempDir, PathBuf, SessionId) {
    let (dir, path, store) = temp_store();
    let sid = store
        .begin_session(new_session("agent", "web1"))
        .await
        .unwrap();
    for c in 0..chunks {
        store
            .chunk(sid, 0, Stream::Stdout, Bytes::from(pattern(c, size)))
            .await
            .unwrap();
        // Committed alone, so that each chunk is a row of its own.
        store.flush().await.unwrap();
    }
    store
        .end_session(sid, "client closed".into())
        .await
        .unwrap();
    drop(store);
    (dir, path, sid)
}

fn pattern(c: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| ((c + i) % 251) as u8).collect()
}

fn outputs(path: &Path, sid: SessionId) -> Vec<Entry> {
    let transcript = reader(&path.to_path_buf())
        .transcript(sid)
        .unwrap()
        .unwrap();
    transcript
        .events
        .into_iter()
        .map(|e| e.entry)
        .filter(|e| !matches!(e, Entry::Event(_)))
        .collect()
}

#[tokio::test]
async fn stream_bytes_are_in_segments_not_the_database_and_read_back() {
    let (_dir, path, sid) = recorded(40, 4096).await;
    let inline: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'data' AND data IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(inline, 0, "no stream byte is stored inline");
    // 160 KiB over 64 KiB test segments: the writer moved on twice.
    assert!(segment(&path, 3).exists());
    let entries = outputs(&path, sid);
    let mut all = Vec::new();
    for entry in entries {
        match entry {
            Entry::Data { data, .. } => all.extend(data),
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<u8> = (0..40).flat_map(|c| pattern(c, 4096)).collect();
    assert_eq!(all, expected);
    assert!(verify(&path).is_ok());
}

#[tokio::test]
async fn payload_files_are_private() {
    let (_dir, path, _) = recorded(2, 16).await;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&payload_dir(&path)), 0o700);
    assert_eq!(mode(&segment(&path, 1)), 0o600);
}

#[tokio::test]
async fn an_edited_byte_in_a_segment_is_detected() {
    let (_dir, path, _) = recorded(4, 100).await;
    let target = data_seqs(&path)[2];
    let (seg, offset, _) = located(&path, target);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment(&path, seg))
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset as u64 + 7).unwrap();
    file.write_all_at(&[byte[0] ^ 1], offset as u64 + 7)
        .unwrap();
    let report = verify(&path);
    assert_eq!(kinds(&report), [ProblemKind::RowEdited]);
    assert_eq!(report.first_bad_seq, Some(target));
}

#[tokio::test]
async fn swapped_or_redirected_references_are_detected() {
    let (_dir, path, _) = recorded(4, 100).await;
    let s = data_seqs(&path);
    let conn = Connection::open(&path).unwrap();
    // Equal lengths, so only the hash can tell.
    conn.execute_batch(&format!(
        "UPDATE events SET payload_offset = payload_offset + 100 WHERE seq = {a};
         UPDATE events SET payload_offset = payload_offset - 100 WHERE seq = {b};",
        a = s[0],
        b = s[1]
    ))
    .unwrap();
    let report = verify(&path);
    assert_eq!(
        kinds(&report),
        [ProblemKind::RowEdited, ProblemKind::RowEdited]
    );
    assert_eq!(report.first_bad_seq, Some(s[0]));
}

#[tokio::test]
async fn bytes_forged_inline_over_a_reference_are_detected() {
    let (_dir, path, _) = recorded(2, 100).await;
    let target = data_seqs(&path)[1];
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE events SET data = ?1 WHERE seq = ?2",
            params![vec![0u8; 100], target],
        )
        .unwrap();
    assert_eq!(kinds(&verify(&path)), [ProblemKind::RowEdited]);
}

#[tokio::test]
async fn a_huge_reference_is_refused_not_allocated() {
    let (_dir, path, sid) = recorded(2, 100).await;
    let target = data_seqs(&path)[0];
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE events SET payload_len = ?1 WHERE seq = ?2",
            params![i64::MAX, target],
        )
        .unwrap();
    assert_eq!(kinds(&verify(&path)), [ProblemKind::RowEdited]);
    let entries = outputs(&path, sid);
    assert!(
        matches!(&entries[0], Entry::Unparsed { detail, .. } if detail.contains("unreadable")),
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_lost_or_cut_segment_is_detected_and_not_written_over() {
    let (_dir, path, sid) = recorded(3, 1000).await;
    let seqs = data_seqs(&path);
    let (seg, offset, _) = located(&path, seqs[1]);
    // Cut inside the second row: rows two and three lose their bytes.
    OpenOptions::new()
        .write(true)
        .open(segment(&path, seg))
        .unwrap()
        .set_len(offset as u64 + 10)
        .unwrap();
    let report = verify(&path);
    assert_eq!(
        kinds(&report),
        [ProblemKind::RowEdited, ProblemKind::RowEdited]
    );
    assert_eq!(report.first_bad_seq, Some(seqs[1]));

    // The bastion restarts and records on: the new bytes do not land on
    // offsets the damaged rows name, so only those stay reported.
    let store = Store::open(&path).unwrap();
    let next = store
        .begin_session(new_session("agent", "web1"))
        .await
        .unwrap();
    store
        .chunk(next, 0, Stream::Stdout, Bytes::from_static(b"after"))
        .await
        .unwrap();
    store
        .end_session(next, "client closed".into())
        .await
        .unwrap();
    drop(store);
    let report = verify(&path);
    assert_eq!(report.problems.len(), 2, "{report:?}");
    assert!(report.problems.iter().all(|p| p.session == Some(sid)));
    assert!(reader(&path).verify(Some(next)).unwrap().is_ok());

    fs::remove_file(segment(&path, seg)).unwrap();
    assert_eq!(
        kinds(&verify(&path)).len(),
        3,
        "every row of the lost segment"
    );
}

#[tokio::test]
async fn bytes_a_crash_left_unnamed_are_cut_off_on_reopen() {
    let (_dir, path, sid) = recorded(2, 100).await;
    let seg = segment(&path, 1);
    // Two rows of 100 bytes: the rest of the segment is block padding.
    let committed = 200;
    // A batch written to the segment whose commit never happened.
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    file.write_all_at(b"uncommitted garbage", committed)
        .unwrap();
    drop(file);
    assert!(verify(&path).is_ok(), "unnamed bytes are nobody's");

    let store = Store::open(&path).unwrap();
    let next = store
        .begin_session(new_session("agent", "web1"))
        .await
        .unwrap();
    store
        .chunk(next, 0, Stream::Stdout, Bytes::from_static(b"fresh"))
        .await
        .unwrap();
    store
        .end_session(next, "client closed".into())
        .await
        .unwrap();
    drop(store);
    // The new row follows the committed ones, in the block they share;
    // nothing of the unnamed bytes is left.
    let bytes = fs::read(&seg).unwrap();
    assert_eq!(&bytes[committed as usize..committed as usize + 5], b"fresh");
    assert!(bytes[committed as usize + 5..].iter().all(|&b| b == 0));
    assert!(verify(&path).is_ok());
    assert_eq!(outputs(&path, sid).len(), 2);
    assert_eq!(
        outputs(&path, next),
        [Entry::Data {
            stream: Stream::Stdout,
            data: b"fresh".to_vec()
        }]
    );
}

#[tokio::test]
async fn a_second_writer_is_refused_while_the_first_records() {
    let (_dir, path, first) = temp_store_with(StoreOptions {
        busy_timeout: Duration::from_millis(200),
        ..StoreOptions::default()
    });
    let second = Store::open_with(
        &path,
        StoreOptions {
            busy_timeout: Duration::from_millis(200),
            ..StoreOptions::default()
        },
    );
    let err = second.expect_err("a second writer is refused").to_string();
    assert!(err.contains("another writer"), "{err}");
    // Once the first is gone, the store opens again.
    drop(first);
    assert!(Store::open(&path).is_ok());
}
