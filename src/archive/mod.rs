//! The transcript archive (`[archive]`): each ended session, sealed into
//! one object of an S3-compatible bucket, so a session recorded on one
//! replica is shown, replayed, exported and verified from any other.
//!
//! Invariants: the hot path never waits on the archive (sessions are
//! recorded write-ahead to the local store; [`ship`] copies ended ones
//! afterwards); an object is trusted only if its bytes hash to the seal
//! chained in the cluster's database; a session is sealed once (a restart
//! re-uploads the same bytes under the same key and leaves the seal be).

mod document;
mod remote;
pub mod ship;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload};

use crate::audit::{SessionId, StoreError, Transcript};
use crate::cluster::{Cluster, ClusterError};
use crate::config::ArchiveSettings;
pub use document::{seal_of_bytes, Sealed};
pub use remote::Remote;

/// The longest one upload or download may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive: {0}")]
    Store(#[from] object_store::Error),
    #[error("archive: {0}")]
    Config(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Local(#[from] StoreError),
    #[error("session {replica}/{id} is not in the archive (not ended, or not shipped yet)")]
    NotArchived { replica: String, id: i64 },
    #[error("archive: the object of session {replica}/{id} does not match its seal: {problem}")]
    Tampered {
        replica: String,
        id: i64,
        problem: String,
    },
    #[error("archive: {0}")]
    Document(String),
}

/// A handle on the bucket, and the prefix of every key in it.
pub struct Archive {
    store: AmazonS3,
    prefix: String,
}

impl Archive {
    pub fn open(settings: &ArchiveSettings) -> Result<Archive, ArchiveError> {
        // reqwest's rustls takes the process's provider: ring, as the rest
        // of the tree (installing twice is harmless).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let options = ClientOptions::new()
            .with_timeout(TRANSFER_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(5));
        let path = settings.url.strip_prefix("s3://").unwrap_or_default();
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(options);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(file) = &settings.secret_access_key_file {
            builder = builder.with_secret_access_key(read_secret(file)?);
        }
        Ok(Archive {
            store: builder.build()?,
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The object key of `replica`'s session `id`.
    pub fn object_key(&self, replica: &str, id: SessionId) -> String {
        let key = format!("sessions/{replica}/{}.json", id.0);
        match self.prefix.is_empty() {
            true => key,
            false => format!("{}/{key}", self.prefix),
        }
    }

    /// Stores `bytes` under `key`.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Fetches `replica`'s session `id` and checks it against its seal.
    pub async fn fetch(
        &self,
        cluster: &Cluster,
        replica: &str,
        id: SessionId,
    ) -> Result<Transcript, ArchiveError> {
        let not_archived = || ArchiveError::NotArchived {
            replica: replica.to_owned(),
            id: id.0,
        };
        let seal = cluster
            .seal_of(replica, id)
            .await?
            .ok_or_else(not_archived)?;
        let tampered = |problem: String| ArchiveError::Tampered {
            replica: replica.to_owned(),
            id: id.0,
            problem,
        };
        let object = self
            .store
            .get(&ObjectPath::from(seal.object_key.as_str()))
            .await?;
        // Read no more than the seal says there is.
        if i64::try_from(object.meta.size).ok() != Some(seal.bytes) {
            return Err(tampered(format!(
                "it is {} bytes, its seal says {}",
                object.meta.size, seal.bytes
            )));
        }
        let bytes = object.bytes().await?;
        if seal_of_bytes(&seal.object_key, &bytes) != seal {
            return Err(tampered("its bytes do not hash to the chained seal".into()));
        }
        let sealed = Sealed::parse(&bytes).map_err(tampered)?;
        if sealed.replica != replica || sealed.transcript.session.id != id {
            return Err(tampered("it holds another session".into()));
        }
        Ok(sealed.transcript)
    }
}

fn read_secret(file: &std::path::Path) -> Result<String, ArchiveError> {
    let fail = |what: &str| ArchiveError::Config(format!("{}: {what}", file.display()));
    let meta = std::fs::metadata(file).map_err(|e| fail(&e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(fail("readable by group or others: chmod 0600"));
    }
    let text = std::fs::read_to_string(file).map_err(|e| fail(&e.to_string()))?;
    Ok(text.trim().to_owned())
}
