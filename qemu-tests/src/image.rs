//! Host-side checks of built images with tools Kiln did not write (STYLE rule 11): finding
//! and running them, cutting a partition out of a raw disk, parsing `sfdisk -d`.
//!
//! Owns only reading images; building them is `kiln_imager::pipeline`'s job and looking
//! inside a running guest is [`crate::Vm`]'s.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{anyhow, bail, Context, Result};

/// sbin directories are searched too: `sfdisk` and `fsck.fat` live there and are often
/// missing from a normal user's `PATH`.
const EXTRA_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];
const CHUNK: usize = 1 << 20;

/// Cargo's target dir: `CARGO_TARGET_DIR` (relative to the workspace root) or
/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// The executable `name` in `PATH`, `/usr/sbin` or `/sbin`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The skip policy of [`crate::require_qemu`] for host tools: `true` if all of `tools`
/// exist; else prints `skipped: <reason>` and returns `false`, or panics under `CI=true`.
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "host tools missing: {} (run .ci/setup-host)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("image checks must run in CI but cannot: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// What a tool printed and how it ended.
#[derive(Debug)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `name args...` to completion (stdin closed) and captures its output.
pub fn tool<S: AsRef<OsStr>>(name: &str, args: &[S]) -> Result<ToolOutput> {
    let program = find_tool(name).ok_or_else(|| anyhow!("{name} not found"))?;
    let out = Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("run {}", program.display()))?;
    Ok(ToolOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// [`tool`], failing with both output streams unless it exits 0.
pub fn tool_ok<S: AsRef<OsStr>>(name: &str, args: &[S]) -> Result<ToolOutput> {
    let out = tool(name, args)?;
    if !out.status.success() {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        bail!(
            "{name} {} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            shown.join(" "),
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(out)
}

/// Copies `len` bytes at `offset` of `disk` into a new file `dest` (like `dd skip= count=`),
/// leaving all-zero MiB chunks as holes.
pub fn extract(disk: &Path, offset: u64, len: u64, dest: &Path) -> Result<()> {
    let mut src = File::open(disk).with_context(|| format!("open {}", disk.display()))?;
    src.seek(SeekFrom::Start(offset))
        .with_context(|| format!("seek {} to {offset}", disk.display()))?;
    let mut out = File::create(dest).with_context(|| format!("create {}", dest.display()))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = usize::try_from(len - done).map_or(CHUNK, |left| left.min(CHUNK));
        src.read_exact(&mut buf[..n])
            .with_context(|| format!("read {} at {}", disk.display(), offset + done))?;
        if buf[..n].iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(n as i64))
                .with_context(|| format!("seek {}", dest.display()))?;
        } else {
            out.write_all(&buf[..n])
                .with_context(|| format!("write {}", dest.display()))?;
        }
        done += n as u64;
    }
    out.set_len(len)
        .with_context(|| format!("size {}", dest.display()))?;
    Ok(())
}

/// The SHA-256 of `path` in lowercase hex, computed by `openssl dgst` when it exists (it
/// uses the CPU's SHA instructions: a 2 GiB image takes ~2 s instead of ~20 s) or else by
/// coreutils' `sha256sum`. Both print `<hex> <name>` first.
pub fn sha256(path: &Path) -> Result<String> {
    let out = match find_tool("openssl") {
        Some(_) => tool_ok(
            "openssl",
            &[
                OsStr::new("dgst"),
                OsStr::new("-sha256"),
                OsStr::new("-r"),
                path.as_os_str(),
            ],
        )?,
        None => tool_ok("sha256sum", &[path])?,
    };
    match out.stdout.split_whitespace().next() {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(hex.to_ascii_lowercase())
        }
        _ => bail!("unexpected digest output {:?}", out.stdout),
    }
}

/// One partition line of `sfdisk -d`; start and size in sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedPartition {
    pub start: u64,
    pub size: u64,
    pub type_guid: String,
    pub uuid: String,
    pub name: String,
    /// MBR only: the active flag (`bootable`).
    pub bootable: bool,
}

/// The parts of an `sfdisk -d` dump the tests compare with a disk plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SfdiskDump {
    pub label: String,
    pub label_id: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub partitions: Vec<DumpedPartition>,
}

/// Parses the text `sfdisk -d` prints (header `key: value` lines, then one
/// `<dev> : start=…, size=…, type=…, uuid=…, name="…"` line per partition; an MBR's lines
/// carry a hex type and maybe `bootable`).
pub fn parse_sfdisk_dump(text: &str) -> Result<SfdiskDump> {
    let mut dump = SfdiskDump::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((_, fields)) = line.split_once(" : ") {
            dump.partitions.push(parse_partition(fields)?);
            continue;
        }
        let Some((key, value)) = line.split_once(": ") else {
            bail!("unexpected sfdisk line {line:?}");
        };
        let value = value.trim();
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("sfdisk {key}: {value:?}"))
        };
        match key {
            "label" => dump.label = value.to_string(),
            "label-id" => dump.label_id = value.to_string(),
            "first-lba" => dump.first_lba = number()?,
            "last-lba" => dump.last_lba = number()?,
            _ => {}
        }
    }
    Ok(dump)
}

fn parse_partition(fields: &str) -> Result<DumpedPartition> {
    let mut p = DumpedPartition {
        start: 0,
        size: 0,
        type_guid: String::new(),
        uuid: String::new(),
        name: String::new(),
        bootable: false,
    };
    for field in fields.split(", ") {
        if field.trim() == "bootable" {
            p.bootable = true;
            continue;
        }
        let Some((key, value)) = field.split_once('=') else {
            bail!("unexpected sfdisk field {field:?}");
        };
        let value = value.trim();
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("sfdisk {key}: {value:?}"))
        };
        match key.trim() {
            "start" => p.start = number()?,
            "size" => p.size = number()?,
            "type" => p.type_guid = value.to_string(),
            "uuid" => p.uuid = value.to_string(),
            "name" => p.name = value.trim_matches('"').to_string(),
            _ => {}
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn parses_an_sfdisk_dump() {
        let text = "label: gpt\nlabel-id: 20D92A46-AE84-4DC0-B51D-7BCB1A2B7F85\n\
            device: d.raw\nunit: sectors\nfirst-lba: 34\nlast-lba: 4194270\nsector-size: 512\n\n\
            d.raw1 : start=        2048, size=      262144, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=A432E138-40E8-4EB0-A076-F9EF81FB3B6A, name=\"EFI\"\n\
            d.raw2 : start=      264192, size=     1572864, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=25E11790-2A9A-4578-BBA6-8FDAC5BBE56E, name=\"KILN-ROOT-A\"\n";
        let dump = parse_sfdisk_dump(text).unwrap();
        assert_eq!(dump.label, "gpt");
        assert_eq!(dump.label_id, "20D92A46-AE84-4DC0-B51D-7BCB1A2B7F85");
        assert_eq!((dump.first_lba, dump.last_lba), (34, 4194270));
        assert_eq!(
            dump.partitions[1],
            DumpedPartition {
                start: 264192,
                size: 1572864,
                type_guid: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709".into(),
                uuid: "25E11790-2A9A-4578-BBA6-8FDAC5BBE56E".into(),
                name: "KILN-ROOT-A".into(),
                bootable: false,
            }
        );
        assert_eq!(dump.partitions.len(), 2);
        let mbr = "label: dos\nlabel-id: 0x304df566\ndevice: d.raw\nunit: sectors\n\n\
            d.raw1 : start=        2048, size=      262144, type=c, bootable\n\
            d.raw2 : start=      264192, size=     1572864, type=83\n";
        let dump = parse_sfdisk_dump(mbr).unwrap();
        assert_eq!(
            (dump.label.as_str(), dump.label_id.as_str()),
            ("dos", "0x304df566")
        );
        let p: Vec<_> = dump
            .partitions
            .iter()
            .map(|p| (p.type_guid.as_str(), p.bootable))
            .collect();
        assert_eq!(p, [("c", true), ("83", false)]);
        let err = parse_sfdisk_dump("garbage").unwrap_err().to_string();
        assert_eq!(err, "unexpected sfdisk line \"garbage\"");
    }

    #[test]
    fn extract_and_sha256() {
        let dir = std::env::temp_dir().join(format!("kiln-extract-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("disk");
        let mut bytes = vec![0u8; 3 * CHUNK];
        bytes[CHUNK + 5] = 7;
        bytes[3 * CHUNK - 1] = 9;
        std::fs::write(&disk, &bytes).unwrap();
        let part = dir.join("part");
        extract(&disk, 5, (3 * CHUNK - 5) as u64, &part).unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), bytes[5..]);
        let err = extract(&disk, 5, (3 * CHUNK) as u64, &part).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("read {} at {}", disk.display(), 5 + 2 * CHUNK)
        );
        let abc = dir.join("abc");
        std::fs::write(&abc, b"abc").unwrap();
        assert_eq!(
            sha256(&abc).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
