//! Kernel command line: the `kiln.*` keys that tell stage 1 where its root is (a GPT
//! partition, or `kiln.root=http://…` + `kiln.root.sha256=` for network boot).
//!
//! Owns parsing only (`parse(&str)`); reading /proc/cmdline is the caller's job. Keys that
//! are not Kiln's are ignored, as are Kiln keys this version does not know.

/// Errors found in the `kiln.*` keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("kiln.slot={0:?} is not `a` or `b`")]
    InvalidSlot(String),
    #[error("kiln.root={0:?} is neither PARTLABEL=<name> nor http://<host>[:port]/<path>")]
    UnsupportedRoot(String),
    #[error("kiln.root.sha256={0:?} is not 64 hex digits")]
    InvalidDigest(String),
    #[error("kiln.root={0} needs kiln.root.sha256=<hex> (a root fetched over the network is only used when its digest matches)")]
    MissingDigest(String),
    #[error("kiln.mbr={0:?} is not an MBR disk signature (8 hex digits)")]
    InvalidMbr(String),
    #[error("no root given: neither kiln.slot nor kiln.root is set")]
    MissingRoot,
}

/// The A/B root slot booted by the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// GPT partition name of this slot's root, as the imager writes it.
    pub fn partname(self) -> &'static str {
        match self {
            Slot::A => "KILN-ROOT-A",
            Slot::B => "KILN-ROOT-B",
        }
    }
}

/// What stage 1 and 2 read from the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelArgs {
    pub slot: Option<Slot>,
    /// GPT partition name from `kiln.root=PARTLABEL=<name>`.
    pub root_partlabel: Option<String>,
    /// `kiln.root=http://…`: the squashfs root to download into RAM.
    pub root_url: Option<String>,
    /// `kiln.root.sha256=`: lower-case hex digest the downloaded root must have.
    pub root_sha256: Option<String>,
    /// `kiln.mbr=`: the signature of the MBR disk whose partitions 1–4 carry Kiln's
    /// partition names (MBR has none of its own); see `blockdev::MBR_NAMES`.
    pub mbr_disk: Option<u32>,
    pub debug: bool,
}

/// Where stage 1 finds the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root<'a> {
    /// A GPT partition with this name.
    Partition(&'a str),
    /// A squashfs image over HTTP with its expected sha256 (hex).
    Http { url: &'a str, sha256: &'a str },
}

impl KernelArgs {
    /// The root: an HTTP `kiln.root` (with its digest) wins, then the partition.
    pub fn root(&self) -> Result<Root<'_>, CmdlineError> {
        match (&self.root_url, &self.root_sha256) {
            (Some(url), Some(sha256)) => Ok(Root::Http { url, sha256 }),
            (Some(url), None) => Err(CmdlineError::MissingDigest(url.clone())),
            (None, _) => self.root_partname().map(Root::Partition),
        }
    }

    /// Partition name of the root: the `kiln.root` override wins over the slot.
    pub fn root_partname(&self) -> Result<&str, CmdlineError> {
        match (&self.root_partlabel, self.slot) {
            (Some(label), _) => Ok(label),
            (None, Some(slot)) => Ok(slot.partname()),
            (None, None) => Err(CmdlineError::MissingRoot),
        }
    }

    /// Slot for events: `a`, `b`, or `none` when only `kiln.root` is given.
    pub fn slot_name(&self) -> &'static str {
        self.slot.map_or("none", Slot::as_str)
    }
}

/// Parses a kernel command line. A repeated key keeps its last value, like the kernel.
pub fn parse(cmdline: &str) -> Result<KernelArgs, CmdlineError> {
    let mut args = KernelArgs::default();
    for word in split(cmdline) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        match key {
            "kiln.slot" => args.slot = Some(parse_slot(value.unwrap_or(""))?),
            "kiln.root" => {
                let value = value.unwrap_or("");
                if value.starts_with("http://") && value.len() > "http://".len() {
                    args.root_url = Some(value.to_string());
                    args.root_partlabel = None;
                } else {
                    args.root_partlabel = Some(parse_root(value)?);
                    args.root_url = None;
                }
            }
            "kiln.root.sha256" => args.root_sha256 = Some(parse_digest(value.unwrap_or(""))?),
            "kiln.mbr" => args.mbr_disk = Some(parse_mbr(value.unwrap_or(""))?),
            "kiln.debug" => args.debug = !matches!(value, Some("0" | "no" | "false" | "off")),
            _ => {}
        }
    }
    Ok(args)
}

fn parse_slot(value: &str) -> Result<Slot, CmdlineError> {
    match value {
        "a" => Ok(Slot::A),
        "b" => Ok(Slot::B),
        other => Err(CmdlineError::InvalidSlot(other.to_string())),
    }
}

fn parse_root(value: &str) -> Result<String, CmdlineError> {
    match value.strip_prefix("PARTLABEL=") {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(CmdlineError::UnsupportedRoot(value.to_string())),
    }
}

fn parse_mbr(value: &str) -> Result<u32, CmdlineError> {
    let hex = value.strip_prefix("0x").unwrap_or(value);
    match u32::from_str_radix(hex, 16) {
        Ok(v) if hex.len() == 8 => Ok(v),
        _ => Err(CmdlineError::InvalidMbr(value.to_string())),
    }
}

fn parse_digest(value: &str) -> Result<String, CmdlineError> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(CmdlineError::InvalidDigest(value.to_string()))
    }
}

/// Splits on whitespace outside double quotes and drops the quotes, like the kernel.
pub(crate) fn split(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn args(slot: Option<Slot>, root: Option<&str>, debug: bool) -> KernelArgs {
        KernelArgs {
            slot,
            root_partlabel: root.map(str::to_string),
            debug,
            ..KernelArgs::default()
        }
    }

    #[test]
    fn parses_good_command_lines() {
        let cases: &[(&str, KernelArgs)] = &[
            ("kiln.slot=a", args(Some(Slot::A), None, false)),
            ("kiln.slot=b\n", args(Some(Slot::B), None, false)),
            (
                "BOOT_IMAGE=/vmlinuz console=ttyS0 kiln.slot=a quiet",
                args(Some(Slot::A), None, false),
            ),
            (
                "kiln.slot=a kiln.root=PARTLABEL=MY-ROOT",
                args(Some(Slot::A), Some("MY-ROOT"), false),
            ),
            (
                "kiln.root=\"PARTLABEL=ROOT WITH SPACE\"",
                args(None, Some("ROOT WITH SPACE"), false),
            ),
            ("kiln.slot=a kiln.debug", args(Some(Slot::A), None, true)),
            ("kiln.debug=1 kiln.slot=b", args(Some(Slot::B), None, true)),
            ("kiln.debug=0", args(None, None, false)),
            ("kiln.slot=a kiln.slot=b", args(Some(Slot::B), None, false)),
            (
                "kiln.unknown=x kiln.slotx=c kilnslot=c",
                args(None, None, false),
            ),
            ("", args(None, None, false)),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).as_ref(), Ok(want), "cmdline {line:?}");
        }
    }

    #[test]
    fn rejects_bad_kiln_keys() {
        let cases: &[(&str, CmdlineError)] = &[
            ("kiln.slot=c", CmdlineError::InvalidSlot("c".into())),
            ("kiln.slot=A", CmdlineError::InvalidSlot("A".into())),
            ("kiln.slot", CmdlineError::InvalidSlot(String::new())),
            ("kiln.slot=", CmdlineError::InvalidSlot(String::new())),
            (
                "kiln.root=/dev/vda2",
                CmdlineError::UnsupportedRoot("/dev/vda2".into()),
            ),
            (
                "kiln.root=PARTLABEL=",
                CmdlineError::UnsupportedRoot("PARTLABEL=".into()),
            ),
            (
                "kiln.root=https://x/root.sqfs",
                CmdlineError::UnsupportedRoot("https://x/root.sqfs".into()),
            ),
            (
                "kiln.root=http://",
                CmdlineError::UnsupportedRoot("http://".into()),
            ),
            (
                "kiln.root.sha256=abc",
                CmdlineError::InvalidDigest("abc".into()),
            ),
            (
                "kiln.root.sha256=zz",
                CmdlineError::InvalidDigest("zz".into()),
            ),
            ("kiln.mbr=abc", CmdlineError::InvalidMbr("abc".into())),
            (
                "kiln.mbr=0a0b0c0g",
                CmdlineError::InvalidMbr("0a0b0c0g".into()),
            ),
            ("kiln.mbr", CmdlineError::InvalidMbr(String::new())),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).as_ref(), Err(want), "cmdline {line:?}");
        }
    }

    #[test]
    fn root_partname_prefers_override_and_requires_one() {
        let cases: &[(&str, Result<&str, CmdlineError>)] = &[
            ("kiln.slot=a", Ok("KILN-ROOT-A")),
            ("kiln.slot=b", Ok("KILN-ROOT-B")),
            ("kiln.slot=b kiln.root=PARTLABEL=X", Ok("X")),
            ("kiln.root=PARTLABEL=X", Ok("X")),
            ("console=ttyS0", Err(CmdlineError::MissingRoot)),
        ];
        for (line, want) in cases {
            let parsed = parse(line).unwrap();
            assert_eq!(parsed.root_partname(), want.clone(), "cmdline {line:?}");
        }
    }

    #[test]
    fn http_root_needs_a_digest() {
        let digest = "AB".repeat(32);
        let line =
            format!("kiln.root=http://10.0.2.2:8080/root.squashfs kiln.root.sha256={digest}");
        let parsed = parse(&line).unwrap();
        let want = Root::Http {
            url: "http://10.0.2.2:8080/root.squashfs",
            sha256: &"ab".repeat(32),
        };
        assert_eq!(parsed.root(), Ok(want));
        assert_eq!(parsed.slot_name(), "none");
        let missing = parse("kiln.root=http://h/r.sqfs").unwrap();
        assert_eq!(
            missing.root(),
            Err(CmdlineError::MissingDigest("http://h/r.sqfs".into()))
        );
        // The last kiln.root wins, whichever kind it is.
        let both = parse("kiln.root=http://h/r kiln.root=PARTLABEL=X").unwrap();
        assert_eq!(both.root(), Ok(Root::Partition("X")));
        assert_eq!(
            parse("kiln.slot=a").unwrap().root(),
            Ok(Root::Partition("KILN-ROOT-A"))
        );
    }

    #[test]
    fn mbr_disk_signature() {
        assert_eq!(
            parse("kiln.mbr=0a0B0c0d").unwrap().mbr_disk,
            Some(0x0a0b0c0d)
        );
        assert_eq!(
            parse("kiln.mbr=0xdeadbeef").unwrap().mbr_disk,
            Some(0xdeadbeef)
        );
        assert_eq!(parse("kiln.slot=a").unwrap().mbr_disk, None);
    }

    #[test]
    fn slot_name_for_events() {
        assert_eq!(parse("kiln.slot=a").unwrap().slot_name(), "a");
        assert_eq!(parse("kiln.root=PARTLABEL=X").unwrap().slot_name(), "none");
    }
}
