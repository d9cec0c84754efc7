//! The session index every replica writes its sessions to, and the
//! heartbeats by which the others learn a replica died (and mark its open
//! sessions interrupted).

use std::time::Duration;

use super::{Cluster, ClusterError};
use crate::audit::{SessionId, SessionRecord, INTERRUPTED};

/// PostgreSQL's own clock in unix micros: heartbeats and their ages are
/// judged on one clock, whatever the replicas' clocks say.
const DB_NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

/// Sessions a sweep marked interrupted: (replica, local session id).
pub type Sweep = Vec<(String, i64)>;

impl Cluster {
    /// Claims this replica's name for a starting server: refused while
    /// another live replica heartbeats under it. Sessions this name left
    /// open (it was killed) are marked interrupted.
    pub async fn join(&self) -> Result<(), ClusterError> {
        let replica = self.replica().to_owned();
        let dead_after = micros(self.settings().dead_after);
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let fresh: Option<bool> = txn
                .query_opt(
                    &format!(
                        "SELECT heartbeat_at_us > {DB_NOW_US} - $2 FROM replicas WHERE name = $1 FOR UPDATE"
                    ),
                    &[&replica, &dead_after],
                )
                .await?
                .map(|row| row.get(0));
            if fresh == Some(true) {
                return Err(ClusterError::NameInUse(replica));
            }
            txn.execute(
                &format!(
                    "INSERT INTO replicas (name, started_at_us, heartbeat_at_us)
                     VALUES ($1, {DB_NOW_US}, {DB_NOW_US})
                     ON CONFLICT (name) DO UPDATE
                     SET started_at_us = EXCLUDED.started_at_us, heartbeat_at_us = EXCLUDED.heartbeat_at_us"
                ),
                &[&replica],
            )
            .await?;
            txn.execute(
                &format!(
                    "UPDATE sessions SET ended_at_us = {DB_NOW_US}, end_reason = $2
                     WHERE replica = $1 AND ended_at_us IS NULL"
                ),
                &[&replica, &INTERRUPTED],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
        .await
    }

    /// A stopping server gives its name back: a restart may take it at once.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            client
                .execute(
                    "UPDATE replicas SET heartbeat_at_us = 0 WHERE name = $1",
                    &[&replica],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// This replica is alive; then any replica silent for `dead_after` has
    /// its open sessions marked interrupted (returned).
    pub async fn heartbeat_and_sweep(&self) -> Result<Sweep, ClusterError> {
        let replica = self.replica().to_owned();
        let dead_after = micros(self.settings().dead_after);
        self.run(async move |client| {
            client
                .execute(
                    &format!("UPDATE replicas SET heartbeat_at_us = {DB_NOW_US} WHERE name = $1"),
                    &[&replica],
                )
                .await?;
            let rows = client
                .query(
                    &format!(
                        "UPDATE sessions s
                         SET ended_at_us = {DB_NOW_US},
                             end_reason = $3 || ': replica ' || r.name || ' stopped answering'
                         FROM replicas r
                         WHERE s.replica = r.name AND s.ended_at_us IS NULL AND r.name <> $1
                           AND r.heartbeat_at_us < {DB_NOW_US} - $2
                         RETURNING s.replica, s.local_id"
                    ),
                    &[&replica, &dead_after, &INTERRUPTED],
                )
                .await?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
        .await
    }

    /// Puts a session this replica recorded into the index, and ties the
    /// single use it claimed (if any) to it.
    pub async fn index_session(
        &self,
        record: &SessionRecord,
        claimed: bool,
    ) -> Result<(), ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            txn.execute(
                "INSERT INTO sessions (replica, local_id, started_at_us, identity, key_id, task,
                     cert_serial, ca_fingerprint, cert_fingerprint, role, client_addr, target, login)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &replica,
                    &record.id.0,
                    &record.started_at_us,
                    &record.identity,
                    &record.key_id,
                    &record.task,
                    &record.cert_serial.to_string(),
                    &record.ca_fingerprint,
                    &record.cert_fingerprint,
                    &record.role,
                    &record.client_addr,
                    &record.target,
                    &record.login,
                ],
            )
            .await?;
            if claimed {
                txn.execute(
                    "UPDATE claims SET local_id = $1 WHERE cert_fingerprint = $2 AND replica = $3",
                    &[&record.id.0, &record.cert_fingerprint, &replica],
                )
                .await?;
            }
            txn.commit().await?;
            Ok(())
        })
        .await
    }

    /// Marks a session of this replica ended in the index.
    pub async fn end_session(
        &self,
        id: SessionId,
        at_us: i64,
        reason: &str,
    ) -> Result<(), ClusterError> {
        let replica = self.replica().to_owned();
        let ended = self
            .run(async move |client| {
                client
                    .execute(
                        "UPDATE sessions SET ended_at_us = $3, end_reason = $4
                         WHERE replica = $1 AND local_id = $2 AND ended_at_us IS NULL",
                        &[&replica, &id.0, &at_us, &reason],
                    )
                    .await?;
                Ok(())
            })
            .await;
        if ended.is_err() {
            self.index_behind
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        ended
    }

    /// This replica's sessions the index has open.
    pub async fn open_sessions(&self) -> Result<Vec<SessionId>, ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let rows = client
                .query(
                    "SELECT local_id FROM sessions WHERE replica = $1 AND ended_at_us IS NULL",
                    &[&replica],
                )
                .await?;
            rows.iter()
                .map(|row| Ok(SessionId(row.try_get(0)?)))
                .collect()
        })
        .await
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
