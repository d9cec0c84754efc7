use std::time::Duration;

use proptest::prelude::*;

use crate::policy::{format_duration, parse_duration, DurationError};

#[test]
fn compact_durations_parse() {
    let cases = [
        ("90s", 90),
        ("15m", 15 * 60),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 2 * 86_400),
        ("1d2h3m4s", 86_400 + 7200 + 180 + 4),
        ("0h15m", 900),
    ];
    for (text, seconds) in cases {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(seconds)),
            "{text}"
        );
    }
}

#[test]
fn malformed_durations_are_rejected_with_a_reason() {
    let cases = [
        ("", DurationError::Empty),
        ("0s", DurationError::Zero),
        ("0h0m", DurationError::Zero),
        ("15x", DurationError::UnknownUnit("x".into())),
        ("15ms", DurationError::UnknownUnit("ms".into())),
        ("15", DurationError::MissingUnit("15".into())),
        ("h", DurationError::MissingNumber("h".into())),
        ("1hm", DurationError::UnknownUnit("hm".into())),
        ("1h 30m", DurationError::UnexpectedChar(' ')),
        ("-5m", DurationError::UnexpectedChar('-')),
        ("1.5h", DurationError::UnexpectedChar('.')),
        ("30m1h", DurationError::UnitOrder),
        ("1m1m", DurationError::UnitOrder),
    ];
    for (text, error) in cases {
        assert_eq!(parse_duration(text), Err(error), "{text:?}");
    }
}

#[test]
fn oversized_durations_are_rejected() {
    assert_eq!(
        parse_duration("99999999999999999999s"),
        Err(DurationError::Overflow)
    );
    assert_eq!(
        parse_duration("300000000000000d"),
        Err(DurationError::Overflow)
    );
    assert_eq!(
        parse_duration("18446744073709551615s"),
        Ok(Duration::from_secs(u64::MAX))
    );
    assert_eq!(
        parse_duration("1d18446744073709551615s"),
        Err(DurationError::Overflow)
    );
}

#[test]
fn durations_format_compactly() {
    assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(format_duration(Duration::from_secs(900)), "15m");
    assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(format_duration(Duration::from_secs(86_400 + 60)), "1d1m");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1s");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn duration_errors_read_as_advice() {
    let message = parse_duration("15x").err().map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some("unknown unit \"x\" (use s, m, h or d, e.g. 1h30m)")
    );
}

proptest! {
    #[test]
    fn formatted_durations_parse_back(seconds in 1u64..=u64::MAX) {
        let duration = Duration::from_secs(seconds);
        prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
    }
}
