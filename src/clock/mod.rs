//! The one clock: every time portcullis compares or records comes from here,
//! and the one way to write a time down for people (`calendar`).

mod calendar;

use std::time::{SystemTime, UNIX_EPOCH};

pub use calendar::{format_duration, parse_time, rfc3339_seconds, rfc3339_us};

/// Microseconds since the Unix epoch, as the store records time. A clock
/// before 1970 is a broken clock; it reads as the epoch.
pub fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Seconds since the Unix epoch, as certificates count time.
pub fn now_unix() -> u64 {
    u64::try_from(now_us() / 1_000_000).unwrap_or(0)
}

/// Formats Unix seconds as UTC for people, e.g. `2026-11-28 07:40:00Z`.
pub fn format_unix(secs: u64) -> String {
    let us = i64::try_from(secs)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000);
    rfc3339_seconds(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_unix(1_795_851_600), "2026-11-28 07:40:00Z");
    }
}
