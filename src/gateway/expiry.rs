//! Pending grant requests and held commands that nobody decides within
//! `[limits] request_expiry` (a hold: or before its cert ends) expire: the
//! server marks them and chains `grant.expired` / `command.expired`.
//!
//! Invariant: marking is only the record; a request past its time is
//! refused by `approve` and never runs whether or not it was marked yet
//! (the decision and the claim check the time themselves).

use std::sync::Arc;
use std::time::Duration;

use super::ServerContext;

const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Marks expired requests for as long as the server runs.
pub async fn sweep(ctx: Arc<ServerContext>) {
    let expiry = ctx.limits.request_expiry;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        match ctx.book.expire(expiry).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "pending requests expired"),
            Err(e) => tracing::warn!(error = %e, "could not mark expired requests"),
        }
    }
}
