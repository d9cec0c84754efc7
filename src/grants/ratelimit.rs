//! Per-identity rate limits (grant requests, held commands): a token
//! bucket each, so a flooding identity gets refusals while everyone else
//! is unaffected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Rate;

/// One identity's bucket. The refill rule is the same wherever a bucket
/// is kept (this process, or the cluster's database); times are micros
/// on one clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub tokens: u32,
    pub refilled_at_us: i64,
}

impl Bucket {
    /// A full bucket, as a new identity gets.
    pub fn full(rate: Rate, now_us: i64) -> Bucket {
        Bucket {
            tokens: sane(rate).burst,
            refilled_at_us: now_us,
        }
    }

    /// Takes one token at `now_us`; `Err(wait)` when none is left.
    pub fn take(&mut self, rate: Rate, now_us: i64) -> Result<(), Duration> {
        let Rate { burst, every } = sane(rate);
        let every_us = i64::try_from(every.as_micros()).unwrap_or(i64::MAX);
        let since_us = now_us.saturating_sub(self.refilled_at_us).max(0);
        let earned = u32::try_from((since_us / every_us).min(i64::from(burst))).unwrap_or(burst);
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(burst);
            self.refilled_at_us = match self.tokens == burst {
                // Full: time spent full earns nothing later.
                true => now_us,
                false => self.refilled_at_us + every_us * i64::from(earned),
            };
        }
        if self.tokens == 0 {
            let waited = Duration::from_micros(u64::try_from(since_us).unwrap_or(0));
            return Err(every.saturating_sub(waited));
        }
        self.tokens -= 1;
        Ok(())
    }
}

/// At least one token, refilled at most once a millisecond.
fn sane(rate: Rate) -> Rate {
    Rate {
        burst: rate.burst.max(1),
        every: rate.every.max(Duration::from_millis(1)),
    }
}

/// The buckets of one limit, kept in this process.
pub struct RateLimiter {
    rate: Rate,
    started: Instant,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> RateLimiter {
        RateLimiter {
            rate,
            started: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes one token for `identity`; `Err(wait)` when none is left.
    pub fn take(&self, identity: &str) -> Result<(), Duration> {
        let now_us = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(sane(self.rate).every);
        };
        buckets
            .entry(identity.to_string())
            .or_insert_with(|| Bucket::full(self.rate, now_us))
            .take(self.rate, now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_identity() {
        let limiter = RateLimiter::new(Rate {
            burst: 3,
            every: Duration::from_secs(60),
        });
        for _ in 0..3 {
            assert!(limiter.take("flood").is_ok());
        }
        assert!(limiter.take("flood").is_err());
        assert!(limiter.take("calm").is_ok());
    }

    #[test]
    fn tokens_come_back_one_per_period() {
        let limiter = RateLimiter::new(Rate {
            burst: 1,
            every: Duration::from_millis(50),
        });
        assert!(limiter.take("a").is_ok());
        assert!(limiter.take("a").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.take("a").is_ok());
    }

    #[test]
    fn a_bucket_refills_by_whole_periods_and_caps_at_its_burst() {
        let rate = Rate {
            burst: 2,
            every: Duration::from_secs(10),
        };
        let mut bucket = Bucket::full(rate, 0);
        assert!(bucket.take(rate, 0).is_ok());
        assert!(bucket.take(rate, 1).is_ok());
        assert_eq!(bucket.take(rate, 4_000_000), Err(Duration::from_secs(6)));
        assert!(bucket.take(rate, 10_000_001).is_ok());
        assert!(bucket.take(rate, 10_000_002).is_err());
        // Long idle earns a full bucket, no more.
        let mut idle = bucket;
        assert!(idle.take(rate, 1_000_000_000).is_ok());
        assert!(idle.take(rate, 1_000_000_000).is_ok());
        assert!(idle.take(rate, 1_000_000_000).is_err());
    }
}
