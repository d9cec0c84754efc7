//! Reading other replicas' sessions, as the CLI (`--replica`) and the web
//! viewer both do: the cluster's index says which sessions there are, the
//! archive holds their transcripts, each checked against its chained seal
//! ([`Archive::fetch`]).

use super::{Archive, ArchiveError};
use crate::audit::{SessionId, Transcript};
use crate::cluster::{Cluster, ClusterError, ClusterSession};
use crate::config::Config;

/// This replica's handle on the cluster's sessions: the shared database,
/// and the archive when `[archive]` is set.
pub struct Remote {
    cluster: Cluster,
    archive: Option<Archive>,
}

impl Remote {
    /// `None` without `[cluster]`. Connects to nothing yet.
    pub fn open(config: &Config) -> Result<Option<Remote>, ArchiveError> {
        let Some(settings) = &config.cluster else {
            return Ok(None);
        };
        let archive = config.archive.as_ref().map(Archive::open).transpose()?;
        Ok(Some(Remote {
            cluster: Cluster::new(settings)?,
            archive,
        }))
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Whether `replica` names this replica (its sessions are in the
    /// local store, not read from the archive).
    pub fn is_local(&self, replica: &str) -> bool {
        self.cluster.replica() == replica
    }

    /// `replica`'s session `id` as the index has it (`None`: no such
    /// replica or session).
    pub async fn indexed(
        &self,
        replica: &str,
        id: SessionId,
    ) -> Result<Option<ClusterSession>, ClusterError> {
        self.cluster.indexed_session(replica, id).await
    }

    /// Whether `[archive]` is set: other replicas' transcripts can be read.
    pub fn has_archive(&self) -> bool {
        self.archive.is_some()
    }

    /// Whether `replica`'s session `id` is sealed in the archive (its
    /// transcript may be fetched). Reads only the seal, none of the session.
    pub async fn is_archived(&self, replica: &str, id: SessionId) -> Result<bool, ArchiveError> {
        Ok(self.cluster.seal_of(replica, id).await?.is_some())
    }

    /// The transcript of `replica`'s session `id`, read from the archive
    /// and checked against the seal chained in the cluster's database.
    pub async fn transcript(
        &self,
        replica: &str,
        id: SessionId,
    ) -> Result<Transcript, ArchiveError> {
        let archive = self.archive.as_ref().ok_or_else(|| {
            ArchiveError::Config(
                "another replica's session is read from the archive: this config has no [archive]"
                    .into(),
            )
        })?;
        archive.fetch(&self.cluster, replica, id).await
    }
}
