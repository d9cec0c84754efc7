//! Connection-level abuse limits: how many connections may be
//! unauthenticated at once, and a back-off for sources whose connections
//! keep failing to authenticate.
//!
//! Invariant: an [`Unauthenticated`] permit exists for every connection that
//! has not authenticated yet, and the count drops when it authenticates or
//! goes away, whichever comes first. A source is charged once per failed
//! CONNECTION (as OpenSSH's PerSourcePenalties do), never per key offer, so
//! a client that offers several keys is one failure; sources in
//! `auth_failures_exempt` are never backed off.

use super::proxy_header::HeaderError;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// The window in which a source's failures are counted.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Connection refusals are recorded at most [`REFUSAL_RECORDS_PER_SEC`] a
/// second; the rest are counted into the next record, so a flood cannot
/// turn into a flood of store writes.
const REFUSAL_RECORDS_PER_SEC: u32 = 10;

/// The limits a `limit.hit` record can name, as the config spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    PreAuthTimeout,
    MaxUnauthenticated,
    AuthFailuresPerSource,
    MaxSessionsPerIdentity,
    MaxChannelsPerSession,
    /// A PROXY protocol header where none may be, or none where one must be.
    TrustedProxies,
}

impl Limit {
    /// Its name in the config (and in `limit.hit` rows and metrics).
    pub fn name(&self) -> &'static str {
        match self {
            Limit::PreAuthTimeout => "pre_auth_timeout",
            Limit::MaxUnauthenticated => "max_unauthenticated",
            Limit::AuthFailuresPerSource => "auth_failures_per_source",
            Limit::MaxSessionsPerIdentity => "max_sessions_per_identity",
            Limit::MaxChannelsPerSession => "max_channels_per_session",
            Limit::TrustedProxies => "trusted_proxies",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a new connection is refused before any SSH exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefusal {
    #[error("too many failed authentications from {ip}; try again in {wait_secs}s")]
    BackedOff { ip: IpAddr, wait_secs: u64 },
    #[error("too many unauthenticated connections (max_unauthenticated = {0})")]
    TooManyUnauthenticated(usize),
    #[error("{0}")]
    ProxyHeader(#[from] HeaderError),
}

impl ConnectionRefusal {
    pub fn limit(&self) -> Limit {
        match self {
            ConnectionRefusal::BackedOff { .. } => Limit::AuthFailuresPerSource,
            ConnectionRefusal::TooManyUnauthenticated(_) => Limit::MaxUnauthenticated,
            ConnectionRefusal::ProxyHeader(_) => Limit::TrustedProxies,
        }
    }
}

pub struct SourceGuard {
    limits: Limits,
    unauthenticated: Arc<AtomicUsize>,
    sources: Mutex<HashMap<IpAddr, SourceRecord>>,
    refusals: Mutex<RefusalLog>,
}

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
    pub fn admit(&self, ip: IpAddr) -> Result<Unauthenticated, ConnectionRefusal> {
        if let Some(wait) = self.blocked_for(ip) {
            return Err(ConnectionRefusal::BackedOff {
                ip,
                wait_secs: wait.as_secs().max(1),
            });
        }
        let before = self.unauthenticated.fetch_add(1, Ordering::SeqCst);
        let permit = Unauthenticated {
            count: self.unauthenticated.clone(),
        };
        if before >= self.limits.max_unauthenticated {
            return Err(ConnectionRefusal::TooManyUnauthenticated(
                self.limits.max_unauthenticated,
            ));
        }
        Ok(permit)
    }

    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let sources = self.sources.lock().ok()?;
        let until = sources.get(&ip)?.blocked_until?;
        until.checked_duration_since(Instant::now())
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.limits
            .auth_failures_exempt
            .iter()
            .any(|block| block.contains(ip))
    }

    /// Charges `ip` for one connection that ended without authenticating;
    /// past the limit the source is blocked, for twice as long each time
    /// it comes back failing.
    pub fn failed_connection(&self, ip: IpAddr) {
        if self.exempt(ip) {
            return;
        }
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
    use crate::cidr::Cidr;

    fn limits(max_unauthenticated: usize, failures: u32) -> Limits {
        Limits {
            max_unauthenticated,
            auth_failures_per_source: failures,
            ..Limits::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn unauthenticated_connections_are_capped_and_released() {
        let guard = SourceGuard::new(limits(2, 5));
        let a = guard.admit(ip("127.0.0.1")).unwrap();
        let _b = guard.admit(ip("127.0.0.1")).unwrap();
        assert!(guard.admit(ip("127.0.0.1")).is_err());
        drop(a);
        assert!(guard.admit(ip("127.0.0.1")).is_ok());
    }

    #[test]
    fn a_failing_source_is_backed_off_and_others_are_not() {
        let guard = SourceGuard::new(limits(100, 2));
        for _ in 0..3 {
            guard.failed_connection(ip("10.0.0.1"));
        }
        assert!(guard.admit(ip("10.0.0.1")).is_err());
        assert!(guard.admit(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn an_exempt_network_is_never_backed_off() {
        let mut limits = limits(100, 1);
        limits.auth_failures_exempt = Cidr::parse("10.1.0.0/16").into_iter().collect();
        let guard = SourceGuard::new(limits);
        for _ in 0..5 {
            guard.failed_connection(ip("10.1.2.3"));
            guard.failed_connection(ip("10.2.0.1"));
        }
        assert!(guard.admit(ip("10.1.2.3")).is_ok());
        assert!(guard.admit(ip("10.2.0.1")).is_err());
    }
}
