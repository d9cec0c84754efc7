//! `[limits]`: abuse limits and the bounds of pending requests; every key
//! is optional.

use std::time::Duration;

use serde::Deserialize;

use crate::cidr::Cidr;

/// `[limits]`: abuse limits; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pre_auth_timeout: Option<String>,
    max_unauthenticated: Option<usize>,
    auth_failures_per_source: Option<u32>,
    max_sessions_per_identity: Option<usize>,
    max_channels_per_session: Option<usize>,
    idle_timeout: Option<String>,
    keepalive_interval: Option<String>,
    max_command_bytes: Option<usize>,
    auth_failures_exempt: Option<Vec<String>>,
    request_expiry: Option<String>,
    held_command_wait: Option<String>,
    grant_request_burst: Option<u32>,
    grant_request_every: Option<String>,
    held_command_burst: Option<u32>,
    held_command_every: Option<String>,
}

/// Abuse limits with their defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A connection must authenticate within this long.
    pub pre_auth_timeout: Duration,
    /// Connections not yet authenticated, across all sources.
    pub max_unauthenticated: usize,
    /// Failed connections (ones that tried to authenticate, or ran out of
    /// pre_auth_timeout, and were not admitted) a source may make per
    /// minute before it is refused, with a back-off that doubles each
    /// further minute it keeps failing.
    pub auth_failures_per_source: u32,
    /// Sources never backed off (an agent host behind which many agents
    /// share one address, a monitoring probe).
    pub auth_failures_exempt: Vec<Cidr>,
    pub max_sessions_per_identity: usize,
    pub max_channels_per_session: usize,
    /// A session with no channel traffic for this long is ended.
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub max_command_bytes: usize,
    /// Pending grant requests and held commands nobody decides within
    /// this long expire.
    pub request_expiry: Duration,
    /// How long an exec channel waits for the decision on a command it
    /// held before it answers "still pending" (exit status 75).
    pub held_command_wait: Duration,
    /// Grant requests per identity: a burst, then one per period.
    pub grant_requests: Rate,
    /// Held commands per identity: a burst, then one per period.
    pub held_commands: Rate,
}

/// A token bucket: `burst` at once, then one more each `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            pre_auth_timeout: Duration::from_secs(30),
            max_unauthenticated: 64,
            auth_failures_per_source: 20,
            max_sessions_per_identity: 64,
            max_channels_per_session: 16,
            idle_timeout: Duration::from_secs(30 * 60),
            keepalive_interval: Duration::from_secs(30),
            max_command_bytes: 32 * 1024,
            auth_failures_exempt: Vec::new(),
            request_expiry: Duration::from_secs(60 * 60),
            held_command_wait: Duration::from_secs(120),
            grant_requests: Rate {
                burst: 5,
                every: Duration::from_secs(6),
            },
            held_commands: Rate {
                burst: 5,
                every: Duration::from_secs(12),
            },
        }
    }
}

impl LimitsFile {
    pub(super) fn resolve(self) -> Result<Limits, String> {
        let d = Limits::default();
        let duration = |name: &str, text: Option<String>, default: Duration| match text {
            None => Ok(default),
            Some(t) => {
                crate::policy::parse_duration(&t).map_err(|e| format!("[limits] {name}: {e}"))
            }
        };
        let positive = |name: &str, text: Option<String>, default: Duration| {
            let value = duration(name, text, default)?;
            match value.is_zero() {
                true => Err(format!("[limits] {name}: must be more than 0s")),
                false => Ok(value),
            }
        };
        let rate = |name: &str, burst: Option<u32>, every: Option<String>, default: Rate| {
            Ok::<_, String>(Rate {
                burst: burst.unwrap_or(default.burst).max(1),
                every: positive(&format!("{name}_every"), every, default.every)?,
            })
        };
        Ok(Limits {
            request_expiry: positive("request_expiry", self.request_expiry, d.request_expiry)?,
            held_command_wait: positive(
                "held_command_wait",
                self.held_command_wait,
                d.held_command_wait,
            )?,
            grant_requests: rate(
                "grant_request",
                self.grant_request_burst,
                self.grant_request_every,
                d.grant_requests,
            )?,
            held_commands: rate(
                "held_command",
                self.held_command_burst,
                self.held_command_every,
                d.held_commands,
            )?,
            pre_auth_timeout: duration(
                "pre_auth_timeout",
                self.pre_auth_timeout,
                d.pre_auth_timeout,
            )?,
            max_unauthenticated: self
                .max_unauthenticated
                .unwrap_or(d.max_unauthenticated)
                .max(1),
            auth_failures_per_source: self
                .auth_failures_per_source
                .unwrap_or(d.auth_failures_per_source)
                .max(1),
            max_sessions_per_identity: self
                .max_sessions_per_identity
                .unwrap_or(d.max_sessions_per_identity)
                .max(1),
            max_channels_per_session: self
                .max_channels_per_session
                .unwrap_or(d.max_channels_per_session)
                .max(1),
            idle_timeout: duration("idle_timeout", self.idle_timeout, d.idle_timeout)?,
            keepalive_interval: duration(
                "keepalive_interval",
                self.keepalive_interval,
                d.keepalive_interval,
            )?,
            max_command_bytes: self.max_command_bytes.unwrap_or(d.max_command_bytes).max(1),
            auth_failures_exempt: self
                .auth_failures_exempt
                .unwrap_or_default()
                .iter()
                .map(|block| {
                    Cidr::parse(block).ok_or_else(|| {
                        format!("[limits] auth_failures_exempt: {block:?} is not a CIDR block (e.g. 10.0.0.0/8)")
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}
