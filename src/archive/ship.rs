//! The shipper: copies this replica's ended sessions into the archive and
//! seals them, for as long as the server runs. What is shipped is decided
//! by the seals in the cluster's database, so a restart resumes where the
//! last run stopped: a session uploaded but not sealed is uploaded again
//! (the same bytes, the same key), one sealed is never touched again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{seal_of_bytes, Archive, ArchiveError, Sealed};
use crate::audit::{Reader, SessionFilter, SessionId, Transcript};
use crate::cluster::Cluster;

/// How often the store is looked at for newly ended sessions.
pub const SHIP_EVERY: Duration = Duration::from_secs(1);
/// Sessions shipped per round at most (the rest wait for the next).
const PER_ROUND: usize = 32;

pub async fn run(store: PathBuf, cluster: Arc<Cluster>, archive: Arc<Archive>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(SHIP_EVERY).await;
        match ship_round(&store, &cluster, &archive).await {
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

/// Ships (and seals) up to [`PER_ROUND`] ended, unsealed sessions.
pub async fn ship_round(
    store: &std::path::Path,
    cluster: &Cluster,
    archive: &Archive,
) -> Result<usize, ArchiveError> {
    let sealed = cluster.sealed().await?;
    let path = store.to_path_buf();
    let pending: Vec<SessionId> = blocking(move || {
        let ended = Reader::open(&path)?.list_sessions(&SessionFilter::default())?;
        Ok(ended
            .into_iter()
            .filter(|s| s.ended_at_us.is_some() && !sealed.contains(&s.id.0))
            .map(|s| s.id)
            .take(PER_ROUND)
            .collect())
    })
    .await?;
    for id in &pending {
        let path = store.to_path_buf();
        let id = *id;
        let transcript: Transcript = blocking(move || {
            Reader::open(&path)?.transcript(id)?.ok_or_else(|| {
                ArchiveError::Document(format!("session {id} vanished from the store"))
            })
        })
        .await?;
        let bytes = Sealed::new(cluster.replica(), transcript)
            .to_bytes()
            .map_err(|e| ArchiveError::Document(e.to_string()))?;
        let seal = seal_of_bytes(&archive.object_key(cluster.replica(), id), &bytes);
        archive.put(&seal.object_key, bytes).await?;
        cluster.seal(id, &seal).await?;
        tracing::info!(session = %id, object = seal.object_key, "archive: session sealed");
    }
    Ok(pending.len())
}

/// Runs a read of the local store off the async threads.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ArchiveError::Document(e.to_string()))?
}
