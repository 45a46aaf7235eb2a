//! Durations in the Go `time.ParseDuration` syntax Kubernetes uses (`90s`, `1h30m`, `720h`).
//!
//! The CRD schema checks the syntax with [`PATTERN`] and the range with CEL's `duration()`; the
//! operator parses with [`parse`], the same grammar without a sign. (kube-core's `Duration`
//! parser was the first choice, but it panics on inputs such as `1h-5m` or `99999999999999999999h`,
//! and the operator must never panic on what the API server hands it.)

use std::time::Duration;

/// Schema pattern for a non-negative duration: `0` or one or more `<number><unit>` groups.
pub const PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$";

/// Longest duration accepted: a century, far beyond any field's CEL limit.
const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration string that is not a valid non-negative Go duration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not a duration like 90s, 15m or 1h30m: {reason}")]
pub struct ParseDurationError {
    value: String,
    reason: &'static str,
}

/// Parses a non-negative duration such as `1h`, `90s`, `1h30m`, `1.5h` or `0s`.
pub fn parse(value: &str) -> Result<Duration, ParseDurationError> {
    let err = |reason| ParseDurationError {
        value: value.chars().take(64).collect(),
        reason,
    };
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    if value.is_empty() {
        return Err(err("empty"));
    }
    let mut rest = value.as_bytes();
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if int_len == 0 {
            return Err(err("expected a number"));
        }
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix(b".") {
            Some(after_dot) => {
                let frac_len = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
                if frac_len == 0 {
                    return Err(err("expected digits after the decimal point"));
                }
                after_dot.split_at(frac_len)
            }
            None => (&b""[..], after),
        };
        let unit_len = after.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            b"ns" => 1,
            b"us" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            b"" => return Err(err("missing unit (ns, us, ms, s, m or h)")),
            _ => return Err(err("unknown unit (expected ns, us, ms, s, m or h)")),
        };
        let too_long = || err("too long");
        let int = digits_value(int_digits).ok_or_else(too_long)?;
        let mut group = int.checked_mul(unit_nanos).ok_or_else(too_long)?;
        // Fractions beyond nanosecond precision are cut, as Go does.
        let mut scale = unit_nanos;
        for d in frac_digits {
            scale /= 10;
            if scale == 0 {
                break;
            }
            group = group
                .checked_add(u128::from(d - b'0') * scale)
                .ok_or_else(too_long)?;
        }
        total_nanos = total_nanos.checked_add(group).ok_or_else(too_long)?;
        if total_nanos > MAX.as_nanos() {
            return Err(too_long());
        }
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| err("too long"))?;
    let nanos = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| err("too long"))?;
    Ok(Duration::new(secs, nanos))
}

/// The value of a run of ASCII digits, `None` when it does not fit.
fn digits_value(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, d| {
        acc.checked_mul(10)?.checked_add(u128::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.25s"), Ok(Duration::from_millis(1250)));
        assert_eq!(parse("1m0.5s"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("720h"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(parse("1.0000000001s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in [
            "",
            "1",
            "h",
            "1d",
            "1 h",
            "-1h",
            "+1h",
            "forever",
            "1h-5m",
            "1.h",
            ".5h",
            "1e3s",
            "99999999999999999999h",
            "999999999999999999999999999999999999999999ns",
            "1µs",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
