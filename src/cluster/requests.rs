//! Grant requests in the shared database: asked through the signing
//! replica, decided from any, one cert per request. The transitions and
//! their refusals are the store's (`grants::db`), over PostgreSQL's rows.

use std::time::Duration;

use tokio_postgres::{GenericClient, Row};

use super::holds::{decide_hold, next_request_id, queue};
use super::{chain, grants::suspended, Cluster, ClusterError};
use crate::audit::Event;
use crate::clock;
use crate::grants::db;
use crate::grants::issue::Issued;
use crate::grants::{GrantError, NewRequest, RequestRecord, RequestStatus};

impl Cluster {
    /// Records a new request (and chains `grant.requested`); refused for a
    /// suspended identity.
    pub async fn create_request(
        &self,
        request: &NewRequest,
        client_addr: &str,
    ) -> Result<Result<i64, GrantError>, ClusterError> {
        let scope = match serde_json::to_string(&request.scope) {
            Ok(scope) => scope,
            Err(e) => return Ok(Err(e.into())),
        };
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            if suspended(&txn, &request.identity).await? {
                return Ok(Err(GrantError::Suspended(request.identity.clone())));
            }
            let id = next_request_id(&txn, "grant").await?;
            txn.execute(
                "INSERT INTO grant_requests (id, replica, created_at_us, identity, role, task,
                     reason, scope, pubkey, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
                &[
                    &id,
                    &replica,
                    &clock::now_us(),
                    &request.identity,
                    &request.role,
                    &request.task,
                    &request.reason,
                    &scope,
                    &request.pubkey,
                ],
            )
            .await?;
            let event = db::requested_event(id, request, client_addr);
            chain::append_event(&txn, &replica, &event).await?;
            txn.commit().await?;
            Ok(Ok(id))
        })
        .await
    }

    /// Approves or denies a pending request of either kind: a grant
    /// request made less than `expiry` ago, or a held command.
    pub async fn decide(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        reason: Option<&str>,
        expiry: Duration,
    ) -> Result<Result<(), GrantError>, ClusterError> {
        let source = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let kind: Option<String> = txn
                .query_opt("SELECT kind FROM request_ids WHERE id = $1", &[&id])
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
            let decided = match kind.as_deref() {
                Some("command") => decide_hold(&txn, &source, id, approve, by, reason).await?,
                _ => decide_grant(&txn, &source, id, approve, by, reason, expiry).await?,
            };
            if decided.is_ok() {
                txn.commit().await?;
            }
            Ok(decided)
        })
        .await
    }

    pub async fn request(&self, id: i64) -> Result<Option<RequestRecord>, ClusterError> {
        self.run(async move |client| request_by_id(&*client, id).await)
            .await
    }

    /// Every replica's grant requests, oldest first: pending only, or all.
    pub async fn requests(&self, only_pending: bool) -> Result<Vec<RequestRecord>, ClusterError> {
        self.run(async move |client| {
            queue(&*client, REQUEST_COLUMNS, only_pending, request_from_row).await
        })
        .await
    }

    /// The cert issued for request `id` and its `valid_before`, if any.
    pub async fn cert_for_request(&self, id: i64) -> Result<Option<(String, u64)>, ClusterError> {
        self.run(async move |client| {
            let row = client
                .query_opt(
                    "SELECT cert, valid_before FROM grants WHERE request_id = $1",
                    &[&id],
                )
                .await?;
            let Some(row) = row else { return Ok(None) };
            let valid_before: i64 = row.try_get(1)?;
            Ok(Some((
                row.try_get(0)?,
                u64::try_from(valid_before).unwrap_or(0),
            )))
        })
        .await
    }

    /// Issues the cert of request `id` once: the request is taken
    /// (pending or approved -> issued, refused for a suspended identity),
    /// `issue` signs and records it in this replica's store, and only then
    /// does the taking commit, with the cert beside it. Two deliveries at
    /// once: one issues, the other is refused before signing.
    pub async fn issue_for_request<E: From<GrantError>>(
        &self,
        id: i64,
        identity: &str,
        issue: impl AsyncFnOnce() -> Result<Issued, E>,
    ) -> Result<Result<Issued, E>, ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            if suspended(&txn, identity).await? {
                return Ok(Err(GrantError::Suspended(identity.to_owned()).into()));
            }
            let taken = txn
                .execute(
                    "UPDATE grant_requests SET status = 'issued'
                     WHERE id = $1 AND status IN ('pending', 'approved')",
                    &[&id],
                )
                .await?;
            if taken != 1 {
                return Ok(Err(GrantError::AlreadyIssued(id).into()));
            }
            let issued = match issue().await {
                Ok(issued) => issued,
                Err(e) => return Ok(Err(e)),
            };
            txn.execute(
                "UPDATE grant_requests SET serial = $1 WHERE id = $2",
                &[&issued.serial.to_string(), &id],
            )
            .await?;
            insert_grant(&txn, &replica, Some(id), identity, &issued).await?;
            txn.commit().await?;
            Ok(Ok(issued))
        })
        .await
    }

    /// Records a cert issued without a request (`portcullis grant`), so
    /// every replica knows when it was issued.
    pub async fn record_grant(&self, identity: &str, issued: &Issued) -> Result<(), ClusterError> {
        let replica = self.replica().to_owned();
        self.run(async move |client| insert_grant(&*client, &replica, None, identity, issued).await)
            .await
    }

    /// Marks every pending grant request older than `expiry` expired (with
    /// `grant.expired`); returns how many.
    pub async fn expire_requests(&self, expiry: Duration) -> Result<usize, ClusterError> {
        let source = self.replica().to_owned();
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let rows = txn
                .query(
                    "UPDATE grant_requests SET status = 'expired'
                     WHERE status = 'pending' AND created_at_us <= $1 RETURNING id",
                    &[&db::expired_before(clock::now_us(), expiry)],
                )
                .await?;
            for row in &rows {
                let event = Event::GrantExpired {
                    request_id: row.try_get(0)?,
                };
                chain::append_event(&txn, &source, &event).await?;
            }
            txn.commit().await?;
            Ok(rows.len())
        })
        .await
    }
}

async fn insert_grant(
    client: &impl GenericClient,
    replica: &str,
    request_id: Option<i64>,
    identity: &str,
    issued: &Issued,
) -> Result<(), ClusterError> {
    client
        .execute(
            "INSERT INTO grants (cert_fingerprint, request_id, serial, replica, identity,
                 issued_at_us, valid_before, cert)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &issued.fingerprint,
                &request_id,
                &issued.serial.to_string(),
                &replica,
                &identity,
                &clock::now_us(),
                &i64::try_from(issued.valid_before).unwrap_or(i64::MAX),
                &issued.cert,
            ],
        )
        .await?;
    Ok(())
}

async fn decide_grant(
    txn: &impl GenericClient,
    source: &str,
    id: i64,
    approve: bool,
    by: &str,
    reason: Option<&str>,
    expiry: Duration,
) -> Result<Result<(), GrantError>, ClusterError> {
    let status = if approve { "approved" } else { "denied" };
    let now_us = clock::now_us();
    let changed = txn
        .execute(
            "UPDATE grant_requests SET status = $1, decided_by = $2, decided_at_us = $3,
                 decision_reason = $4
             WHERE id = $5 AND status = 'pending' AND created_at_us > $6",
            &[
                &status,
                &by,
                &now_us,
                &reason,
                &id,
                &db::expired_before(now_us, expiry),
            ],
        )
        .await?;
    if changed != 1 {
        let now = request_by_id(txn, id).await?;
        return Ok(Err(db::undecidable(id, now.as_ref())));
    }
    let event = Event::GrantDecided {
        request_id: id,
        approved: approve,
        by: by.to_owned(),
        reason: reason.map(str::to_owned),
    };
    chain::append_event(txn, source, &event).await?;
    Ok(Ok(()))
}

async fn request_by_id(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<RequestRecord>, ClusterError> {
    let row = client
        .query_opt(&format!("{REQUEST_COLUMNS} WHERE id = $1"), &[&id])
        .await?;
    row.as_ref().map(request_from_row).transpose()
}

const REQUEST_COLUMNS: &str =
    "SELECT id, created_at_us, identity, role, task, reason, scope, pubkey, status,
    decided_by, decided_at_us, decision_reason, serial FROM grant_requests";

fn request_from_row(row: &Row) -> Result<RequestRecord, ClusterError> {
    let scope: String = row.try_get(6)?;
    let status: String = row.try_get(8)?;
    let serial: Option<String> = row.try_get(12)?;
    Ok(RequestRecord {
        id: row.try_get(0)?,
        created_at_us: row.try_get(1)?,
        identity: row.try_get(2)?,
        role: row.try_get(3)?,
        task: row.try_get(4)?,
        reason: row.try_get(5)?,
        scope: serde_json::from_str(&scope).map_err(|_| ClusterError::Corrupt("request scope"))?,
        pubkey: row.try_get(7)?,
        status: RequestStatus::parse(&status).ok_or(ClusterError::Corrupt("request status"))?,
        decided_by: row.try_get(9)?,
        decided_at_us: row.try_get(10)?,
        decision_reason: row.try_get(11)?,
        serial: serial
            .map(|s| s.parse())
            .transpose()
            .map_err(|_| ClusterError::Corrupt("request serial"))?,
    })
}
