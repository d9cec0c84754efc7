//! Operations of several writes: all or nothing, answered after the
//! commit, and one chain whichever process appends.

use super::{new_session, reader, temp_store};
use crate::audit::{Abort, DirectWriter, Event};

fn note(text: &str) -> Event {
    Event::UpstreamFailed {
        reason: text.to_owned(),
    }
}

fn kinds(path: &std::path::PathBuf) -> Vec<String> {
    let r = reader(path);
    let report = r.verify(None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let mut out = Vec::new();
    for session in r.list_sessions(&Default::default()).unwrap() {
        for e in r.transcript(session.id).unwrap().unwrap().events {
            out.push(e.entry.kind().to_owned());
        }
    }
    out
}

#[tokio::test]
async fn an_operation_commits_all_its_rows_together() {
    let (_dir, path, store) = temp_store();
    let id = store
        .transact(|txn| {
            let id = txn.begin_session(&new_session("agent-7", "web1"))?;
            txn.record(Some(id), None, &note("one"))?;
            txn.record(Some(id), Some(1), &note("two"))?;
            Ok::<_, Abort<()>>(id)
        })
        .await
        .unwrap();
    store.end_session(id, "done".into()).await.unwrap();
    assert_eq!(
        kinds(&path),
        [
            "session.start",
            "upstream.failed",
            "upstream.failed",
            "session.end"
        ]
    );
}

#[tokio::test]
async fn a_refused_operation_leaves_nothing_and_the_batch_goes_on() {
    let (_dir, path, store) = temp_store();
    let kept = store.transact(|txn| {
        let id = txn.begin_session(&new_session("agent-7", "web1"))?;
        txn.record(Some(id), None, &note("kept"))?;
        Ok::<_, Abort<&str>>(id)
    });
    let refused = store.transact(|txn| {
        let id = txn.begin_session(&new_session("agent-8", "web1"))?;
        txn.record(Some(id), None, &note("never"))?;
        Err::<(), _>(Abort::Refused("no"))
    });
    let (kept, refused) = tokio::join!(kept, refused);
    assert!(matches!(refused, Err(Abort::Refused("no"))));
    let id = kept.unwrap();
    store.end_session(id, "done".into()).await.unwrap();
    let r = reader(&path);
    let sessions = r.list_sessions(&Default::default()).unwrap();
    assert_eq!(sessions.len(), 1, "the refused session row is gone");
    assert_eq!(sessions[0].identity, "agent-7");
    assert_eq!(
        kinds(&path),
        ["session.start", "upstream.failed", "session.end"]
    );
}

#[tokio::test]
async fn a_refused_operation_cannot_write_reserved_kinds() {
    let (_dir, _path, store) = temp_store();
    let result = store
        .transact(|txn| {
            txn.record(None, None, &Event::SessionEnd { reason: "x".into() })?;
            Ok::<_, Abort<()>>(())
        })
        .await;
    assert!(matches!(result, Err(Abort::Failed(_))));
}

#[tokio::test]
async fn another_process_and_the_server_extend_one_chain() {
    let (_dir, path, store) = temp_store();
    let id = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    for round in 0..3 {
        // The operator's CLI appends on its own connection...
        let mut cli = DirectWriter::open(&path).unwrap();
        cli.transact(|txn| {
            txn.record(None, None, &note(&format!("cli {round}")))?;
            Ok::<_, Abort<()>>(())
        })
        .unwrap();
        // ...and the server's writer goes on from the head the CLI left.
        store
            .record(Some(id), Some(1), note(&format!("server {round}")))
            .await
            .unwrap();
    }
    store.end_session(id, "done".into()).await.unwrap();
    let report = reader(&path).verify(None).unwrap();
    assert!(
        report.ok && report.problems.is_empty(),
        "{:?}",
        report.problems
    );
    // start, three rows from each side, end: one chain, nothing forked.
    assert_eq!(report.rows, 8);
}
