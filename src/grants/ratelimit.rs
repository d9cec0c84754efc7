//! Per-identity request rate limit: a token bucket, so a flooding identity
//! gets refusals while everyone else is unaffected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Burst size and refill period of the bucket.
pub const BURST: u32 = 5;
pub const REFILL_EVERY: Duration = Duration::from_secs(6);

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: u32,
    refilled: Instant,
}

impl RateLimiter {
    /// Takes one token for `identity`; `Err(wait)` when none is left.
    pub fn take(&self, identity: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(REFILL_EVERY);
        };
        let bucket = buckets.entry(identity.to_string()).or_insert(Bucket {
            tokens: BURST,
            refilled: now,
        });
        let periods =
            now.duration_since(bucket.refilled).as_secs_f64() / REFILL_EVERY.as_secs_f64();
        let earned = periods.floor() as u32;
        if earned > 0 {
            bucket.tokens = bucket.tokens.saturating_add(earned).min(BURST);
            bucket.refilled += REFILL_EVERY * earned;
        }
        if bucket.tokens == 0 {
            return Err(REFILL_EVERY.saturating_sub(now.duration_since(bucket.refilled)));
        }
        bucket.tokens -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_identity() {
        let limiter = RateLimiter::default();
        for _ in 0..BURST {
            assert!(limiter.take("flood").is_ok());
        }
        assert!(limiter.take("flood").is_err());
        assert!(limiter.take("calm").is_ok());
    }
}
