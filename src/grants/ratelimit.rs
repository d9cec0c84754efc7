//! Per-identity rate limits (grant requests, held commands): a token
//! bucket each, so a flooding identity gets refusals while everyone else
//! is unaffected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Rate;

pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: u32,
    refilled: Instant,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> RateLimiter {
        RateLimiter {
            rate: Rate {
                burst: rate.burst.max(1),
                every: rate.every.max(Duration::from_millis(1)),
            },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `identity`; `Err(wait)` when none is left.
    pub fn take(&self, identity: &str) -> Result<(), Duration> {
        let Rate { burst, every } = self.rate;
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(every);
        };
        let bucket = buckets.entry(identity.to_string()).or_insert(Bucket {
            tokens: burst,
            refilled: now,
        });
        let periods = now.duration_since(bucket.refilled).as_secs_f64() / every.as_secs_f64();
        let earned = periods.floor().min(f64::from(burst)) as u32;
        if earned > 0 {
            bucket.tokens = bucket.tokens.saturating_add(earned).min(burst);
            bucket.refilled = match bucket.tokens == burst {
                // Full: time spent full earns nothing later.
                true => now,
                false => bucket.refilled + every * earned,
            };
        }
        if bucket.tokens == 0 {
            return Err(every.saturating_sub(now.duration_since(bucket.refilled)));
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
}
