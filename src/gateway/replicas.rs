//! With `[cluster]`: this replica's heartbeat, and the sweep that marks
//! the open sessions of a replica that stopped answering interrupted.

use std::sync::Arc;
use std::time::Duration;

use super::ServerContext;
use crate::audit::{Reader, SessionId};
use crate::cluster::{Cluster, ClusterError};

/// How often a replica heartbeats (and sweeps); `[cluster] dead_after` is
/// at least two of these.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Every this many heartbeats, the index's open sessions of this replica
/// are checked against its store (an end the database missed is put in).
const RECONCILE_EVERY: u32 = 10;

/// Takes this replica's name in the cluster. A name whose heartbeat is
/// fresh may be this replica's own, killed a moment ago: wait for it to
/// go stale (`dead_after`) before refusing, since a live replica of the
/// same name keeps it fresh.
pub async fn join(cluster: &Cluster) -> Result<(), ClusterError> {
    let give_up = tokio::time::Instant::now() + cluster.settings().dead_after + HEARTBEAT;
    loop {
        match cluster.join().await {
            Err(ClusterError::NameInUse(name)) if tokio::time::Instant::now() < give_up => {
                tracing::warn!(
                    replica = name,
                    "replica name in use: waiting for its heartbeat to go stale"
                );
                tokio::time::sleep(HEARTBEAT).await;
            }
            joined => return joined,
        }
    }
}

pub async fn heartbeat(ctx: Arc<ServerContext>) {
    let Some(cluster) = ctx.cluster.clone() else {
        return;
    };
    let mut reachable = true;
    let mut beats = 0u32;
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        beats = beats.wrapping_add(1);
        match cluster.heartbeat_and_sweep().await {
            Ok(swept) => {
                if cluster.take_index_behind()
                    || !reachable
                    || beats.is_multiple_of(RECONCILE_EVERY)
                {
                    if let Err(e) = reconcile(&ctx, &cluster).await {
                        tracing::warn!(error = %e, "could not check the session index against the store");
                    }
                }
                if !reachable {
                    tracing::warn!("cluster database reachable again: admitting new sessions");
                    reachable = true;
                }
                for (replica, session) in swept {
                    tracing::warn!(
                        replica,
                        session,
                        "marked interrupted: its replica stopped answering"
                    );
                }
            }
            Err(e) if reachable => {
                tracing::error!(error = %e, "cluster database lost: refusing new sessions until it is back");
                reachable = false;
            }
            Err(_) => {}
        }
    }
}

/// Puts into the index the ends of this replica's sessions that the store
/// has and the index lacks (they ended while the database was lost).
async fn reconcile(ctx: &ServerContext, cluster: &Cluster) -> Result<(), String> {
    let open = cluster.open_sessions().await.map_err(|e| e.to_string())?;
    if open.is_empty() {
        return Ok(());
    }
    let store = ctx.config.store.clone();
    let ended = tokio::task::spawn_blocking(move || {
        let reader = Reader::open(&store)?;
        let mut ended: Vec<(SessionId, i64, String)> = Vec::new();
        for id in open {
            if let Some(record) = reader.session(id)? {
                if let (Some(at), Some(reason)) = (record.ended_at_us, record.end_reason) {
                    ended.push((id, at, reason));
                }
            }
        }
        Ok::<_, crate::audit::StoreError>(ended)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    for (id, at, reason) in ended {
        cluster
            .end_session(id, at, &reason)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
