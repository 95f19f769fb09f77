//! A byte size written as `"128MiB"`, `"2GiB"`, `"512K"` or a plain integer of bytes.
//!
//! Owns parsing and printing sizes; used by the spec for partition and disk sizes.

use std::fmt;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "SizeRepr")]
pub struct Size(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Bytes(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for Size {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Bytes(b) => Ok(Size(b)),
            SizeRepr::Text(t) => t.parse(),
        }
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("size {s:?}: expected a number with a unit like 128MiB"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KiB" => 1 << 10,
            "M" | "MiB" => 1 << 20,
            "G" | "GiB" => 1 << 30,
            "T" | "TiB" => 1 << 40,
            _ => {
                return Err(format!(
                    "size {s:?}: unknown unit (use K, M, G, T or KiB, MiB, GiB, TiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("size {s:?}: too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if b >= 1 << shift && b.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", b >> shift);
            }
        }
        if b >= 1 << 20 {
            return write!(f, "{:.1}MiB", b as f64 / (1u64 << 20) as f64);
        }
        write!(f, "{b}B")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_table() {
        let good = [
            ("128MiB", 128 << 20),
            ("2G", 2 << 30),
            ("512", 512),
            ("4 KiB", 4096),
        ];
        for (s, want) in good {
            assert_eq!(s.parse::<Size>().unwrap(), Size(want), "{s}");
        }
        for bad in ["", "MiB", "12XB", "1.5G", "99999999999999T"] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(Size(2 << 30).to_string(), "2GiB");
        assert_eq!(Size(1729 << 20).to_string(), "1729MiB");
        assert_eq!(Size(100).to_string(), "100B");
    }
}
