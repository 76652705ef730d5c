//! Go duration syntax (`90s`, `1m30s`, `1.5h`, `500ms`), as external-dns's
//! flags and the `ttl` annotation are written.
//!
//! Control plane, pure. Units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; a bare
//! `0` is zero; a leading sign is accepted (a negative duration is an error
//! for every caller here, so it is reported as one).

use std::time::Duration;

/// Text that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?} (Go syntax, such as 30s, 1m or 1h30m)")]
pub struct BadDuration(pub String);

/// Parses a non-negative Go duration.
pub fn parse(text: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(text.to_owned());
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut input = rest;
    while !input.is_empty() {
        let number_len = input
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let value: f64 = input[..number_len].parse().map_err(|_| bad())?;
        input = &input[number_len..];
        let unit_len = input
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(input.len());
        let scale = match &input[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        input = &input[unit_len..];
        total += value * scale;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "-1s", "1x", "s", "1.2.3s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
