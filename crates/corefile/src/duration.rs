//! Durations as CoreDNS reads them: Go's `time.ParseDuration` syntax.
//!
//! Control plane. One parser for every plugin option, so `healthcheck {
//! interval 0.5s }` and `forward { health_check 0.5s }` read the same text the
//! same way. Grammar (Go `time.ParseDuration`): an optional sign, then one or
//! more `NUMBER UNIT` pairs where NUMBER is digits with an optional fraction
//! (`1`, `1.5`, `.5`, `5.`) and UNIT one of `ns`, `us`, `µs`, `μs`, `ms`, `s`,
//! `m`, `h`; or a bare `0`. Configuration has no use for negative durations,
//! so a `-` is rejected with its own message.

use std::time::Duration;

/// Why a duration did not parse. Not retryable: the text must be fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not Go duration syntax.
    #[error("expected a duration such as 10s, 500ms, 1m30s or 0.5s")]
    Syntax,
    /// A number without a unit (only `0` may go without one).
    #[error("a duration needs a unit (ns, us, ms, s, m, h), as in 10s")]
    MissingUnit,
    /// A unit Go does not know.
    #[error("unknown duration unit; use ns, us, ms, s, m or h")]
    UnknownUnit,
    /// A negative duration.
    #[error("a duration cannot be negative")]
    Negative,
    /// More than about 292 years (Go's limit).
    #[error("duration is too large")]
    Overflow,
}

/// Go's largest duration: 2^63 - 1 nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a duration in Go syntax: `30s`, `500ms`, `1m30s`, `0.5s`, `1.5h`, `0`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text;
    if let Some(unsigned) = rest.strip_prefix('+') {
        rest = unsigned;
    } else if let Some(unsigned) = rest.strip_prefix('-') {
        // Go accepts `-0`; anything else negative is of no use to a setting.
        return match parse_duration(unsigned) {
            Ok(value) if value.is_zero() => Ok(Duration::ZERO),
            Ok(_) => Err(DurationError::Negative),
            Err(error) => Err(error),
        };
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Syntax);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let whole = &rest[..whole_len];
        rest = &rest[whole_len..];
        let fraction = match rest.strip_prefix('.') {
            Some(after) => {
                let len = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                rest = &after[len..];
                &after[..len]
            }
            None => "",
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::Syntax);
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_nanos: u128 = match &rest[..unit_len] {
            "" => return Err(DurationError::MissingUnit),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(DurationError::UnknownUnit),
        };
        rest = &rest[unit_len..];
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| DurationError::Overflow)?
        };
        let mut nanos = whole
            .checked_mul(unit_nanos)
            .ok_or(DurationError::Overflow)?;
        // The fraction as Go adds it: digits as an integer (those past 2^63 are
        // dropped), scaled by the unit through floating point.
        let mut digits: u64 = 0;
        let mut scale = 1f64;
        for digit in fraction.bytes() {
            match digits
                .checked_mul(10)
                .and_then(|d| d.checked_add(u64::from(digit - b'0')))
            {
                Some(next) if next <= i64::MAX as u64 => {
                    digits = next;
                    scale *= 10.0;
                }
                _ => break,
            }
        }
        if digits > 0 {
            nanos += (digits as f64 * (unit_nanos as f64 / scale)) as u128;
        }
        total = total.checked_add(nanos).ok_or(DurationError::Overflow)?;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
    }
    let seconds = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(seconds, (total % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `time.ParseDuration` examples and edge cases (its documentation
    /// and `time_test.go`'s table), minus negative values.
    #[test]
    fn go_syntax() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1478s", Duration::from_secs(1478)),
            ("0.5s", ms(500)),
            (".5s", ms(500)),
            ("5.s", Duration::from_secs(5)),
            ("1.004s", ms(1004)),
            ("1.0040s", ms(1004)),
            ("100.00100s", Duration::new(100, 1_000_000)),
            ("10ns", Duration::from_nanos(10)),
            ("11us", Duration::from_micros(11)),
            ("12µs", Duration::from_micros(12)),
            ("12μs", Duration::from_micros(12)),
            ("13ms", ms(13)),
            ("15m", Duration::from_secs(900)),
            ("16h", Duration::from_secs(16 * 3600)),
            ("3h30m", Duration::from_secs(3 * 3600 + 1800)),
            ("10.5s4m", Duration::from_secs(250) + ms(500)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("39h9m14.425s", Duration::new(140_954, 425_000_000)),
            ("52763797000ns", Duration::new(52, 763_797_000)),
            ("0.3333333333333333333h", Duration::from_secs(1200)),
            (
                "9223372036854775807ns",
                Duration::new(9_223_372_036, 854_775_807),
            ),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    /// What Go rejects is rejected, each with the reason an operator needs.
    #[test]
    fn rejects() {
        for (text, error) in [
            ("", DurationError::Syntax),
            ("3", DurationError::MissingUnit),
            ("-", DurationError::Syntax),
            ("s", DurationError::Syntax),
            (".", DurationError::Syntax),
            ("-.", DurationError::Syntax),
            (".s", DurationError::Syntax),
            ("+.s", DurationError::Syntax),
            ("1d", DurationError::UnknownUnit),
            ("10 s", DurationError::UnknownUnit),
            ("-1s", DurationError::Negative),
            ("9223372036854775808ns", DurationError::Overflow),
            ("9223372036s854775808ns", DurationError::Overflow),
            ("3000000h", DurationError::Overflow),
        ] {
            assert_eq!(parse_duration(text), Err(error), "{text}");
        }
    }
}
