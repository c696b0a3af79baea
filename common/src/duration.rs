//! Prometheus' duration grammar, the one its own flags and config files
//! take: one or more parts, each a whole number and a unit, the units
//! largest first and each at most once, no spaces: `1m30s`, `500ms`, `1h`,
//! `2d12h`. The units are `y` (365 days), `w` (7 days), `d` (24 hours),
//! `h`, `m`, `s` and `ms`. A `0` alone is zero; fractions (`1.5s`), signs,
//! bare numbers other than `0` and units out of order (`30s1m`) are
//! refused, as Prometheus refuses them, so a value that works in one
//! Prometheus daemon works here and means the same.

use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// The longest duration: Prometheus keeps durations as Go's
/// `time.Duration`, signed 64-bit nanoseconds (about 292 years), and
/// refuses longer ones.
const MAX_MILLIS: u64 = i64::MAX as u64 / 1_000_000;

/// A duration that does not follow the grammar, or is too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not the grammar.
    #[error("invalid duration {0:?}: expected whole numbers with units (y, w, d, h, m, s, ms) largest first, like 500ms, 2s or 1m30s")]
    Invalid(String),
    /// Longer than Prometheus can hold (about 292 years).
    #[error("duration {0:?} is out of range")]
    OutOfRange(String),
}

/// Parses `text` in Prometheus' grammar (see the module docs).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || DurationError::Invalid(text.to_owned());
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    // Index into UNITS of the next unit allowed: each part's unit must be
    // smaller than the one before.
    let mut next_unit = 0;
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let (number, after) = rest.split_at(digits);
        // "ms" before "m": the longest unit that matches.
        let (index, (unit, unit_millis)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (unit, _))| after.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .ok_or_else(invalid)?;
        let n: u64 = number
            .parse()
            .map_err(|_| DurationError::OutOfRange(text.to_owned()))?;
        millis = n
            .checked_mul(*unit_millis)
            .and_then(|part| millis.checked_add(part))
            .filter(|total| *total <= MAX_MILLIS)
            .ok_or_else(|| DurationError::OutOfRange(text.to_owned()))?;
        next_unit = index + 1;
        rest = &after[unit.len()..];
    }
    Ok(Duration::from_millis(millis))
}

/// [`parse_duration`] for a setting that must be more than zero (a
/// timeout, a probe interval), with the grammar's error or
/// `duration "0s" must be more than 0`.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err(format!("duration {text:?} must be more than 0")),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (text, want) in [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("500ms", ms(500)),
            ("2s", s(2)),
            ("1m30s", s(90)),
            ("1m500ms", ms(60_500)),
            ("1h", s(3600)),
            ("2d12h", s(60 * 3600)),
            ("1w", s(7 * 86400)),
            ("1y", s(365 * 86400)),
            ("1y1w1d1h1m1s1ms", ms(32_230_861_001)),
            ("90s", s(90)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn what_prometheus_refuses() {
        for text in [
            "", "2", "s", "ms", "2x", "1.5s", "-1s", "+1s", " 1s", "1s ", "1 s", "1S", "30s1m",
            "1s1s", "1ms1s", "1m1h", "1sms", "10", "00",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError::Invalid(text.to_owned())),
                "{text:?}"
            );
        }
        assert_eq!(
            parse_duration("1.5s").map_err(|e| e.to_string()),
            Err("invalid duration \"1.5s\": expected whole numbers with units (y, w, d, h, m, s, ms) largest first, like 500ms, 2s or 1m30s".into())
        );
    }

    #[test]
    fn positive_refuses_zero() {
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
        for zero in ["0", "0s", "0m0s"] {
            assert_eq!(
                parse_positive_duration(zero),
                Err(format!("duration {zero:?} must be more than 0"))
            );
        }
        assert!(parse_positive_duration("1.5s").is_err());
    }

    #[test]
    fn too_long_is_out_of_range() {
        for text in [
            "293y",
            "292y25w",
            "99999999999999999999s",
            "9223372036855ms",
        ] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::OutOfRange(_))),
                "{text}"
            );
        }
        // The largest that fits.
        assert_eq!(
            parse_duration("9223372036854ms"),
            Ok(Duration::from_millis(9_223_372_036_854))
        );
        assert!(parse_duration("292y").is_ok());
    }
}
