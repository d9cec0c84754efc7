//! Held commands in the shared database: a hold made on one replica is
//! decided from any (`portcullis approve`, the web viewer) and run once by
//! whichever replica the agent's retry reaches. The transitions and their
//! refusals are the store's (`grants::db`), over PostgreSQL's rows.

use tokio_postgres::{GenericClient, Row};

use super::chain;
use super::{Cluster, ClusterError};
use crate::audit::SessionId;
use crate::clock;
use crate::grants::db::{self, HoldRecord, HoldStatus, NewHold};
use crate::grants::GrantError;

impl Cluster {
    /// Records a new hold of this replica's session (and chains
    /// `command.held`); returns its request id.
    pub async fn create_hold(&self, hold: &NewHold) -> Result<i64, ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let id = next_request_id(&txn, "command").await?;
            txn.execute(
                "INSERT INTO held_commands (id, replica, created_at_us, expires_at_us, session_id,
                     channel, identity, role, task, target, cert_fingerprint, command, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending')",
                &[
                    &id,
                    &replica,
                    &clock::now_us(),
                    &hold.expires_at_us,
                    &hold.session.0,
                    &hold.channel.map(i64::from),
                    &hold.identity,
                    &hold.role,
                    &hold.task,
                    &hold.target,
                    &hold.cert_fingerprint,
                    &hold.command.as_bytes(),
                ],
            )
            .await?;
            chain::append_event(&txn, &replica, &db::held_event(id, hold)).await?;
            txn.commit().await?;
            Ok(id)
        })
        .await
    }

    pub async fn hold(&self, id: i64) -> Result<Option<HoldRecord>, ClusterError> {
        self.run(async move |client| hold_by_id(&*client, id).await)
            .await
    }

    /// The newest hold of this exact command for this cert on this target
    /// that may still be decided or run (see [`db::hold_for_retry`]).
    pub async fn hold_for_retry(
        &self,
        cert_fingerprint: &str,
        target: &str,
        command: &str,
    ) -> Result<Option<HoldRecord>, ClusterError> {
        self.run(async move |client| {
            let sql = format!(
                "{HOLD_COLUMNS} WHERE cert_fingerprint = $1 AND target = $2 AND command = $3
                   AND status IN ('pending', 'approved', 'denied') AND expires_at_us > $4
                 ORDER BY id DESC LIMIT 1"
            );
            let row = client
                .query_opt(
                    &sql,
                    &[
                        &cert_fingerprint,
                        &target,
                        &command.as_bytes(),
                        &clock::now_us(),
                    ],
                )
                .await?;
            row.as_ref().map(hold_from_row).transpose()
        })
        .await
    }

    /// Every replica's holds, oldest first: pending ones only, or all.
    pub async fn holds(&self, only_pending: bool) -> Result<Vec<HoldRecord>, ClusterError> {
        self.run(async move |client| {
            queue(&*client, HOLD_COLUMNS, only_pending, hold_from_row).await
        })
        .await
    }

    /// Takes an approved hold to run it, once (`approved` -> `ran`, for the
    /// same cert, target and exact command, before it expires), then
    /// `record` commits the run on this replica's store; if that fails the
    /// hold stays approved.
    pub async fn claim_approved<E: From<GrantError>>(
        &self,
        id: i64,
        cert_fingerprint: &str,
        target: &str,
        command: &str,
        session: SessionId,
        record: impl AsyncFnOnce(HoldRecord) -> Result<(), E>,
    ) -> Result<Result<(), E>, ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let changed = txn
                .execute(
                    "UPDATE held_commands SET status = 'ran', ran_replica = $1, ran_session_id = $2,
                         ran_at_us = $3
                     WHERE id = $4 AND status = 'approved' AND expires_at_us > $3
                       AND cert_fingerprint = $5 AND target = $6 AND command = $7",
                    &[
                        &replica,
                        &session.0,
                        &clock::now_us(),
                        &id,
                        &cert_fingerprint,
                        &target,
                        &command.as_bytes(),
                    ],
                )
                .await?;
            let held = hold_by_id(&txn, id).await?;
            let held = match held {
                Some(held) if changed == 1 => held,
                held => return Ok(Err(db::unclaimable(id, held.as_ref()).into())),
            };
            if let Err(e) = record(held).await {
                return Ok(Err(e));
            }
            txn.commit().await?;
            Ok(Ok(()))
        })
        .await
    }

    /// Marks every pending or approved hold past its time expired (with
    /// `command.expired`); returns how many.
    pub async fn expire_holds(&self) -> Result<usize, ClusterError> {
        let source = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let rows = txn
                .query(
                    "UPDATE held_commands SET status = 'expired'
                     WHERE status IN ('pending', 'approved') AND expires_at_us <= $1
                     RETURNING id, session_id, replica",
                    &[&clock::now_us()],
                )
                .await?;
            for row in &rows {
                let event = crate::audit::Event::CommandExpired {
                    request_id: row.try_get(0)?,
                    held_session: row.try_get(1)?,
                };
                let held_on: String = row.try_get(2)?;
                chain::append_held_event(&txn, &source, &event, &held_on).await?;
            }
            txn.commit().await?;
            Ok(rows.len())
        })
        .await
    }
}

/// Approves or denies hold `id` in the caller's transaction (chaining
/// `command.approved` or `command.denied`, naming the replica it was held
/// on).
pub(super) async fn decide_hold(
    txn: &impl GenericClient,
    source: &str,
    id: i64,
    approve: bool,
    by: &str,
    reason: Option<&str>,
) -> Result<Result<(), GrantError>, ClusterError> {
    let status = if approve { "approved" } else { "denied" };
    let changed = txn
        .execute(
            "UPDATE held_commands SET status = $1, decided_by = $2, decided_at_us = $3,
                 decision_reason = $4
             WHERE id = $5 AND status = 'pending' AND expires_at_us > $3",
            &[&status, &by, &clock::now_us(), &reason, &id],
        )
        .await?;
    match hold_by_id(txn, id).await? {
        Some(held) if changed == 1 => {
            let event = db::decision_event(&held, approve, by, reason);
            let held_on = held.replica.as_deref().unwrap_or_default();
            chain::append_held_event(txn, source, &event, held_on).await?;
            Ok(Ok(()))
        }
        held => Ok(Err(db::undecidable_hold(id, held.as_ref()))),
    }
}

/// The rows `select` reads (grant requests or holds), oldest first:
/// pending ones only, or all.
pub(super) async fn queue<T>(
    client: &impl GenericClient,
    select: &str,
    only_pending: bool,
    from_row: fn(&Row) -> Result<T, ClusterError>,
) -> Result<Vec<T>, ClusterError> {
    let filter = match only_pending {
        true => " WHERE status = 'pending'",
        false => "",
    };
    let rows = client
        .query(&format!("{select}{filter} ORDER BY id"), &[])
        .await?;
    rows.iter().map(from_row).collect()
}

/// A fresh id from the one id space of requests.
pub(super) async fn next_request_id(
    txn: &impl GenericClient,
    kind: &str,
) -> Result<i64, ClusterError> {
    Ok(txn
        .query_one(
            "INSERT INTO request_ids (kind) VALUES ($1) RETURNING id",
            &[&kind],
        )
        .await?
        .try_get(0)?)
}

async fn hold_by_id(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<HoldRecord>, ClusterError> {
    let row = client
        .query_opt(&format!("{HOLD_COLUMNS} WHERE id = $1"), &[&id])
        .await?;
    row.as_ref().map(hold_from_row).transpose()
}

const HOLD_COLUMNS: &str = "SELECT id, created_at_us, expires_at_us, session_id, replica, channel,
    identity, role, task, target, cert_fingerprint, command, status, decided_by, decided_at_us,
    decision_reason, ran_session_id, ran_at_us FROM held_commands";

fn hold_from_row(row: &Row) -> Result<HoldRecord, ClusterError> {
    let channel: Option<i64> = row.try_get(5)?;
    let command: Vec<u8> = row.try_get(11)?;
    let status: String = row.try_get(12)?;
    Ok(HoldRecord {
        id: row.try_get(0)?,
        created_at_us: row.try_get(1)?,
        expires_at_us: row.try_get(2)?,
        session: row.try_get(3)?,
        replica: Some(row.try_get(4)?),
        channel: channel
            .map(u32::try_from)
            .transpose()
            .map_err(|_| ClusterError::Corrupt("held command channel"))?,
        identity: row.try_get(6)?,
        role: row.try_get(7)?,
        task: row.try_get(8)?,
        target: row.try_get(9)?,
        cert_fingerprint: row.try_get(10)?,
        command: String::from_utf8(command).map_err(|_| ClusterError::Corrupt("held command"))?,
        status: HoldStatus::parse(&status).ok_or(ClusterError::Corrupt("hold status"))?,
        decided_by: row.try_get(13)?,
        decided_at_us: row.try_get(14)?,
        decision_reason: row.try_get(15)?,
        ran_session: row.try_get(16)?,
        ran_at_us: row.try_get(17)?,
    })
}
