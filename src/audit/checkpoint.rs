//! The checkpointer: copies the WAL into the database on its own thread.
//!
//! Why: SQLite checkpoints inside the commit that crosses its threshold, so
//! a write-ahead decision committed then waited for a copy and sync of many
//! megabytes, and the writer thread (the one serial part of recording) spent
//! a third of its time on that copy. Here the writer only nudges; a second
//! connection runs PASSIVE checkpoints (they never wait for, nor block, the
//! writer). SQLite reuses the WAL from its start only once a checkpoint has
//! copied all of it, which a checkpointer one batch behind a continuous
//! stream never does: so every [`RESET_BYTES`] the writer copies the small
//! remainder itself, when no caller is waiting on it, and the WAL stays a
//! few megabytes, hot in the page cache. The writer's own automatic
//! checkpoint stays on at a larger size as a guard.
//!
//! Invariant: losing this thread only costs a larger WAL, never a row:
//! durability is the writer's commit (`synchronous=FULL`).

use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use rusqlite::Connection;

use super::StoreError;

/// WAL growth after which the writer nudges the checkpointer.
const NUDGE_BYTES: usize = 4 << 20;
/// WAL growth after which the writer finishes a checkpoint itself, so that
/// the WAL restarts from its beginning.
const RESET_BYTES: usize = 16 << 20;
/// Pages a commit writes to the WAL whatever its size: the chain head,
/// the last leaf of `events` and of its indexes.
const PAGES_PER_COMMIT: usize = 4;
/// Rows of `events` per page, about (stream bytes are not in the rows).
const ROWS_PER_PAGE: usize = 16;

/// The writer's handle: counts what was committed and nudges.
pub(crate) struct Checkpointer {
    /// The store's page size: what one page of a commit adds to the WAL.
    page_size: usize,
    nudge: SyncSender<()>,
    since_nudge: usize,
    since_reset: usize,
}

impl Checkpointer {
    /// Opens a second connection to the store at `path` and starts the
    /// thread; it ends when the handle is dropped.
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        // A checkpoint syncs the database file after copying, as the
        // writer's own would (durability does not depend on it).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .map_err(open_err)?;
        let page_size = usize::try_from(page_size).unwrap_or(4096).max(512);
        let (nudge, nudged) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("portcullis-ckpt".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    checkpoint(&conn);
                }
            })
            .map_err(StoreError::Spawn)?;
        Ok(Checkpointer {
            page_size,
            nudge,
            since_nudge: 0,
            since_reset: 0,
        })
    }

    /// Called by the writer, on its connection `conn`, after each commit of
    /// `rows`; `callers_waiting` if a caller waits for a commit.
    pub(crate) fn committed(&mut self, conn: &Connection, rows: usize, callers_waiting: bool) {
        let pages = PAGES_PER_COMMIT.saturating_add(rows.div_ceil(ROWS_PER_PAGE));
        let grown = pages.saturating_mul(self.page_size);
        self.since_nudge = self.since_nudge.saturating_add(grown);
        self.since_reset = self.since_reset.saturating_add(grown);
        if self.since_reset >= RESET_BYTES && !callers_waiting && checkpoint(conn) {
            self.since_reset = 0;
        }
        if self.since_nudge < NUDGE_BYTES {
            return;
        }
        self.since_nudge = 0;
        match self.nudge.try_send(()) {
            // Full: a checkpoint is already due, and it will see these rows.
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("audit: checkpointer stopped; the writer checkpoints itself");
            }
        }
    }
}

/// One PASSIVE checkpoint; true if it copied the whole WAL (the next write
/// then restarts it from the beginning).
fn checkpoint(conn: &Connection) -> bool {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((busy, frames, copied)) => {
            tracing::trace!(busy, frames, copied, "audit: checkpoint");
            busy == 0 && frames == copied
        }
        // Not an audit failure: the rows are committed in the WAL already.
        Err(e) => {
            tracing::debug!(error = %e, "audit: checkpoint did not run");
            false
        }
    }
}
