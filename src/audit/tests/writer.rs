//! Write-ahead commits, batching and per-channel order.

use std::time::Duration;

use bytes::Bytes;
use rusqlite::Connection;

use super::{new_session, reader, temp_store, temp_store_with};
use crate::audit::{Entry, Event, SessionFilter, StoreError, StoreOptions, Stream};

#[tokio::test]
async fn record_returns_only_after_the_row_is_visible_to_another_connection() {
    let (_dir, path, store) = temp_store();
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    // The reader exists before any write: what it sees is what is committed.
    let reader = reader(&path);
    assert!(
        reader.transcript(sid).unwrap().is_some(),
        "begin_session is committed"
    );
    for i in 0..50 {
        let command = format!("systemctl status unit-{i}");
        store
            .record(
                Some(sid),
                Some(0),
                Event::ExecAllowed {
                    command: command.clone(),
                    forced_command: None,
                    instead_of: None,
                    approved_request: None,
                    approved_by: None,
                },
            )
            .await
            .unwrap();
        let t = reader.transcript(sid).unwrap().unwrap();
        let last = t.events.last().unwrap();
        assert_eq!(
            last.entry,
            Entry::Event(Event::ExecAllowed {
                command,
                forced_command: None,
                instead_of: None,
                approved_request: None,
                approved_by: None,
            }),
            "row {i} visible as soon as record returned"
        );
    }
    store
        .end_session(sid, "client closed".into())
        .await
        .unwrap();
    let s = &reader.list_sessions(&SessionFilter::default()).unwrap()[0];
    assert_eq!(s.end_reason.as_deref(), Some("client closed"));
    assert!(s.ended_at_us.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_chunks_keep_their_order_per_channel() {
    let (_dir, path, store) = temp_store_with(StoreOptions {
        queue_capacity: 16,
        ..Default::default()
    });
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    const CHANNELS: u32 = 12;
    const CHUNKS: usize = 300;
    let mut tasks = Vec::new();
    for ch in 0..CHANNELS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..CHUNKS {
                let stream = if i % 3 == 0 {
                    Stream::Stdin
                } else {
                    Stream::Stdout
                };
                let data = Bytes::from(format!("{ch}:{i};"));
                store.chunk(sid, ch, stream, data).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.flush().await.unwrap();
    let t = reader(&path).transcript(sid).unwrap().unwrap();
    for ch in 0..CHANNELS {
        let rows: Vec<_> = t.events.iter().filter(|e| e.channel == Some(ch)).collect();
        let text: String = rows
            .iter()
            .map(|e| match &e.entry {
                Entry::Data { data, .. } => String::from_utf8_lossy(data).into_owned(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let expected: String = (0..CHUNKS).map(|i| format!("{ch}:{i};")).collect();
        assert_eq!(text, expected, "channel {ch} in order, nothing lost");
        assert!(
            rows.windows(2).all(|w| w[0].at_us <= w[1].at_us),
            "timestamps ordered"
        );
    }
    assert!(reader(&path).verify(None).unwrap().is_ok());
}

#[tokio::test]
async fn events_for_unknown_or_ended_sessions_are_refused_without_harming_the_store() {
    let (_dir, path, store) = temp_store();
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    let ghost = crate::audit::SessionId(sid.0 + 100);
    let exit = Event::ExitStatus { status: 0 };
    assert!(matches!(
        store.record(Some(ghost), None, exit.clone()).await,
        Err(StoreError::UnknownSession(s)) if s == ghost
    ));
    store.end_session(sid, "done".into()).await.unwrap();
    assert!(matches!(
        store.record(Some(sid), None, exit.clone()).await,
        Err(StoreError::SessionEnded(_))
    ));
    assert!(matches!(
        store.end_session(sid, "again".into()).await,
        Err(StoreError::SessionEnded(_))
    ));
    assert!(matches!(
        store
            .record(
                Some(sid),
                None,
                Event::SessionEnd {
                    reason: "forged".into()
                }
            )
            .await,
        Err(StoreError::ReservedKind("session.end"))
    ));
    // A refused chunk is dropped, the rest of its batch commits.
    store
        .chunk(ghost, 0, Stream::Stdout, Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.record(None, None, exit).await.unwrap();
    assert!(store.is_healthy());
    assert!(reader(&path).verify(None).unwrap().is_ok());
}

#[tokio::test]
async fn store_handles_are_cheap_clones_of_one_writer() {
    let (_dir, path, store) = temp_store();
    let other = store.clone();
    let a = store
        .begin_session(new_session("agent-1", "web1"))
        .await
        .unwrap();
    let b = other
        .begin_session(new_session("agent-2", "db1"))
        .await
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(other.path(), path.as_path());
    let filter = SessionFilter {
        target: Some("db1".into()),
        ..Default::default()
    };
    let found = reader(&path).list_sessions(&filter).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].identity, "agent-2");
    assert_eq!(
        found[0].cert_serial,
        u64::MAX - 7,
        "u64 serials survive storage"
    );
}

#[tokio::test]
async fn empty_and_binary_chunks_are_kept_exactly() {
    let (_dir, path, store) = temp_store();
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    let binary: Vec<u8> = (0..=255).collect();
    store
        .chunk(sid, 3, Stream::Stderr, Bytes::new())
        .await
        .unwrap();
    store
        .chunk(sid, 3, Stream::Stdout, Bytes::from(binary.clone()))
        .await
        .unwrap();
    store.flush().await.unwrap();
    let t = reader(&path).transcript(sid).unwrap().unwrap();
    assert_eq!(
        t.events[1].entry,
        Entry::Data {
            stream: Stream::Stderr,
            data: Vec::new()
        }
    );
    assert_eq!(
        t.events[2].entry,
        Entry::Data {
            stream: Stream::Stdout,
            data: binary
        }
    );
    assert!(reader(&path).verify(None).unwrap().is_ok());
}

/// Bytes of every stream row of `channel`/`stream` joined, and the number
/// of rows.
fn stream_rows(t: &crate::audit::Transcript, want: Stream) -> (Vec<u8>, usize) {
    let mut bytes = Vec::new();
    let mut rows = 0;
    for e in &t.events {
        if let Entry::Data { stream, data } = &e.entry {
            if *stream == want {
                bytes.extend_from_slice(data);
                rows += 1;
            }
        }
    }
    (bytes, rows)
}

#[tokio::test]
async fn chunks_queued_together_share_rows_and_keep_every_byte_in_order() {
    let (_dir, path, store) = temp_store_with(StoreOptions {
        busy_timeout: Duration::from_secs(30),
        ..Default::default()
    });
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    // Hold the writer inside its first transaction so that what follows
    // queues up and reaches it as one batch.
    let locker = Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut expected = Vec::new();
    for i in 0..200u32 {
        let data = vec![(i % 251) as u8; 1000 + i as usize];
        expected.extend_from_slice(&data);
        store
            .chunk(sid, 0, Stream::Stdout, Bytes::from(data))
            .await
            .unwrap();
    }
    store
        .chunk(sid, 0, Stream::Stderr, Bytes::from_static(b"warning"))
        .await
        .unwrap();
    store
        .chunk(sid, 0, Stream::Stdout, Bytes::from_static(b"tail"))
        .await
        .unwrap();
    expected.extend_from_slice(b"tail");
    locker.execute_batch("ROLLBACK").unwrap();
    store.flush().await.unwrap();

    let t = reader(&path).transcript(sid).unwrap().unwrap();
    let (stdout, rows) = stream_rows(&t, Stream::Stdout);
    assert_eq!(stdout, expected, "every byte, in order");
    assert!(rows < 100, "adjacent chunks share rows ({rows} rows)");
    let kinds: Vec<Stream> = t
        .events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Data { stream, .. } => Some(*stream),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds.last().copied(),
        Some(Stream::Stdout),
        "the stdout after the stderr chunk stays after it"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == Stream::Stderr).count(),
        1,
        "a chunk of another stream is never joined"
    );
    assert_eq!(kinds[kinds.len() - 2], Stream::Stderr);
    assert!(
        reader(&path).verify(None).unwrap().is_ok(),
        "rows written from parts hash as their stored bytes"
    );
}

#[tokio::test]
async fn a_stream_faster_than_the_store_waits_for_the_chunk_budget() {
    let (_dir, path, store) = temp_store_with(StoreOptions {
        busy_timeout: Duration::from_secs(30),
        chunk_budget: 64 * 1024,
        ..Default::default()
    });
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    let locker = Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let first = Bytes::from(vec![1u8; 40 * 1024]);
    store
        .chunk(sid, 0, Stream::Stdout, first.clone())
        .await
        .unwrap();
    // 40 KiB are queued and uncommitted; 40 more do not fit in 64 KiB.
    let second = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .chunk(sid, 0, Stream::Stdout, Bytes::from(vec![2u8; 40 * 1024]))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second chunk waits for the budget"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    second.await.unwrap().unwrap();
    store.flush().await.unwrap();
    let t = reader(&path).transcript(sid).unwrap().unwrap();
    let (stdout, _) = stream_rows(&t, Stream::Stdout);
    assert_eq!(stdout.len(), 80 * 1024);
    assert!(stdout[..40 * 1024].iter().all(|b| *b == 1));
    assert!(stdout[40 * 1024..].iter().all(|b| *b == 2));
}

/// Decisions committed while a bulk stream is queued pass its chunks and cut
/// its batches short; the stream still ends up whole, in order, and the
/// chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_during_a_bulk_stream_leave_the_stream_whole() {
    let (_dir, path, store) = temp_store();
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    const CHUNKS: usize = 2000;
    let streamer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..CHUNKS {
                let mut data = vec![b'.'; 16 * 1024];
                data[..8].copy_from_slice(&(i as u64).to_be_bytes());
                store
                    .chunk(sid, 0, Stream::Stdout, Bytes::from(data))
                    .await
                    .unwrap();
            }
        })
    };
    for n in 0..100u32 {
        let event = Event::ExecAllowed {
            command: format!("true {n}"),
            forced_command: None,
            instead_of: None,
            approved_request: None,
            approved_by: None,
        };
        store.record(Some(sid), Some(1 + n), event).await.unwrap();
    }
    streamer.await.unwrap();
    store
        .record(Some(sid), Some(0), Event::ExitStatus { status: 0 })
        .await
        .unwrap();
    let t = reader(&path).transcript(sid).unwrap().unwrap();
    let mut stream = Vec::new();
    let mut decisions = 0;
    for e in &t.events {
        match &e.entry {
            Entry::Data { data, .. } => stream.extend_from_slice(data),
            Entry::Event(Event::ExecAllowed { .. }) => decisions += 1,
            Entry::Event(Event::ExitStatus { .. }) => {
                assert_eq!(
                    stream.len(),
                    CHUNKS * 16 * 1024,
                    "exit status after all output"
                )
            }
            _ => {}
        }
    }
    assert_eq!(decisions, 100);
    assert_eq!(stream.len(), CHUNKS * 16 * 1024);
    for (i, chunk) in stream.chunks(16 * 1024).enumerate() {
        assert_eq!(chunk[..8], (i as u64).to_be_bytes(), "chunk {i} in place");
    }
    assert!(reader(&path).verify(None).unwrap().is_ok());
}
