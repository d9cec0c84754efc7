//! `[cluster]`: the PostgreSQL database replicas share their control state
//! in, and this replica's name there. Absent: one machine, SQLite only.
//!
//! Invariant: parsing touches no network; the database URL (it may hold a
//! password) is never printed, only its host and port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How long a replica may miss its heartbeat before the others mark its
/// open sessions interrupted, when `[cluster] dead_after` does not say.
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClusterFile {
    database: Option<String>,
    replica: Option<String>,
    dead_after: Option<String>,
    ca_file: Option<PathBuf>,
}

/// What `[cluster]` comes to.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// A libpq connection string or `postgres://` URL.
    pub database: String,
    /// This replica's name: unique in the cluster, it keys its sessions.
    pub replica: String,
    pub dead_after: Duration,
    /// The CA certificates (PEM) the database's TLS certificate is checked
    /// against; set: every connection is TLS.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ClusterSettings {
    // The URL may carry a password: never in a log line or an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("replica", &self.replica)
            .field("dead_after", &self.dead_after)
            .finish_non_exhaustive()
    }
}

/// Whether `name` can be a replica's name: 1 to 64 letters, digits, '-',
/// '_' or '.', and not only dots. It names objects in the archive (and
/// paths of the web viewer), so no "." or ".." path segments, no '/'.
pub fn is_replica_name(name: &str) -> bool {
    !name.is_empty()
        && !name.bytes().all(|b| b == b'.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl ClusterFile {
    pub(super) fn resolve(&self, base: &Path) -> Result<Option<ClusterSettings>, String> {
        let (database, replica) = match (&self.database, &self.replica) {
            (None, None) if self.dead_after.is_none() && self.ca_file.is_none() => return Ok(None),
            (Some(database), Some(replica)) => (database, replica),
            _ => return Err("[cluster] needs both database and replica".into()),
        };
        if !is_replica_name(replica) {
            return Err(format!(
                "[cluster] replica = {replica:?}: 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        let dead_after = match &self.dead_after {
            None => DEFAULT_DEAD_AFTER,
            Some(text) => crate::policy::parse_duration(text)
                .map_err(|e| format!("[cluster] dead_after: {e}"))?,
        };
        if dead_after < Duration::from_secs(2) {
            return Err("[cluster] dead_after: at least 2s (heartbeats are 1 s apart)".into());
        }
        Ok(Some(ClusterSettings {
            database: database.clone(),
            replica: replica.clone(),
            dead_after,
            ca_file: self.ca_file.as_ref().map(|p| base.join(p)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(database: Option<&str>, replica: Option<&str>) -> ClusterFile {
        ClusterFile {
            database: database.map(str::to_owned),
            replica: replica.map(str::to_owned),
            dead_after: None,
            ca_file: None,
        }
    }

    #[test]
    fn absent_is_one_machine_and_half_a_section_is_refused() {
        assert_eq!(file(None, None).resolve(Path::new("/")), Ok(None));
        assert!(file(Some("postgres://h/db"), None)
            .resolve(Path::new("/"))
            .is_err());
        assert!(file(None, Some("a")).resolve(Path::new("/")).is_err());
        assert!(file(Some("postgres://h/db"), Some("a/b"))
            .resolve(Path::new("/"))
            .is_err());
        assert!(file(Some("postgres://h/db"), Some(".."))
            .resolve(Path::new("/"))
            .is_err());
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let settings = file(Some("postgres://u:hunter2@h/db"), Some("a"))
            .resolve(Path::new("/"))
            .unwrap()
            .unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
