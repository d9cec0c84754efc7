//! A read-only connection for the server.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::grants::GrantError;

/// A read-only connection to the grants tables, for the server's polling
/// and for questions asked off the async runtime.
#[derive(Clone)]
pub struct GrantsReader {
    conn: Arc<Mutex<Connection>>,
}

impl GrantsReader {
    /// Opens the store read-only; it must exist (the writer made it).
    pub fn open(path: &Path) -> Result<GrantsReader, GrantError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(GrantsReader {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on a blocking thread with the connection.
    pub async fn run<R, F>(&self, f: F) -> Result<R, GrantError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, GrantError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().map_err(|_| GrantError::Corrupt("lock"))?;
            f(&guard)
        })
        .await
        .map_err(|_| GrantError::Corrupt("worker"))?
    }
}
