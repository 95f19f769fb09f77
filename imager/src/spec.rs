//! The image spec: a TOML document naming what goes into an image and how it is laid out.
//!
//! Owns parsing and validation only (parse, then validate; nothing here touches the network
//! or the disk). Errors carry the line and column of the offending TOML.

use std::path::PathBuf;

use serde::Deserialize;

use crate::size::Size;

/// The built-in node image, embedded in the binary.
pub const DEFAULT_SPEC: &str = include_str!("../default-spec.toml");

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// Parses an `--arch` value (also Debian's names).
    pub fn parse(s: &str) -> Result<Arch, String> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(format!(
                "unknown architecture {other:?}: expected x86_64 or aarch64"
            )),
        }
    }

    /// The Debian architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Raw,
    Qcow2,
    /// The network-boot bundle (vmlinuz, initrd, root.squashfs, boot.ipxe, SHA256SUMS).
    Pxe,
}

impl Format {
    /// Parses a `--format` value.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            "pxe" => Ok(Format::Pxe),
            other => Err(format!(
                "unknown format {other:?}: expected raw, qcow2 or pxe"
            )),
        }
    }

    /// Raw and qcow2 are disk images; pxe is not.
    pub fn is_disk(self) -> bool {
        matches!(self, Format::Raw | Format::Qcow2)
    }
}

/// The partition table: GPT (the default) or MBR for boards whose boot ROM reads only MBR
/// (Raspberry Pi-style: the FAT boot partition first). Same partitions and offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    Gpt,
    Mbr,
}

impl Layout {
    /// Parses a `--layout` value.
    pub fn parse(s: &str) -> Result<Layout, String> {
        match s {
            "gpt" => Ok(Layout::Gpt),
            "mbr" => Ok(Layout::Mbr),
            other => Err(format!("unknown layout {other:?}: expected gpt or mbr")),
        }
    }
}

impl Spec {
    /// Sets the architecture (from `--arch`) and expands `{arch}` in package names to its
    /// Debian name (`linux-image-{arch}` → `linux-image-arm64`).
    pub fn for_arch(&mut self, arch: Option<Arch>) {
        if let Some(a) = arch {
            self.arch = a;
        }
        let debian = self.arch.debian();
        for p in &mut self.debian.packages {
            *p = p.replace("{arch}", debian);
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    #[serde(default = "default_arch")]
    pub arch: Arch,
    /// Extra kernel command line, appended after Kiln's own arguments.
    #[serde(default)]
    pub cmdline: String,
    #[serde(default = "default_formats")]
    pub formats: Vec<Format>,
    /// Folders under `overlays/` copied over the root, in order.
    #[serde(default)]
    pub overlays: Vec<String>,
    pub debian: Debian,
    #[serde(default, rename = "artifact")]
    pub artifacts: Vec<Artifact>,
    #[serde(default)]
    pub disk: Disk,
    /// `[kubernetes]`: binaries, images and manifests baked in (see crate::kubernetes).
    pub kubernetes: Option<crate::kubernetes::Kubernetes>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debian {
    #[serde(default = "default_suite")]
    pub suite: String,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    pub mirror: Option<String>,
    pub keyring: Option<PathBuf>,
    pub packages: Vec<String>,
    /// Packages an appliance never needs: dependencies on them count as satisfied.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Kernel modules kept in the root (path prefixes under `kernel/`); empty keeps all.
    #[serde(default)]
    pub drop_modules: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Destination inside the root filesystem, absolute.
    pub dest: String,
    pub url: Option<String>,
    pub path: Option<PathBuf>,
    pub sha256: String,
    #[serde(default = "default_mode")]
    pub mode: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    #[serde(default = "default_disk_size")]
    pub size: Size,
    #[serde(default = "default_esp_size")]
    pub esp_size: Size,
    #[serde(default = "default_root_size")]
    pub root_size: Size,
    /// Partition table: `gpt` (default) or `mbr`.
    #[serde(default)]
    pub layout: Layout,
}

impl Default for Disk {
    fn default() -> Self {
        Disk {
            size: default_disk_size(),
            esp_size: default_esp_size(),
            root_size: default_root_size(),
            layout: Layout::Gpt,
        }
    }
}

fn default_arch() -> Arch {
    Arch::X86_64
}
fn default_formats() -> Vec<Format> {
    vec![Format::Raw, Format::Qcow2]
}
fn default_suite() -> String {
    "trixie".into()
}
fn default_components() -> Vec<String> {
    vec!["main".into()]
}
fn default_mode() -> String {
    "0644".into()
}
fn default_disk_size() -> Size {
    Size(2 << 30)
}
fn default_esp_size() -> Size {
    Size(128 << 20)
}
fn default_root_size() -> Size {
    Size(768 << 20)
}

/// Parses and validates a spec; `origin` names the source in errors (a path or "built-in").
pub fn parse(text: &str, origin: &str) -> Result<Spec, SpecError> {
    let spec: Spec = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        SpecError::Syntax {
            origin: origin.to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    validate(&spec).map_err(|message| SpecError::Invalid {
        origin: origin.to_string(),
        message,
    })?;
    Ok(spec)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn validate(spec: &Spec) -> Result<(), String> {
    let name_ok = !spec.name.is_empty()
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !name_ok {
        return Err(format!(
            "name {:?}: use letters, digits, '-', '_' or '.'",
            spec.name
        ));
    }
    if spec.debian.packages.is_empty() {
        return Err("debian.packages is empty".into());
    }
    if spec.formats.is_empty() {
        return Err("formats is empty".into());
    }
    for a in &spec.artifacts {
        validate_artifact(a)?;
    }
    for o in &spec.overlays {
        if o.is_empty() || o.contains('/') || o.starts_with('.') {
            return Err(format!(
                "overlay {o:?}: must be a folder name under overlays/"
            ));
        }
    }
    if let Some(k) = &spec.kubernetes {
        crate::kubernetes::config::validate(k)?;
    }
    let d = &spec.disk;
    let fixed = d.esp_size.0 + 2 * d.root_size.0 + crate::gpt::STATE_MIN + crate::gpt::OVERHEAD;
    if d.size.0 < fixed {
        return Err(format!(
            "disk.size {} is smaller than ESP + 2 roots + state ({})",
            d.size,
            Size(fixed)
        ));
    }
    validate_layout(d)
}

/// MBR counts sectors in 32 bits: with 512-byte sectors no partition may end past 2 TiB.
pub fn validate_layout(d: &Disk) -> Result<(), String> {
    if d.layout == Layout::Mbr && d.size.0 > crate::mbr::MAX_DISK_BYTES {
        return Err(format!(
            "disk.size {} is too large for layout mbr (MBR addresses at most 2 TiB); use layout gpt",
            d.size
        ));
    }
    Ok(())
}

fn validate_artifact(a: &Artifact) -> Result<(), String> {
    if !a.dest.starts_with('/') || a.dest.ends_with('/') || a.dest.contains("/../") {
        return Err(format!(
            "artifact dest {:?}: must be an absolute file path",
            a.dest
        ));
    }
    if a.url.is_some() == a.path.is_some() {
        return Err(format!(
            "artifact {}: give exactly one of url or path",
            a.dest
        ));
    }
    if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("artifact {}: sha256 must be 64 hex digits", a.dest));
    }
    if u32::from_str_radix(&a.mode, 8).map_or(true, |m| m > 0o7777) {
        return Err(format!(
            "artifact {}: mode {:?} is not octal",
            a.dest, a.mode
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MIN: &str = "name = \"n\"\n[debian]\npackages = [\"busybox\"]\n";

    #[test]
    fn default_spec_parses() {
        let s = parse(DEFAULT_SPEC, "built-in").unwrap();
        assert_eq!(s.arch, Arch::X86_64);
        assert_eq!(s.debian.suite, "trixie");
        assert!(s.debian.packages.iter().any(|p| p == "containerd"));
    }

    #[test]
    fn minimal_defaults() {
        let s = parse(MIN, "t").unwrap();
        assert_eq!(s.formats, vec![Format::Raw, Format::Qcow2]);
        assert_eq!(s.debian.components, vec!["main".to_string()]);
        assert_eq!(s.disk.esp_size.0, 128 << 20);
    }

    #[test]
    fn bad_inputs() {
        let cases: &[(&str, SpecError)] = &[
            (
                "name = \"n\"\nbogus = 1\n[debian]\npackages = [\"a\"]\n",
                SpecError::Syntax {
                    origin: "t".into(),
                    line: 2,
                    column: 1,
                    message: "unknown field `bogus`, expected one of `name`, `arch`, `cmdline`, `formats`, `overlays`, `debian`, `artifact`, `disk`, `kubernetes`".into(),
                },
            ),
            (
                "name = \"n\"\n[debian]\npackages = []\n",
                SpecError::Invalid { origin: "t".into(), message: "debian.packages is empty".into() },
            ),
            (
                "name = \"a b\"\n[debian]\npackages = [\"a\"]\n",
                SpecError::Invalid {
                    origin: "t".into(),
                    message: "name \"a b\": use letters, digits, '-', '_' or '.'".into(),
                },
            ),
            (
                "name = \"n\"\n[debian]\npackages = [\"a\"]\n[disk]\nsize = \"100MiB\"\n",
                SpecError::Invalid {
                    origin: "t".into(),
                    message: "disk.size 100MiB is smaller than ESP + 2 roots + state (1730MiB)".into(),
                },
            ),
            (
                "name = \"n\"\n[debian]\npackages = [\"a\"]\n[[artifact]]\ndest = \"/x\"\npath = \"y\"\nsha256 = \"00\"\n",
                SpecError::Invalid {
                    origin: "t".into(),
                    message: "artifact /x: sha256 must be 64 hex digits".into(),
                },
            ),
            (
                "name = \"n\"\n[debian]\npackages = [\"a\"]\n[disk]\nsize = \"3TiB\"\nlayout = \"mbr\"\n",
                SpecError::Invalid {
                    origin: "t".into(),
                    message: "disk.size 3072GiB is too large for layout mbr (MBR addresses at most 2 TiB); use layout gpt".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&parse(text, "t").unwrap_err(), want, "input: {text}");
        }
    }

    #[test]
    fn layout() {
        let s = parse(&format!("{MIN}[disk]\nlayout = \"mbr\"\n"), "t").unwrap();
        assert_eq!(s.disk.layout, Layout::Mbr);
        assert_eq!(parse(MIN, "t").unwrap().disk.layout, Layout::Gpt);
        let e = parse(&format!("{MIN}[disk]\nlayout = \"apm\"\n"), "t").unwrap_err();
        assert!(
            e.to_string().starts_with("t:5:10: unknown variant `apm`"),
            "{e}"
        );
        assert_eq!(Layout::parse("mbr"), Ok(Layout::Mbr));
        assert!(Layout::parse("dos")
            .unwrap_err()
            .contains("expected gpt or mbr"));
    }

    #[test]
    fn bad_size_has_position() {
        let text = "name = \"n\"\n[debian]\npackages = [\"a\"]\n[disk]\nsize = \"12XB\"\n";
        match parse(text, "t").unwrap_err() {
            SpecError::Syntax {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((line, column), (5, 8));
                assert!(message.contains("12XB"), "{message}");
            }
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn arch_flag_and_arch_placeholder() {
        assert_eq!(Arch::parse("aarch64"), Ok(Arch::Aarch64));
        assert_eq!(Arch::parse("arm64"), Ok(Arch::Aarch64));
        assert_eq!(Arch::parse("amd64"), Ok(Arch::X86_64));
        assert!(Arch::parse("riscv64").unwrap_err().contains("riscv64"));
        let mut s = parse(DEFAULT_SPEC, "built-in").unwrap();
        assert!(s.debian.packages.iter().any(|p| p == "linux-image-{arch}"));
        let mut x = s.clone();
        x.for_arch(None);
        assert!(x.debian.packages.iter().any(|p| p == "linux-image-amd64"));
        s.for_arch(Some(Arch::Aarch64));
        assert_eq!(s.arch, Arch::Aarch64);
        assert!(s.debian.packages.iter().any(|p| p == "linux-image-arm64"));
        assert!(!s.debian.packages.iter().any(|p| p.contains('{')));
    }
}
