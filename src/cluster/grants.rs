//! Revocations, suspensions and single-use claims in the shared database:
//! the same rule as the SQLite store ([`db::judge`], [`db::first_covering`]),
//! over PostgreSQL's rows.

use tokio_postgres::{GenericClient, Row};

use super::chain;
use super::{Cluster, ClusterError};
use crate::clock;
use crate::grants::db;
use crate::grants::krl::Revoked;
use crate::grants::{CertFacts, CertState, GrantError, Revocation, RevokeSelector};

/// The channel a revocation's commit notifies (its id as the payload).
pub(super) const REVOCATIONS_CHANNEL: &str = "portcullis_revocations";

/// What admission's check of the shared state found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The newest revocation the check saw: the live registry checks the
    /// session against every one applied after it.
    pub revocations_seen: i64,
    /// Whether the cert's single use was claimed for this replica (it is
    /// released if the session cannot be recorded after all).
    pub claimed: bool,
    /// When the signing node issued the cert, if it is on record: what
    /// identity and task revocations compare with on every replica.
    pub issued_at_us: Option<i64>,
}

impl Cluster {
    /// Checks `cert` against the shared revocations, suspensions and (when
    /// `single_use`) claims, and claims its single use, in one transaction:
    /// of two replicas claiming at once, exactly one succeeds.
    pub async fn admit(
        &self,
        cert: &CertFacts,
        single_use: bool,
    ) -> Result<Result<Admitted, CertState>, ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let seen: i64 = txn
                .query_one("SELECT id FROM revocation_head", &[])
                .await?
                .get(0);
            let mut cert = cert.clone();
            if cert.issued_at_us.is_none() {
                cert.issued_at_us = txn
                    .query_opt(
                        "SELECT issued_at_us FROM grants WHERE cert_fingerprint = $1",
                        &[&cert.fingerprint],
                    )
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
            }
            let cert = &cert;
            let revocation = db::first_covering(cert, candidates(&txn, cert).await?);
            let suspended = suspended(&txn, &cert.key_id).await?;
            let spent = single_use && revocation.is_none() && !suspended && {
                let claimed = txn
                    .execute(
                        "INSERT INTO claims (cert_fingerprint, replica, claimed_at_us)
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&cert.fingerprint, &replica, &clock::now_us()],
                    )
                    .await?;
                claimed == 0
            };
            if let Err(state) = db::judge(cert, revocation, suspended, spent) {
                return Ok(Err(state));
            }
            txn.commit().await?;
            Ok(Ok(Admitted {
                revocations_seen: seen,
                claimed: single_use,
                issued_at_us: cert.issued_at_us,
            }))
        })
        .await
    }

    /// Gives back a single use this replica claimed for a session it could
    /// not record after all (nothing reached the target).
    pub async fn release_claim(&self, cert_fingerprint: &str) -> Result<(), ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            client
                .execute(
                    "DELETE FROM claims WHERE cert_fingerprint = $1 AND replica = $2 AND local_id IS NULL",
                    &[&cert_fingerprint, &replica],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Records a revocation (and, for an identity, its suspension), chains
    /// it, and wakes every replica's watch; returns the revocation's id.
    pub async fn revoke(
        &self,
        selector: &RevokeSelector,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Result<i64, GrantError>, ClusterError> {
        if *selector == RevokeSelector::Serial(0) {
            return Ok(Err(GrantError::SerialZero));
        }
        let (kind, value) = selector.kind_and_value();
        let source = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let id: i64 = txn
                .query_one("UPDATE revocation_head SET id = id + 1 RETURNING id", &[])
                .await?
                .get(0);
            let at_us = clock::now_us();
            txn.execute(
                "INSERT INTO revocations (id, at_us, kind, value, by, reason) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &at_us, &kind, &value, &by, &reason],
            )
            .await?;
            let body = serde_json::json!({
                "revocation_id": id,
                "selector": selector.to_string(),
                "by": by,
                "reason": reason,
            });
            chain::append(&txn, &source, "grant.revoked", &body).await?;
            if let RevokeSelector::Identity(identity) = selector {
                let suspended = txn
                    .execute(
                        "INSERT INTO suspensions (identity, at_us, by, reason) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (identity) WHERE lifted_at_us IS NULL DO NOTHING",
                        &[identity, &at_us, &by, &reason],
                    )
                    .await?;
                if suspended == 1 {
                    let body = serde_json::json!({"identity": identity, "by": by, "reason": reason});
                    chain::append(&txn, &source, "identity.suspended", &body).await?;
                }
            }
            txn.execute(
                "SELECT pg_notify($1, $2)",
                &[&REVOCATIONS_CHANNEL, &id.to_string()],
            )
            .await?;
            txn.commit().await?;
            Ok(Ok(id))
        })
        .await
    }

    /// Lifts an identity's suspension (and chains `identity.reinstated`).
    pub async fn reinstate(
        &self,
        identity: &str,
        by: &str,
    ) -> Result<Result<(), GrantError>, ClusterError> {
        let source = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let lifted = txn
                .execute(
                    "UPDATE suspensions SET lifted_at_us = $1, lifted_by = $2
                     WHERE identity = $3 AND lifted_at_us IS NULL",
                    &[&clock::now_us(), &by, &identity],
                )
                .await?;
            if lifted == 0 {
                return Ok(Err(GrantError::NotSuspended(identity.to_owned())));
            }
            let body = serde_json::json!({"identity": identity, "by": by});
            chain::append(&txn, &source, "identity.reinstated", &body).await?;
            txn.commit().await?;
            Ok(Ok(()))
        })
        .await
    }

    /// Whether `identity` is suspended now.
    pub async fn is_suspended(&self, identity: &str) -> Result<bool, ClusterError> {
        self.run(async move |client| suspended(&*client, identity).await)
            .await
    }

    /// The identities suspended now.
    pub async fn suspended_identities(&self) -> Result<Vec<String>, ClusterError> {
        self.run(async |client| {
            let rows = client
                .query(
                    "SELECT DISTINCT identity FROM suspensions WHERE lifted_at_us IS NULL ORDER BY identity",
                    &[],
                )
                .await?;
            rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
        })
        .await
    }

    /// Everything revoked now: what a KRL lists.
    pub async fn revoked(&self) -> Result<Revoked, ClusterError> {
        Ok(Revoked {
            revocations: self.revocations_after(0).await?,
            suspended: self.suspended_identities().await?,
        })
    }

    /// Revocations with ids above `after`, oldest first.
    pub async fn revocations_after(&self, after: i64) -> Result<Vec<Revocation>, ClusterError> {
        self.run(async move |client| {
            let rows = client
                .query(
                    "SELECT id, at_us, kind, value, by, reason FROM revocations WHERE id > $1 ORDER BY id",
                    &[&after],
                )
                .await?;
            rows.iter().map(revocation_from_row).collect()
        })
        .await
    }

    /// The newest revocation's id (0 when there is none).
    pub async fn last_revocation_id(&self) -> Result<i64, ClusterError> {
        self.run(async |client| {
            Ok(client
                .query_one("SELECT id FROM revocation_head", &[])
                .await?
                .get(0))
        })
        .await
    }
}

/// Whether `identity` is suspended now.
pub(super) async fn suspended(
    client: &impl GenericClient,
    identity: &str,
) -> Result<bool, ClusterError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM suspensions WHERE identity = $1 AND lifted_at_us IS NULL)",
            &[&identity],
        )
        .await?
        .try_get(0)?)
}

/// The revocations that may cover `cert` (the rule decides which do).
async fn candidates(
    client: &impl GenericClient,
    cert: &CertFacts,
) -> Result<Vec<Revocation>, ClusterError> {
    let serial = cert.serial.to_string();
    let rows = client
        .query(
            "SELECT id, at_us, kind, value, by, reason FROM revocations
             WHERE (kind = 'serial' AND value = $1)
                OR (kind = 'identity' AND value = $2)
                OR (kind = 'task' AND value = $3)
                OR (kind = 'fingerprint' AND value IN ($4, $5))
             ORDER BY id",
            &[
                &serial,
                &cert.key_id,
                &cert.task,
                &cert.fingerprint,
                &cert.key_fingerprint,
            ],
        )
        .await?;
    rows.iter().map(revocation_from_row).collect()
}

fn revocation_from_row(row: &Row) -> Result<Revocation, ClusterError> {
    let kind: String = row.try_get(2)?;
    let value: String = row.try_get(3)?;
    Ok(Revocation {
        id: row.try_get(0)?,
        at_us: row.try_get(1)?,
        selector: RevokeSelector::from_kind(&kind, value)
            .ok_or(ClusterError::Corrupt("revocation kind"))?,
        by: row.try_get(4)?,
        reason: row.try_get(5)?,
    })
}
