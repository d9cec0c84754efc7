//! The seals of archived sessions: which object holds a session's
//! transcript and the SHA-256 of its bytes, recorded (and chained as
//! `archive.sealed`) once the object is stored. A reader trusts an
//! object only if its bytes hash to its seal.

use std::collections::BTreeSet;

use super::chain;
use super::{Cluster, ClusterError};
use crate::audit::SessionId;
use crate::clock;

/// Where a session's transcript is archived, and what its bytes hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub object_key: String,
    pub sha256: String,
    pub bytes: i64,
}

impl Cluster {
    /// Records the seal of this replica's session `id` (and chains it);
    /// a session sealed before (a restart between the upload and this) is
    /// left as it was. Returns whether this call sealed it.
    pub async fn seal(&self, id: SessionId, seal: &Seal) -> Result<bool, ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let inserted = txn
                .execute(
                    "INSERT INTO archived (replica, local_id, object_key, sha256, bytes, sealed_at_us)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[
                        &replica,
                        &id.0,
                        &seal.object_key,
                        &seal.sha256,
                        &seal.bytes,
                        &clock::now_us(),
                    ],
                )
                .await?;
            if inserted == 1 {
                let body = serde_json::json!({
                    "replica": replica,
                    "session": id.0,
                    "object_key": seal.object_key,
                    "sha256": seal.sha256,
                    "bytes": seal.bytes,
                });
                chain::append(&txn, &replica, "archive.sealed", &body).await?;
            }
            txn.commit().await?;
            Ok(inserted == 1)
        })
        .await
    }

    /// The seal of `replica`'s session `id`, if it was archived.
    pub async fn seal_of(
        &self,
        replica: &str,
        id: SessionId,
    ) -> Result<Option<Seal>, ClusterError> {
        self.run(async move |client| {
            let row = client
                .query_opt(
                    "SELECT object_key, sha256, bytes FROM archived WHERE replica = $1 AND local_id = $2",
                    &[&replica, &id.0],
                )
                .await?;
            Ok(match row {
                Some(row) => Some(Seal {
                    object_key: row.try_get(0)?,
                    sha256: row.try_get(1)?,
                    bytes: row.try_get(2)?,
                }),
                None => None,
            })
        })
        .await
    }

    /// The sessions of this replica already sealed.
    pub async fn sealed(&self) -> Result<BTreeSet<i64>, ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let rows = client
                .query(
                    "SELECT local_id FROM archived WHERE replica = $1",
                    &[&replica],
                )
                .await?;
            rows.iter()
                .map(|row| Ok(row.try_get::<_, i64>(0)?))
                .collect()
        })
        .await
    }
}
