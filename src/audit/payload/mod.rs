//! Stream payload, written once: append-only segment files beside the
//! store, named by the chained rows that carry them.
//!
//! SQLite in WAL mode writes every byte twice (into the WAL, then into the
//! database at the checkpoint) and wraps it in page headers, frame
//! checksums and zero-filled blobs. Stream bytes, which are most of what a
//! bastion records, go instead to `<store>-payload/NNNNNNNN.seg`: appended
//! once, each `data` row of `events` naming its bytes by segment, offset
//! and length. The row's hash still covers the bytes themselves (the
//! chain's definition is unchanged), so a reference needs no trust: bytes
//! edited, moved, truncated or lost fail `verify` as an edited row does.
//!
//! Invariants:
//! - Bytes are in their segment before the transaction naming them
//!   commits, and on disk (`fdatasync`) before any commit that makes that
//!   transaction durable: the writer syncs the segment before each commit
//!   of a batch with stream rows, and a segment is synced before the writer
//!   moves to the next.
//! - One process appends: [`Appender::open`] holds an exclusive lock on the
//!   directory for as long as it lives.
//! - After a crash, bytes past the end the last committed row names are
//!   cut off when the store is next opened; bytes of a failed batch stay
//!   unnamed and every reader skips them. A segment may end in zeros past
//!   its last row (direct I/O writes whole blocks); nothing names them.

mod appender;
mod blocks;
mod reader;

use std::io;
use std::path::{Path, PathBuf};

use super::StoreError;

pub(crate) use appender::Appender;
pub(crate) use reader::PayloadReader;

/// A segment is closed once it holds this much; the next row goes to a
/// new one. Small enough to copy, archive or prune one at a time.
#[cfg(not(test))]
const SEGMENT_BYTES: u64 = 256 << 20;
/// Small in tests, so that they cross segments.
#[cfg(test)]
const SEGMENT_BYTES: u64 = 64 << 10;

/// Where one row's stream bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadRef {
    pub segment: i64,
    pub offset: i64,
    pub len: i64,
}

/// The payload directory of the store at `store`: `<store>-payload`.
pub(crate) fn dir_of(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-payload");
    PathBuf::from(name)
}

fn segment_path(dir: &Path, segment: i64) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

fn io_error(path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}
