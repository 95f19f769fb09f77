//! Parser for /proc/self/mountinfo, used to skip what is already mounted and to plan
//! unmounts at shutdown.
//!
//! Owns parsing only; reading the file is the `Mounter`'s job.

use std::path::PathBuf;

/// Errors parsing mountinfo.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MountinfoError {
    #[error("line {0}: fewer fields than mountinfo has")]
    Malformed(usize),
}

/// One mount, with the fields Kiln uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Parses mountinfo(5): `id parent maj:min root mountpoint opts [optional...] - fstype
/// source superopts`.
pub fn parse(text: &str) -> Result<Vec<MountEntry>, MountinfoError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed = || MountinfoError::Malformed(index + 1);
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = fields.get(4).ok_or_else(malformed)?;
        let dash = fields
            .iter()
            .skip(6)
            .position(|f| *f == "-")
            .ok_or_else(malformed)?
            + 6;
        let fstype = fields.get(dash + 1).ok_or_else(malformed)?;
        let source = fields.get(dash + 2).ok_or_else(malformed)?;
        entries.push(MountEntry {
            mount_point: PathBuf::from(unescape(mount_point)),
            fstype: unescape(fstype),
            source: unescape(source),
        });
    }
    Ok(entries)
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
24 1 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=4k,mode=755
30 1 254:2 / /newroot ro,relatime - squashfs /dev/vda2 ro
31 30 0:40 / /newroot/my\\040dir rw master:1 shared:2 - tmpfs tmp\\134fs rw
";

    #[test]
    fn parses_entries_with_optional_fields_and_escapes() {
        let got = parse(SAMPLE).unwrap();
        let summary: Vec<(String, &str, &str)> = got
            .iter()
            .map(|e| {
                let mount_point = e.mount_point.display().to_string();
                (mount_point, e.fstype.as_str(), e.source.as_str())
            })
            .collect();
        let want = [
            ("/proc", "proc", "proc"),
            ("/sys", "sysfs", "sysfs"),
            ("/dev", "devtmpfs", "devtmpfs"),
            ("/newroot", "squashfs", "/dev/vda2"),
            ("/newroot/my dir", "tmpfs", "tmp\\fs"),
        ];
        let want: Vec<(String, &str, &str)> = want
            .iter()
            .map(|(m, f, s)| (m.to_string(), *f, *s))
            .collect();
        assert_eq!(summary, want);
    }

    #[test]
    fn rejects_malformed_lines() {
        let cases: &[(&str, MountinfoError)] = &[
            ("22 1 0:21 /", MountinfoError::Malformed(1)),
            (
                "22 1 0:21 / /proc rw shared:5 proc proc rw",
                MountinfoError::Malformed(1),
            ),
            ("\n22 1 0:21 / /proc rw -", MountinfoError::Malformed(2)),
            ("22 1 0:21 / /proc rw - proc", MountinfoError::Malformed(1)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Err(want), "mountinfo {text:?}");
        }
    }

    #[test]
    fn unescapes_only_valid_octal() {
        let cases = [
            ("a\\040b", "a b"),
            ("tab\\011", "tab\t"),
            ("\\134", "\\"),
            ("bad\\09x", "bad\\09x"),
            ("short\\04", "short\\04"),
            ("plain", "plain"),
        ];
        for (raw, want) in cases {
            assert_eq!(unescape(raw), want, "{raw:?}");
        }
    }
}
