//! With `[cluster]`: this replica's heartbeat, and the sweep that marks
//! the open sessions of a replica that stopped answering interrupted.

use std::sync::Arc;
use std::time::Duration;

use super::ServerContext;

/// How often a replica heartbeats (and sweeps); `[cluster] dead_after` is
/// at least two of these.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

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
