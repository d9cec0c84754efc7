//! Connection-level abuse limits: how many connections may be
//! unauthenticated at once, and a back-off for sources that keep failing to
//! authenticate.
//!
//! Invariant: an [`Unauthenticated`] permit exists for every connection that
//! has not authenticated yet, and the count drops when it authenticates or
//! goes away, whichever comes first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// The window in which a source's failures are counted.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct SourceGuard {
    limits: Limits,
    unauthenticated: Arc<AtomicUsize>,
    sources: Mutex<HashMap<IpAddr, SourceRecord>>,
    refusals: Mutex<RefusalLog>,
}

/// Connection refusals are recorded at most [`REFUSAL_RECORDS_PER_SEC`] a
/// second; the rest are counted into the next record, so a flood cannot
/// turn into a flood of store writes.
const REFUSAL_RECORDS_PER_SEC: u32 = 10;

struct RefusalLog {
    second: Instant,
    recorded: u32,
    suppressed: u64,
}

struct SourceRecord {
    window_start: Instant,
    failures: u32,
    /// Refused until then; doubles while the source keeps failing.
    blocked_until: Option<Instant>,
    backoff: Duration,
}

/// Held while a connection has not authenticated.
pub struct Unauthenticated {
    count: Arc<AtomicUsize>,
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SourceGuard {
    pub fn new(limits: Limits) -> SourceGuard {
        SourceGuard {
            limits,
            unauthenticated: Arc::new(AtomicUsize::new(0)),
            sources: Mutex::new(HashMap::new()),
            refusals: Mutex::new(RefusalLog {
                second: Instant::now(),
                recorded: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether this connection refusal gets its own record; `Some(n)` with
    /// the number of refusals folded into it since the last one.
    pub fn record_refusal(&self) -> Option<u64> {
        let mut log = self.refusals.lock().ok()?;
        let now = Instant::now();
        if now.duration_since(log.second) >= Duration::from_secs(1) {
            log.second = now;
            log.recorded = 0;
        }
        if log.recorded >= REFUSAL_RECORDS_PER_SEC {
            log.suppressed += 1;
            return None;
        }
        log.recorded += 1;
        Some(std::mem::take(&mut log.suppressed))
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Unauthenticated, String> {
        if let Some(wait) = self.blocked_for(ip) {
            return Err(format!(
                "too many failed authentications from {ip}; try again in {}s",
                wait.as_secs().max(1)
            ));
        }
        let before = self.unauthenticated.fetch_add(1, Ordering::SeqCst);
        let permit = Unauthenticated {
            count: self.unauthenticated.clone(),
        };
        if before >= self.limits.max_unauthenticated {
            return Err(format!(
                "too many unauthenticated connections (max_unauthenticated = {})",
                self.limits.max_unauthenticated
            ));
        }
        Ok(permit)
    }

    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let sources = self.sources.lock().ok()?;
        let until = sources.get(&ip)?.blocked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failed authentication from `ip`; past the limit the source
    /// is blocked, for twice as long each time it comes back failing.
    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut sources) = self.sources.lock() else {
            return;
        };
        let now = Instant::now();
        let record = sources.entry(ip).or_insert(SourceRecord {
            window_start: now,
            failures: 0,
            blocked_until: None,
            backoff: Duration::from_secs(1),
        });
        if now.duration_since(record.window_start) > FAILURE_WINDOW {
            record.window_start = now;
            record.failures = 0;
        }
        record.failures += 1;
        if record.failures > self.limits.auth_failures_per_source {
            record.blocked_until = Some(now + record.backoff);
            record.backoff = (record.backoff * 2).min(MAX_BACKOFF);
        }
        // Keep the table bounded: forget sources that are neither failing
        // nor blocked.
        if sources.len() > 4096 {
            sources.retain(|_, r| {
                r.blocked_until.is_some_and(|u| u > now)
                    || now.duration_since(r.window_start) <= FAILURE_WINDOW
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_unauthenticated: usize, failures: u32) -> Limits {
        Limits {
            max_unauthenticated,
            auth_failures_per_source: failures,
            ..Limits::default()
        }
    }

    #[test]
    fn unauthenticated_connections_are_capped_and_released() {
        let guard = SourceGuard::new(limits(2, 5));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = guard.admit(ip).unwrap();
        let _b = guard.admit(ip).unwrap();
        assert!(guard.admit(ip).is_err());
        drop(a);
        assert!(guard.admit(ip).is_ok());
    }

    #[test]
    fn a_failing_source_is_backed_off_and_others_are_not() {
        let guard = SourceGuard::new(limits(100, 2));
        let bad: IpAddr = "10.0.0.1".parse().unwrap();
        let good: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            guard.failed(bad);
        }
        assert!(guard.admit(bad).is_err());
        assert!(guard.admit(good).is_ok());
    }
}
