//! With `[cluster]`: this replica's heartbeat, and the sweep that marks
//! the open sessions of a replica that stopped answering interrupted.

use std::sync::Arc;
use std::time::Duration;

use super::ServerContext;
use crate::cluster::{Cluster, ClusterError};

/// How often a replica heartbeats (and sweeps); `[cluster] dead_after` is
/// at least two of these.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

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
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        match cluster.heartbeat_and_sweep().await {
            Ok(swept) => {
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
