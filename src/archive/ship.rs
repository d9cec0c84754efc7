//! The shipper: copies this replica's ended sessions into the archive and
//! seals them, for as long as the server runs. What is shipped is decided
//! by the seals in the cluster's database, so a restart resumes where the
//! last run stopped: a session uploaded but not sealed is uploaded again
//! (the same bytes, the same key), one sealed is never touched again.
//! A round reads only the sessions from the oldest one not yet sealed on,
//! so its cost follows what is new, not the size of the store.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{seal_of_bytes, Archive, ArchiveError, Sealed};
use crate::audit::{Reader, SessionId, Transcript};
use crate::cluster::Cluster;

/// How often the store is looked at for newly ended sessions.
pub const SHIP_EVERY: Duration = Duration::from_secs(1);
/// Sessions shipped per round at most (the rest wait for the next).
const PER_ROUND: usize = 32;

pub async fn run(store: PathBuf, cluster: Arc<Cluster>, archive: Arc<Archive>) {
    let mut shipper = Shipper::default();
    let mut failing = false;
    loop {
        tokio::time::sleep(SHIP_EVERY).await;
        match shipper.round(&store, &cluster, &archive).await {
            Ok(_) if failing => {
                tracing::warn!("archive: shipping again");
                failing = false;
            }
            Ok(_) => {}
            Err(e) if !failing => {
                tracing::error!(error = %e, "archive: cannot ship ended sessions; retrying");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// What the shipper knows between rounds, so a round reads only what is
/// new: every session below `low` is sealed; `sealed` holds the seals
/// from `low` on (loaded from the database once, then kept here).
#[derive(Default)]
struct Shipper {
    low: i64,
    sealed: Option<BTreeSet<i64>>,
}

impl Shipper {
    /// Ships (and seals) up to [`PER_ROUND`] ended, unsealed sessions.
    async fn round(
        &mut self,
        store: &std::path::Path,
        cluster: &Cluster,
        archive: &Archive,
    ) -> Result<usize, ArchiveError> {
        let sealed = match &mut self.sealed {
            Some(sealed) => sealed,
            None => self.sealed.insert(cluster.sealed().await?),
        };
        let path = store.to_path_buf();
        let low = self.low;
        let sessions = blocking(move || Ok(Reader::open(&path)?.session_ids_from(low)?)).await?;
        // The first session still open or unsealed is where the next
        // round starts reading.
        let first_pending = sessions
            .iter()
            .find(|(id, ended)| !ended || !sealed.contains(&id.0))
            .map(|(id, _)| id.0);
        let pending: Vec<SessionId> = sessions
            .iter()
            .filter(|(id, ended)| *ended && !sealed.contains(&id.0))
            .map(|(id, _)| *id)
            .take(PER_ROUND)
            .collect();
        for id in &pending {
            ship_one(store, cluster, archive, *id).await?;
            sealed.insert(id.0);
        }
        let next_low =
            first_pending.unwrap_or_else(|| sessions.last().map_or(low, |(id, _)| id.0 + 1));
        sealed.retain(|id| *id >= next_low);
        self.low = next_low;
        Ok(pending.len())
    }
}

/// Uploads one ended session and records its seal.
async fn ship_one(
    store: &std::path::Path,
    cluster: &Cluster,
    archive: &Archive,
    id: SessionId,
) -> Result<(), ArchiveError> {
    let path = store.to_path_buf();
    let transcript: Transcript = blocking(move || {
        Reader::open(&path)?
            .transcript(id)?
            .ok_or_else(|| ArchiveError::Document(format!("session {id} vanished from the store")))
    })
    .await?;
    let bytes = Sealed::new(cluster.replica(), transcript)
        .to_bytes()
        .map_err(|e| ArchiveError::Document(e.to_string()))?;
    let seal = seal_of_bytes(&archive.object_key(cluster.replica(), id), &bytes);
    archive.put(&seal.object_key, bytes).await?;
    cluster.seal(id, &seal).await?;
    tracing::info!(session = %id, object = seal.object_key, "archive: session sealed");
    Ok(())
}

/// Runs a read of the local store off the async threads.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ArchiveError::Document(e.to_string()))?
}
