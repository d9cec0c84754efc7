//! Time as reviewers read it: RFC 3339 UTC with microseconds, durations,
//! and parsing of `--since`.
//!
//! Invariant: [`rfc3339_us`] and [`parse_time`] are exact inverses for every
//! time they produce (proleptic Gregorian calendar, UTC), and nothing here
//! panics on any input.

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// `2026-11-28T07:40:00.123456Z` for a time in unix microseconds.
pub fn rfc3339_us(us: i64) -> String {
    let (date, secs, micros) = split(us);
    format!("{date}T{}.{micros:06}Z", hms(secs))
}

/// `2026-11-28 07:40:00Z`: second precision, for tables.
pub fn rfc3339_seconds(us: i64) -> String {
    let (date, secs, _) = split(us);
    format!("{date} {}Z", hms(secs))
}

fn split(us: i64) -> (String, i64, i64) {
    let days = us.div_euclid(US_PER_DAY);
    let in_day = us.rem_euclid(US_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        in_day / US_PER_SEC,
        in_day % US_PER_SEC,
    )
}

fn hms(secs: i64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A duration in microseconds for humans: `0.004512s`, `12.3s`, `5m03s`,
/// `2h05m`, `3d04h`.
pub fn format_duration(us: i64) -> String {
    let us = us.max(0);
    let secs = us / US_PER_SEC;
    match secs {
        0..=9 => format!("{}.{:06}s", secs, us % US_PER_SEC),
        10..=59 => format!("{}.{}s", secs, us % US_PER_SEC / 100_000),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// Parses `--since`: RFC 3339 (`2026-11-28T07:40:00Z`, optional fraction,
/// `Z` or `±HH:MM`) or unix seconds (`1795851600`). Returns unix micros.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty()
        && s.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return s.parse::<i64>().ok()?.checked_mul(US_PER_SEC);
    }
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut micros = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = frac.get(..digits.min(6))?;
        micros = kept.parse::<i64>().ok()? * 10i64.pow(6 - kept.len() as u32);
        rest = frac.get(digits..)?;
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (oh, om) = rest.get(1..)?.split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * US_PER_SEC + micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_us(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            rfc3339_seconds(1_795_851_600_123_456),
            "2026-11-28 07:40:00Z"
        );
        // Extremes must not panic.
        let _ = rfc3339_us(i64::MIN);
        let _ = rfc3339_us(i64::MAX);
    }

    #[test]
    fn parse_is_the_inverse_of_format() {
        for us in [
            0,
            1,
            -1,
            951_782_400_000_001,
            1_795_851_600_123_456,
            4_102_444_799_999_999,
        ] {
            assert_eq!(parse_time(&rfc3339_us(us)), Some(us));
        }
        assert_eq!(
            parse_time("2026-11-28T08:40:00.5+01:00"),
            Some(1_795_851_600_500_000)
        );
        assert_eq!(parse_time("1795851600"), Some(1_795_851_600_000_000));
        for bad in [
            "",
            "yesterday",
            "2026-02-30T00:00:00Z",
            "2026-11-28T07:40:00",
            "2026-11-28T07:40:00.Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(4_512), "0.004512s");
        assert_eq!(format_duration(12_345_678), "12.3s");
        assert_eq!(format_duration(183_000_000), "3m03s");
        assert_eq!(format_duration(7_500_000_000), "2h05m");
        assert_eq!(format_duration(-5), "0.000000s");
    }
}
