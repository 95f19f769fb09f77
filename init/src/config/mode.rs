//! `FileMode`: write_files permissions as cloud-init accepts them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::types::ValueError;

/// A file mode (permission bits, at most 0o7777). Accepts an octal string ("0644",
/// "644", "0o644") or an integer; YAML parsed with legacy octal makes an unquoted `0644`
/// the integer 420, as PyYAML does for cloud-init. Serialized as a 4-digit octal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl FileMode {
    pub fn parse_octal(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        let digits = t.strip_prefix("0o").unwrap_or(t);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(FileMode(m)),
            _ => Err(ValueError::Mode(s.to_string())),
        }
    }
}

impl Default for FileMode {
    fn default() -> Self {
        FileMode(0o644)
    }
}

impl Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal mode string or an integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileMode, E> {
                match u32::try_from(v) {
                    Ok(m) if m <= 0o7777 => Ok(FileMode(m)),
                    _ => Err(E::custom(ValueError::Mode(v.to_string()))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileMode, E> {
                let v = u64::try_from(v).map_err(|_| E::custom(ValueError::Mode(v.to_string())))?;
                self.visit_u64(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                FileMode::parse_octal(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}
