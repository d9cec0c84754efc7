//! A per-identity rate limit, kept where the book is: one bucket per
//! identity in this process, or one for the whole cluster.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::config::Rate;
use crate::grants::ratelimit::RateLimiter;

/// Why no token was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// None left: one comes back after this long.
    Wait(Duration),
    /// The cluster's database could not be asked.
    Unavailable,
}

pub struct Limiter {
    name: &'static str,
    local: RateLimiter,
    cluster: Option<Arc<Cluster>>,
}

impl Limiter {
    pub fn new(name: &'static str, rate: Rate, cluster: Option<Arc<Cluster>>) -> Limiter {
        Limiter {
            name,
            local: RateLimiter::new(rate),
            cluster,
        }
    }

    /// Takes one of `identity`'s tokens.
    pub async fn take(&self, identity: &str) -> Result<(), Throttled> {
        let Some(cluster) = &self.cluster else {
            return self.local.take(identity).map_err(Throttled::Wait);
        };
        match cluster
            .take_token(self.name, self.local.rate(), identity)
            .await
        {
            Ok(taken) => taken.map_err(Throttled::Wait),
            Err(e) => {
                tracing::warn!(error = %e, limit = self.name, "rate limit: the cluster database failed");
                Err(Throttled::Unavailable)
            }
        }
    }
}
