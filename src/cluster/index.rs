//! Reading the session index: every replica's sessions, as `portcullis
//! sessions` and the web viewer list them.

use tokio_postgres::{GenericClient, Row};

use super::{Cluster, ClusterError};
use crate::audit::{SessionFilter, SessionId, SessionRecord};

/// A session as the index has it: which replica recorded it, and its row.
#[derive(Debug, Clone)]
pub struct ClusterSession {
    pub replica: String,
    pub record: SessionRecord,
}

/// The index's columns, in [`session_from_row`]'s order.
const INDEX_COLUMNS: &str = "replica, local_id, started_at_us, ended_at_us, end_reason, identity,
    key_id, task, cert_serial, ca_fingerprint, cert_fingerprint, role, client_addr, target, login";

impl Cluster {
    /// The sessions of every replica matching `filter`, oldest first.
    pub async fn sessions(
        &self,
        filter: &SessionFilter,
    ) -> Result<Vec<ClusterSession>, ClusterError> {
        self.run(async move |client| {
            matching(&*client, filter, None, Order::OldestFirst, None).await
        })
        .await
    }

    /// `replica`'s session `id` as the index has it, if it exists.
    pub async fn indexed_session(
        &self,
        replica: &str,
        id: SessionId,
    ) -> Result<Option<ClusterSession>, ClusterError> {
        self.run(async move |client| {
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {INDEX_COLUMNS} FROM sessions WHERE replica = $1 AND local_id = $2"
                    ),
                    &[&replica, &id.0],
                )
                .await?;
            row.as_ref().map(session_from_row).transpose()
        })
        .await
    }

    /// A page of the sessions of every replica matching `filter` (its
    /// identity, task, target, start and end of the time range), newest
    /// first: at most `limit`, started before `before_us` when given.
    pub async fn page_sessions(
        &self,
        filter: &SessionFilter,
        before_us: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ClusterSession>, ClusterError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async move |client| {
            matching(&*client, filter, before_us, Order::NewestFirst, Some(limit)).await
        })
        .await
    }
}

enum Order {
    OldestFirst,
    NewestFirst,
}

/// The index's sessions matching `filter`'s identity, task, target and
/// time range, started before `before_us` when given; at most `limit`.
async fn matching(
    client: &impl GenericClient,
    filter: &SessionFilter,
    before_us: Option<i64>,
    order: Order,
    limit: Option<i64>,
) -> Result<Vec<ClusterSession>, ClusterError> {
    let order = match order {
        Order::OldestFirst => "started_at_us, replica, local_id",
        Order::NewestFirst => "started_at_us DESC, replica, local_id DESC",
    };
    let rows = client
        .query(
            &format!(
                "SELECT {INDEX_COLUMNS} FROM sessions
                 WHERE ($1::text IS NULL OR identity = $1)
                   AND ($2::text IS NULL OR task = $2)
                   AND ($3::text IS NULL OR target = $3)
                   AND ($4::bigint IS NULL OR started_at_us >= $4)
                   AND ($5::bigint IS NULL OR started_at_us < $5)
                   AND ($6::bigint IS NULL OR started_at_us < $6)
                 ORDER BY {order}
                 LIMIT $7"
            ),
            &[
                &filter.identity,
                &filter.task,
                &filter.target,
                &filter.since_us,
                &filter.until_us,
                &before_us,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(session_from_row).collect()
}

fn session_from_row(row: &Row) -> Result<ClusterSession, ClusterError> {
    let serial: String = row.try_get(8)?;
    Ok(ClusterSession {
        replica: row.try_get(0)?,
        record: SessionRecord {
            id: SessionId(row.try_get(1)?),
            started_at_us: row.try_get(2)?,
            ended_at_us: row.try_get(3)?,
            end_reason: row.try_get(4)?,
            identity: row.try_get(5)?,
            key_id: row.try_get(6)?,
            task: row.try_get(7)?,
            cert_serial: serial
                .parse()
                .map_err(|_| ClusterError::Corrupt("session serial"))?,
            ca_fingerprint: row.try_get(9)?,
            cert_fingerprint: row.try_get(10)?,
            role: row.try_get(11)?,
            client_addr: row.try_get(12)?,
            target: row.try_get(13)?,
            login: row.try_get(14)?,
        },
    })
}
