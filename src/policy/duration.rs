//! Compact durations as written in the policy and on the command line:
//! `90s`, `15m`, `1h30m`, `2d`.
//!
//! Invariant: a parsed duration is a whole, positive number of seconds that
//! fits in a `u64`; each unit appears at most once, largest first, so every
//! accepted text has one obvious reading.

use std::time::Duration;

/// Why a duration text was rejected. Display is worded to follow the
/// offending text, e.g. `max_ttl "15x": unknown unit "x" ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error("duration must be longer than zero")]
    Zero,
    #[error("duration is too long")]
    Overflow,
    #[error("unknown unit \"{0}\" (use s, m, h or d, e.g. 1h30m)")]
    UnknownUnit(String),
    #[error("\"{0}\" has no unit (use s, m, h or d, e.g. 15m)")]
    MissingUnit(String),
    #[error("unit \"{0}\" has no number before it")]
    MissingNumber(String),
    #[error("unexpected character {0:?} (write e.g. 1h30m, without spaces)")]
    UnexpectedChar(char),
    #[error("units must go from largest to smallest, each at most once (e.g. 1h30m)")]
    UnitOrder,
}

/// Units from largest to smallest, with their length in seconds.
const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

/// Parse a compact duration such as `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed; enforces largest-first.
    let mut next_unit = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if digits.is_empty() && unit.is_empty() {
            // Neither a digit nor a letter: some other character.
            let c = rest.chars().next().unwrap_or(' ');
            return Err(DurationError::UnexpectedChar(c));
        }
        if digits.is_empty() {
            return Err(DurationError::MissingNumber(unit.to_owned()));
        }
        if unit.is_empty() {
            return match after.chars().next() {
                Some(c) => Err(DurationError::UnexpectedChar(c)),
                None => Err(DurationError::MissingUnit(digits.to_owned())),
            };
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(DurationError::UnknownUnit(unit.to_owned()));
        };
        if index < next_unit {
            return Err(DurationError::UnitOrder);
        }
        next_unit = index + 1;
        let count: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
        let seconds = count
            .checked_mul(UNITS[index].1)
            .ok_or(DurationError::Overflow)?;
        total = total.checked_add(seconds).ok_or(DurationError::Overflow)?;
        rest = after;
    }
    if total == 0 {
        return Err(DurationError::Zero);
    }
    Ok(Duration::from_secs(total))
}

/// Format a duration in the same compact form, for messages: `1h30m`,
/// `2d`, `45s`. Sub-second parts are dropped (certificate lifetimes are
/// whole seconds); a duration under one second prints as `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut left = duration.as_secs();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, size) in UNITS {
        let count = left / size;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            left %= size;
        }
    }
    out
}
