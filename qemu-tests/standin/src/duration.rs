//! Go durations (`time.ParseDuration`, what `metav1.Duration` accepts): `876000h0m0s`,
//! `8760h`, `1.5h`, `300ms`, `-2m`, `0`. Errors use Go's wording.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A parsed Go duration, kept with its text (the config is recorded as written).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct GoDuration {
    text: String,
    nanos: i64,
}

impl GoDuration {
    pub fn nanos(&self) -> i64 {
        self.nanos
    }

    /// The duration if it is positive.
    pub fn positive(&self) -> Option<std::time::Duration> {
        u64::try_from(self.nanos)
            .ok()
            .filter(|n| *n > 0)
            .map(std::time::Duration::from_nanos)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for GoDuration {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let nanos = parse(&text)?;
        Ok(GoDuration { text, nanos })
    }
}

impl From<GoDuration> for String {
    fn from(d: GoDuration) -> String {
        d.text
    }
}

const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses like Go's `time.ParseDuration`, in nanoseconds.
pub fn parse(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let (neg, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int, rest) = s.split_at(int_len);
        let (frac, rest) = match rest.strip_prefix('.') {
            Some(r) => r.split_at(r.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", rest),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let (unit, rest) = rest.split_at(unit_len);
        let Some((_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!("time: unknown unit {unit:?} in duration {orig:?}"));
        };
        let whole = if int.is_empty() {
            0
        } else {
            int.parse::<u64>().map_err(|_| invalid())?
        };
        let mut part = whole.checked_mul(*scale).ok_or_else(invalid)?;
        // The fraction, digit by digit, as Go does (exact for the digits that matter).
        let mut div = 1u64;
        let mut frac_val = 0u64;
        for d in frac.bytes().take(18) {
            frac_val = frac_val * 10 + u64::from(d - b'0');
            div *= 10;
        }
        let frac_nanos = (u128::from(frac_val) * u128::from(*scale) / u128::from(div)) as u64;
        part = part.checked_add(frac_nanos).ok_or_else(invalid)?;
        total = total.checked_add(part).ok_or_else(invalid)?;
        s = rest;
    }
    let max = i64::MAX as u64;
    match (neg, total) {
        (true, t) if t == max + 1 => Ok(i64::MIN),
        (_, t) if t > max => Err(invalid()),
        (true, t) => Ok(-(t as i64)),
        (false, t) => Ok(t as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn parses_go_durations() {
        let table = [
            ("876000h0m0s", 876_000 * H),
            ("8760h", 8_760 * H),
            ("87600h0m0s", 87_600 * H),
            ("4m0s", 240_000_000_000),
            ("1.5h", 5_400_000_000_000),
            (".5s", 500_000_000),
            ("1h30m", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("10us", 10_000),
            ("10\u{b5}s", 10_000),
            ("-2m", -120_000_000_000),
            ("+5s", 5_000_000_000),
            ("0", 0),
            ("-0", 0),
            ("0s", 0),
        ];
        for (text, want) in table {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_with_go_messages() {
        let table = [
            ("8760", "time: missing unit in duration \"8760\""),
            ("1y", "time: unknown unit \"y\" in duration \"1y\""),
            ("", "time: invalid duration \"\""),
            ("h", "time: invalid duration \"h\""),
            ("1h 30m", "time: unknown unit \"h \" in duration \"1h 30m\""),
            ("3000000h", "time: invalid duration \"3000000h\""),
            ("forever", "time: invalid duration \"forever\""),
        ];
        for (text, want) in table {
            assert_eq!(parse(text), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn deserializes_through_serde() {
        let Ok(d) = serde_json::from_str::<GoDuration>("\"24h0m0s\"") else {
            panic!("24h0m0s refused");
        };
        assert_eq!(d.positive(), Some(std::time::Duration::from_secs(86_400)));
        assert_eq!(d.to_string(), "24h0m0s");
        let Err(e) = serde_json::from_str::<GoDuration>("\"24\"") else {
            panic!("24 accepted");
        };
        assert!(e.to_string().contains("missing unit"), "{e}");
        assert!(serde_json::from_str::<GoDuration>("24").is_err());
    }
}
