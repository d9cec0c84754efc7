//! The chain of the control decisions kept in the shared database
//! (revocations, suspensions, reinstatements): each row's hash covers the
//! previous row's hash and its own fields, so an edit, a removal or an
//! insertion shows in `portcullis verify`.

use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

use super::{Cluster, ClusterError};
use crate::audit::Event;
use crate::clock;

/// What a walk of the shared chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub events: i64,
    /// The first row whose hash or link does not hold, and why.
    pub broken: Option<(i64, String)>,
}

/// Appends one event in the caller's transaction (which the head row's
/// lock serializes with every other append).
pub(super) async fn append(
    txn: &impl GenericClient,
    source: &str,
    kind: &str,
    body: &serde_json::Value,
) -> Result<(), ClusterError> {
    let head = txn
        .query_one("SELECT seq, hash FROM chain_head FOR UPDATE", &[])
        .await?;
    let seq: i64 = head.try_get::<_, i64>(0)? + 1;
    let prev: String = head.try_get(1)?;
    let at_us = clock::now_us();
    let body = body.to_string();
    let hash = link(&prev, seq, at_us, source, kind, &body);
    txn.execute(
        "INSERT INTO events (seq, at_us, source, kind, body, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&seq, &at_us, &source, &kind, &body, &prev, &hash],
    )
    .await?;
    txn.execute("UPDATE chain_head SET seq = $1, hash = $2", &[&seq, &hash])
        .await?;
    Ok(())
}

/// Appends an audit event (its JSON, as the store chains it).
pub(super) async fn append_event(
    txn: &impl GenericClient,
    source: &str,
    event: &Event,
) -> Result<(), ClusterError> {
    let body = serde_json::to_value(event).map_err(|_| ClusterError::Corrupt("event"))?;
    append(txn, source, event.kind(), &body).await
}

/// Appends an event about a held command, naming the replica whose
/// session held it (the event's `held_session` is that replica's id).
pub(super) async fn append_held_event(
    txn: &impl GenericClient,
    source: &str,
    event: &Event,
    held_on: &str,
) -> Result<(), ClusterError> {
    let mut body = serde_json::to_value(event).map_err(|_| ClusterError::Corrupt("event"))?;
    if let Some(fields) = body.as_object_mut() {
        fields.insert("held_replica".into(), held_on.into());
    }
    append(txn, source, event.kind(), &body).await
}

fn link(prev: &str, seq: i64, at_us: i64, source: &str, kind: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    for field in [
        prev,
        &seq.to_string(),
        &at_us.to_string(),
        source,
        kind,
        body,
    ] {
        // Length-prefixed, so no two field lists hash alike.
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// One event of the shared chain, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    pub seq: i64,
    pub at_us: i64,
    /// The replica (or operator command) that appended it.
    pub source: String,
    pub kind: String,
    /// The event's fields, as JSON.
    pub body: String,
}

impl Cluster {
    /// At most `limit` events of the shared chain after `after_seq` (and
    /// from `since_us` on, when given), oldest first.
    pub async fn chain_events(
        &self,
        after_seq: i64,
        since_us: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ChainEvent>, ClusterError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async move |client| {
            let rows = client
                .query(
                    "SELECT seq, at_us, source, kind, body FROM events
                     WHERE seq > $1 AND ($2::BIGINT IS NULL OR at_us >= $2)
                     ORDER BY seq LIMIT $3",
                    &[&after_seq, &since_us, &limit],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(ChainEvent {
                        seq: row.try_get(0)?,
                        at_us: row.try_get(1)?,
                        source: row.try_get(2)?,
                        kind: row.try_get(3)?,
                        body: row.try_get(4)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Walks the whole shared chain, and checks the head names its end.
    pub async fn verify_chain(&self) -> Result<ChainReport, ClusterError> {
        self.run(async |client| {
            let rows = client
                .query(
                    "SELECT seq, at_us, source, kind, body, prev_hash, hash FROM events ORDER BY seq",
                    &[],
                )
                .await?;
            let head = client.query_one("SELECT seq, hash FROM chain_head", &[]).await?;
            let (mut expected_seq, mut prev) = (1i64, String::new());
            let mut broken = None;
            for row in &rows {
                let seq: i64 = row.try_get(0)?;
                let stored: String = row.try_get(6)?;
                let computed = link(
                    &prev,
                    seq,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                );
                let problem = if seq != expected_seq {
                    Some(format!("expected seq {expected_seq}"))
                } else if row.try_get::<_, String>(5)? != prev {
                    Some("its link does not name the previous row".to_owned())
                } else if computed != stored {
                    Some("its hash does not match its fields".to_owned())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    broken = Some((seq, problem));
                    break;
                }
                expected_seq += 1;
                prev = stored;
            }
            if broken.is_none()
                && (head.try_get::<_, i64>(0)? != expected_seq - 1
                    || head.try_get::<_, String>(1)? != prev)
            {
                broken = Some((expected_seq, "the head does not name the last row".to_owned()));
            }
            Ok(ChainReport {
                events: rows.len() as i64,
                broken,
            })
        })
        .await
    }
}
