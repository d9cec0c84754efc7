//! Links and browser sessions against a real store, with chosen clocks.

use super::*;
use crate::audit::DirectWriter;

const T0: i64 = 1_800_000_000_000_000;

fn store() -> (tempfile::TempDir, DirectWriter) {
    let dir = tempfile::tempdir().unwrap();
    let writer = DirectWriter::open(&dir.path().join("audit.db")).unwrap();
    (dir, writer)
}

#[test]
fn a_link_signs_in_once() {
    let (_dir, w) = store();
    let link = issue_link(w.conn(), "alice", T0).unwrap();
    let first = redeem_link(w.conn(), link.reveal(), T0 + 1).unwrap();
    assert_eq!(first, Ok("alice".to_owned()));
    let again = redeem_link(w.conn(), link.reveal(), T0 + 2).unwrap();
    assert_eq!(again, Err(LinkRefusal::Invalid));
}

#[test]
fn an_expired_link_is_refused() {
    let (_dir, w) = store();
    let link = issue_link(w.conn(), "alice", T0).unwrap();
    let late = T0 + micros(LINK_LIFETIME);
    let redeemed = redeem_link(w.conn(), link.reveal(), late).unwrap();
    assert_eq!(redeemed, Err(LinkRefusal::Invalid));
    // Still refused afterwards: expiry is not "used", but no later time helps.
    let later = redeem_link(w.conn(), link.reveal(), late + 1).unwrap();
    assert_eq!(later, Err(LinkRefusal::Invalid));
}

#[test]
fn an_unknown_link_is_refused() {
    let (_dir, w) = store();
    issue_link(w.conn(), "alice", T0).unwrap();
    let redeemed = redeem_link(w.conn(), &Secret::random().0, T0 + 1).unwrap();
    assert_eq!(redeemed, Err(LinkRefusal::Invalid));
}

#[test]
fn only_hashes_are_stored() {
    let (_dir, w) = store();
    let link = issue_link(w.conn(), "alice", T0).unwrap();
    let session = begin_browser_session(w.conn(), "alice", T0).unwrap();
    let stored: Vec<u8> = w
        .conn()
        .query_row("SELECT token_hash FROM review_links", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, hash_of(link.reveal()));
    let stored: Vec<u8> = w
        .conn()
        .query_row("SELECT id_hash FROM review_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, hash_of(session.cookie.reveal()));
}

#[test]
fn a_browser_session_expires_and_ends() {
    let (_dir, w) = store();
    let s = begin_browser_session(w.conn(), "alice", T0).unwrap();
    let found = browser_session(w.conn(), s.cookie.reveal(), T0 + 1).unwrap();
    assert_eq!(
        found,
        Some(Reviewer {
            identity: "alice".into(),
            csrf: s.csrf.reveal().to_owned()
        })
    );
    let late = T0 + micros(SESSION_LIFETIME);
    assert_eq!(
        browser_session(w.conn(), s.cookie.reveal(), late).unwrap(),
        None
    );
    end_browser_session(w.conn(), s.cookie.reveal()).unwrap();
    assert_eq!(
        browser_session(w.conn(), s.cookie.reveal(), T0 + 1).unwrap(),
        None
    );
    assert_eq!(browser_session(w.conn(), "nope", T0 + 1).unwrap(), None);
}
