//! The control state replicas share, in PostgreSQL (`[cluster]`): the
//! revocations and suspensions, single-use claims, the session index with
//! each replica's heartbeat, and the chain of the control decisions.
//!
//! Invariants: every operation is bounded in time ([`OP_TIMEOUT`]) and a
//! connection that fails or times out is dropped and made again on the next
//! call, so a lost database refuses (admission needs it) instead of
//! hanging; revocations are numbered under one row lock, so they commit in
//! id order and a watcher reading "ids above the last one I saw" misses
//! none.

mod archived;
mod chain;
mod grants;
mod holds;
mod index;
mod ratelimit;
mod requests;
mod schema;
mod sessions;
mod tls;
mod wake;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::ClusterSettings;
pub use archived::Seal;
pub use chain::{ChainEvent, ChainReport};
pub use grants::Admitted;
pub use index::ClusterSession;
pub use sessions::Sweep;
pub use wake::RevocationWake;

/// The longest any one database operation may take before it counts as
/// the database being lost.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Who a CLI write is recorded as, in the control chain.
pub const OPERATOR: &str = "operator";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("cluster database: no answer within {0:?}")]
    Timeout(Duration),
    #[error("cluster database is corrupt: bad {0}")]
    Corrupt(&'static str),
    #[error("cluster database schema {0} is newer than this portcullis knows")]
    NewerSchema(i32),
    #[error("cluster database TLS: {0}")]
    Tls(String),
    #[error("replica name {0:?} is in use by a live replica (its heartbeat is fresh)")]
    NameInUse(String),
}

/// One replica's (or one CLI's) handle on the shared database.
pub struct Cluster {
    settings: ClusterSettings,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    client: Mutex<Option<Client>>,
    /// Set when a session's end could not be put in the index; the
    /// heartbeat then reconciles the index with the store.
    index_behind: AtomicBool,
}

impl Cluster {
    /// Parses the connection settings; connects on first use.
    pub fn new(settings: &ClusterSettings) -> Result<Cluster, ClusterError> {
        let mut config: tokio_postgres::Config = settings.database.parse()?;
        config
            .application_name(format!("portcullis {}", settings.replica))
            .connect_timeout(OP_TIMEOUT)
            // The migration's "already exists, skipping" notices are noise.
            .options("-c client_min_messages=warning")
            .keepalives_idle(Duration::from_secs(5));
        let tls = tls::connector(&mut config, settings.ca_file.as_deref())?;
        Ok(Cluster {
            settings: settings.clone(),
            config,
            tls,
            client: Mutex::new(None),
            index_behind: AtomicBool::new(false),
        })
    }

    pub fn replica(&self) -> &str {
        &self.settings.replica
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Whether an end was missed since the last call (and clears it).
    pub fn take_index_behind(&self) -> bool {
        self.index_behind.swap(false, Ordering::Relaxed)
    }

    /// Runs `op` on the connection (made, and the schema brought up to
    /// date, when there is none), within [`OP_TIMEOUT`].
    async fn run<T>(
        &self,
        op: impl AsyncFnOnce(&mut Client) -> Result<T, ClusterError>,
    ) -> Result<T, ClusterError> {
        let mut slot = self.client.lock().await;
        let outcome = tokio::time::timeout(OP_TIMEOUT, async {
            let client = match slot.take() {
                Some(client) if !client.is_closed() => slot.insert(client),
                _ => slot.insert(self.connect().await?),
            };
            op(client).await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if slot.as_ref().is_none_or(Client::is_closed) || !is_refusal(&e) {
                    *slot = None;
                }
                Err(e)
            }
            Err(_) => {
                *slot = None;
                Err(ClusterError::Timeout(OP_TIMEOUT))
            }
        }
    }

    async fn connect(&self) -> Result<Client, ClusterError> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "cluster database connection ended");
            }
        });
        schema::migrate(&client).await?;
        Ok(client)
    }
}

/// Whether `e` is the database answering "no" (a constraint, bad data)
/// rather than the connection failing: only the latter drops it.
fn is_refusal(e: &ClusterError) -> bool {
    match e {
        ClusterError::Db(db) => db.as_db_error().is_some(),
        ClusterError::Corrupt(_)
        | ClusterError::NewerSchema(_)
        | ClusterError::NameInUse(_)
        | ClusterError::Tls(_) => true,
        ClusterError::Timeout(_) => false,
    }
}
