//! The per-identity rate limits in the shared database: one bucket per
//! (limit, identity) for the whole cluster, so spreading a flood over
//! replicas buys no more tokens. The refill rule is
//! [`Bucket::take`], the same as one process's.

use std::time::Duration;

use super::{Cluster, ClusterError};
use crate::clock;
use crate::config::Rate;
use crate::grants::ratelimit::Bucket;

impl Cluster {
    /// Takes one of `identity`'s tokens of limit `name`; `Ok(Err(wait))`
    /// when none is left.
    pub async fn take_token(
        &self,
        name: &str,
        rate: Rate,
        identity: &str,
    ) -> Result<Result<(), Duration>, ClusterError> {
        self.run(async move |client| {
            let txn = client.transaction().await?;
            let now_us = clock::now_us();
            let full = Bucket::full(rate, now_us);
            txn.execute(
                "INSERT INTO rate_buckets (limit_name, identity, tokens, refilled_at_us)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &name,
                    &identity,
                    &tokens_column(full.tokens),
                    &full.refilled_at_us,
                ],
            )
            .await?;
            let row = txn
                .query_one(
                    "SELECT tokens, refilled_at_us FROM rate_buckets
                     WHERE limit_name = $1 AND identity = $2 FOR UPDATE",
                    &[&name, &identity],
                )
                .await?;
            let tokens: i32 = row.try_get(0)?;
            let mut bucket = Bucket {
                tokens: u32::try_from(tokens).map_err(|_| ClusterError::Corrupt("rate bucket"))?,
                refilled_at_us: row.try_get(1)?,
            };
            let taken = bucket.take(rate, now_us);
            txn.execute(
                "UPDATE rate_buckets SET tokens = $1, refilled_at_us = $2
                 WHERE limit_name = $3 AND identity = $4",
                &[
                    &tokens_column(bucket.tokens),
                    &bucket.refilled_at_us,
                    &name,
                    &identity,
                ],
            )
            .await?;
            txn.commit().await?;
            Ok(taken)
        })
        .await
    }
}

/// A bucket's tokens as the INTEGER column keeps them (a burst is far
/// below its range).
fn tokens_column(tokens: u32) -> i32 {
    i32::try_from(tokens).unwrap_or(i32::MAX)
}
