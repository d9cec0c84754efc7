//! Tests of the audit store through its public API, named after the
//! guarantee each one protects.

mod chain_format;
mod events;
mod fail_closed;
mod lists;
mod pages;
mod payload;
mod recovery;
mod replies_first;
mod txn;
mod verify;
mod writer;

use std::path::PathBuf;

use tempfile::TempDir;

use super::{NewSession, Reader, Store, StoreOptions};

pub(super) fn new_session(identity: &str, target: &str) -> NewSession {
    NewSession {
        identity: identity.into(),
        key_id: identity.into(),
        task: Some("deploy-42".into()),
        cert_serial: u64::MAX - 7,
        ca_fingerprint: "SHA256:abcdef".into(),
        cert_fingerprint: Some("SHA256:cert".into()),
        role: Some("ops".into()),
        client_addr: "127.0.0.1:5555".into(),
        target: target.into(),
        login: target.into(),
    }
}

/// A fresh store in a temporary directory (kept alive by the `TempDir`).
pub(super) fn temp_store() -> (TempDir, PathBuf, Store) {
    temp_store_with(StoreOptions::default())
}

pub(super) fn temp_store_with(options: StoreOptions) -> (TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("portcullis.db");
    let store = Store::open_with(&path, options).expect("open store");
    (dir, path, store)
}

pub(super) fn reader(path: &PathBuf) -> Reader {
    Reader::open(path).expect("open reader")
}
