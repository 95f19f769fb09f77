//! Finding a GPT partition by name without udev: scan /sys/class/block/*/uevent for
//! `PARTNAME=` and wait for its /dev node, polling because disks appear asynchronously.
//! MBR has no names: on the MBR disk named by `kiln.mbr=<signature>` partitions 1–4 take
//! Kiln's names by number ([`MBR_NAMES`], the imager's `mbr` layout).
//!
//! Owns reading sysfs and checking device nodes under roots passed in by the caller (so
//! tests use a temp dir). It does not mount anything.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors finding a partition.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("read directory {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no partition named {partname} after {secs} s (partitions seen: {seen})")]
    Timeout {
        partname: String,
        secs: u64,
        seen: String,
    },
}

/// Kiln's partition names by MBR partition number (1-based), as the imager lays them out.
pub const MBR_NAMES: [&str; 4] = ["EFI", "KILN-ROOT-A", "KILN-ROOT-B", "KILN-STATE"];

/// The uevent keys we use; others are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Uevent {
    pub devname: Option<String>,
    pub devtype: Option<String>,
    pub partname: Option<String>,
    pub partn: Option<u32>,
}

/// Parses a sysfs `uevent` file (`KEY=VALUE` lines).
pub fn parse_uevent(text: &str) -> Uevent {
    let mut uevent = Uevent::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = Some(value.to_string());
        match key {
            "DEVNAME" => uevent.devname = value,
            "DEVTYPE" => uevent.devtype = value,
            "PARTNAME" => uevent.partname = value,
            "PARTN" => uevent.partn = value.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    uevent
}

/// A named partition and its device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub devname: String,
    pub partname: String,
    pub node: PathBuf,
}

/// The whole disk holding partition `part` (kernel names): /sys/class/block/vda2 links to
/// .../block/vda/vda2, so the parent folder is the disk's.
pub fn parent_disk(sys_root: &Path, part: &str) -> io::Result<String> {
    let parent = std::fs::canonicalize(sys_root.join("class/block").join(part).join(".."))?;
    let name = parent.file_name().map(|n| n.to_string_lossy().into_owned());
    name.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no parent disk"))
}

/// The disk signature of the MBR on `disk`, or None for anything else (see
/// `state::mbr::signature`) or when it cannot be read.
fn mbr_signature(disk: &Path) -> Option<u32> {
    let mut file = std::fs::File::open(disk).ok()?;
    let sector0 = crate::state::mbr::read_sector0(&mut file).ok()?;
    crate::state::mbr::signature(&sector0)
}

/// Kiln's name of an unnamed partition: its number on the MBR disk signed `mbr`.
fn mbr_name(
    sys_root: &Path,
    dev_root: &Path,
    part: &str,
    partn: u32,
    mbr: u32,
    disks: &mut HashMap<String, Option<u32>>,
) -> Option<String> {
    let name = *MBR_NAMES.get(usize::try_from(partn).ok()?.checked_sub(1)?)?;
    let disk = parent_disk(sys_root, part).ok()?;
    let sig = *disks
        .entry(disk)
        .or_insert_with_key(|d| mbr_signature(&dev_root.join(d)));
    (sig == Some(mbr)).then(|| name.to_string())
}

/// Every named partition under `sys_root/class/block`, sorted by kernel name; with `mbr`
/// (`kiln.mbr=`), that MBR disk's partitions by number too. A missing class directory
/// means "none yet"; unreadable uevent files (devices going away) are skipped.
pub fn named_partitions(
    sys_root: &Path,
    dev_root: &Path,
    mbr: Option<u32>,
) -> Result<Vec<Partition>, BlockError> {
    let dir = sys_root.join("class/block");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(BlockError::ReadDir { path: dir, source }),
    };
    let mut found = Vec::new();
    let mut disks = HashMap::new();
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("uevent")) else {
            continue;
        };
        let uevent = parse_uevent(&text);
        let partname = match (&uevent.devname, uevent.partname, uevent.partn, mbr) {
            (_, Some(name), _, _) => Some(name),
            (Some(dev), None, Some(n), Some(sig))
                if uevent.devtype.as_deref() == Some("partition") =>
            {
                mbr_name(sys_root, dev_root, dev, n, sig, &mut disks)
            }
            _ => None,
        };
        if let (Some(devname), Some(partname)) = (uevent.devname, partname) {
            let node = dev_root.join(&devname);
            found.push(Partition {
                devname,
                partname,
                node,
            });
        }
    }
    found.sort_by(|a, b| a.devname.cmp(&b.devname));
    Ok(found)
}

/// Outcome of a successful wait: the partition, and how many partitions had that name
/// (more than one means the first by kernel name was chosen).
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub partition: Partition,
    pub matches: usize,
}

/// One look: the first partition named `partname` whose device node exists.
pub fn find_partition(
    sys_root: &Path,
    dev_root: &Path,
    mbr: Option<u32>,
    partname: &str,
) -> Result<Option<Found>, BlockError> {
    let all = named_partitions(sys_root, dev_root, mbr)?;
    let mut matching = all.into_iter().filter(|p| p.partname == partname);
    let Some(first) = matching.next() else {
        return Ok(None);
    };
    if !first.node.exists() {
        return Ok(None);
    }
    Ok(Some(Found {
        partition: first,
        matches: 1 + matching.count(),
    }))
}

/// Polls `find_partition` every `interval` until `timeout`.
pub fn wait_for_partition(
    sys_root: &Path,
    dev_root: &Path,
    mbr: Option<u32>,
    partname: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<Found, BlockError> {
    let start = Instant::now();
    loop {
        if let Some(found) = find_partition(sys_root, dev_root, mbr, partname)? {
            return Ok(found);
        }
        if start.elapsed() >= timeout {
            return Err(BlockError::Timeout {
                partname: partname.to_string(),
                secs: timeout.as_secs(),
                seen: seen_summary(sys_root, dev_root, mbr),
            });
        }
        std::thread::sleep(interval);
    }
}

/// `vda1=EFI, vda2=KILN-ROOT-A` (or `none`), for the timeout message.
fn seen_summary(sys_root: &Path, dev_root: &Path, mbr: Option<u32>) -> String {
    let parts = named_partitions(sys_root, dev_root, mbr).unwrap_or_default();
    if parts.is_empty() {
        return "none".to_string();
    }
    let names: Vec<String> = parts
        .iter()
        .map(|p| {
            let missing = if p.node.exists() {
                ""
            } else {
                " (no /dev node)"
            };
            format!("{}={}{missing}", p.devname, p.partname)
        })
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn parses_uevents() {
        let cases: &[(&str, Uevent)] = &[
            (
                "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=2\nPARTNAME=KILN-ROOT-A\n",
                Uevent {
                    devname: Some("vda2".into()),
                    devtype: Some("partition".into()),
                    partname: Some("KILN-ROOT-A".into()),
                    partn: Some(2),
                },
            ),
            (
                "MAJOR=254\nDEVNAME=vda\nDEVTYPE=disk\n",
                Uevent {
                    devname: Some("vda".into()),
                    devtype: Some("disk".into()),
                    partname: None,
                    partn: None,
                },
            ),
            ("PARTNAME=a=b\ngarbage line\n", Uevent {
                partname: Some("a=b".into()),
                ..Uevent::default()
            }),
            ("", Uevent::default()),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_uevent(text), want, "uevent {text:?}");
        }
    }

    /// A fake block device: `(kernel name, PARTNAME, has /dev node)`.
    type FakeDev<'a> = (&'a str, Option<&'a str>, bool);

    /// Fake sysfs + devtmpfs holding `devices`.
    fn fake_tree(devices: &[FakeDev]) -> TempDir {
        let tmp = TempDir::new("blockdev");
        std::fs::create_dir_all(tmp.path().join("sys/class/block")).unwrap();
        std::fs::create_dir_all(tmp.path().join("dev")).unwrap();
        for (name, partname, node) in devices {
            let mut uevent = format!("MAJOR=254\nDEVNAME={name}\n");
            if let Some(p) = partname {
                uevent.push_str(&format!("DEVTYPE=partition\nPARTNAME={p}\n"));
            }
            tmp.write(&format!("sys/class/block/{name}/uevent"), &uevent);
            if *node {
                tmp.write(&format!("dev/{name}"), "");
            }
        }
        tmp
    }

    fn lookup(tmp: &TempDir, partname: &str) -> Result<Found, BlockError> {
        let (sys, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
        wait_for_partition(&sys, &dev, None, partname, Duration::ZERO, Duration::ZERO)
    }

    #[test]
    fn finds_partitions_by_name() {
        let tmp = fake_tree(&[
            ("vda", None, true),
            ("vda1", Some("EFI"), true),
            ("vda2", Some("KILN-ROOT-A"), true),
            ("vda3", Some("KILN-ROOT-B"), true),
            ("vdb1", Some("KILN-ROOT-A"), true),
        ]);
        let cases: &[(&str, &str, usize)] = &[
            ("KILN-ROOT-A", "vda2", 2),
            ("KILN-ROOT-B", "vda3", 1),
            ("EFI", "vda1", 1),
        ];
        for (partname, devname, matches) in cases {
            let found = lookup(&tmp, partname).unwrap();
            assert_eq!(found.partition.devname, *devname);
            assert_eq!(found.partition.node, tmp.path().join("dev").join(devname));
            assert_eq!(found.matches, *matches, "{partname}");
        }
    }

    #[test]
    fn times_out_with_what_it_saw() {
        let cases: &[(&[FakeDev], &str, &str)] = &[
            (&[], "KILN-ROOT-A", "none"),
            (&[("vda1", Some("EFI"), true)], "KILN-ROOT-A", "vda1=EFI"),
            (
                &[("vda2", Some("KILN-ROOT-A"), false)],
                "KILN-ROOT-A",
                "vda2=KILN-ROOT-A (no /dev node)",
            ),
            (
                &[("vda2", Some("KILN-ROOT-A"), true)],
                "kiln-root-a",
                "vda2=KILN-ROOT-A",
            ),
        ];
        for (devices, partname, want_seen) in cases {
            let tmp = fake_tree(devices);
            match lookup(&tmp, partname) {
                Err(BlockError::Timeout { seen, secs: 0, .. }) => assert_eq!(&seen, want_seen),
                other => panic!("{partname}: got {other:?}"),
            }
        }
    }

    /// A kernel-shaped MBR disk `disk` with partitions 1..=`parts` (no PARTNAME) and
    /// sector 0 carrying `sig` (`protective`: a GPT's 0xEE entry instead).
    fn fake_mbr_disk(tmp: &TempDir, disk: &str, parts: u32, sig: u32, protective: bool) {
        let dir = format!("sys/devices/virtio/block/{disk}");
        tmp.write(
            &format!("{dir}/uevent"),
            &format!(
                "DEVNAME={disk}
DEVTYPE=disk
"
            ),
        );
        let class = tmp.path().join("sys/class/block");
        std::fs::create_dir_all(&class).unwrap();
        let target = format!("../../devices/virtio/block/{disk}");
        std::os::unix::fs::symlink(&target, class.join(disk)).unwrap();
        for n in 1..=parts {
            let part = format!("{disk}{n}");
            let uevent = format!("DEVNAME={part}\nDEVTYPE=partition\nPARTN={n}\n");
            tmp.write(&format!("{dir}/{part}/uevent"), &uevent);
            std::os::unix::fs::symlink(format!("{target}/{part}"), class.join(&part)).unwrap();
            tmp.write(&format!("dev/{part}"), "");
        }
        let mut sector = vec![0u8; 512];
        sector[440..444].copy_from_slice(&sig.to_le_bytes());
        sector[450] = if protective { 0xEE } else { 0x0C };
        sector[510..512].copy_from_slice(&[0x55, 0xAA]);
        std::fs::write(tmp.path().join("dev").join(disk), sector).unwrap();
    }

    #[test]
    fn names_partitions_of_the_mbr_disk_by_number() {
        let tmp = TempDir::new("blockdev-mbr");
        fake_mbr_disk(&tmp, "vda", 5, 0xdeadbeef, false);
        fake_mbr_disk(&tmp, "vdb", 4, 0x01020304, false);
        fake_mbr_disk(&tmp, "vdc", 4, 0xdeadbeef, true);
        let (sys, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
        let names = |mbr| -> Vec<(String, String)> {
            let got = named_partitions(&sys, &dev, mbr).unwrap();
            got.into_iter().map(|p| (p.devname, p.partname)).collect()
        };
        let want: Vec<(String, String)> = [
            ("vda1", "EFI"),
            ("vda2", "KILN-ROOT-A"),
            ("vda3", "KILN-ROOT-B"),
            ("vda4", "KILN-STATE"),
        ]
        .iter()
        .map(|(d, n)| (d.to_string(), n.to_string()))
        .collect();
        // Only the disk with that signature; not vda5, not a protective MBR, not vdb.
        assert_eq!(names(Some(0xdeadbeef)), want);
        assert!(names(None).is_empty());
        assert!(names(Some(0x0a0a0a0a)).is_empty());
        let found = find_partition(&sys, &dev, Some(0x01020304), "KILN-STATE").unwrap();
        assert_eq!(found.unwrap().partition.devname, "vdb4");
        let err = wait_for_partition(
            &sys,
            &dev,
            Some(7),
            "KILN-ROOT-A",
            Duration::ZERO,
            Duration::ZERO,
        );
        assert!(
            matches!(err, Err(BlockError::Timeout { ref seen, .. }) if seen == "none"),
            "{err:?}"
        );
    }

    #[test]
    fn missing_sysfs_class_is_empty_not_an_error() {
        let tmp = TempDir::new("blockdev-empty");
        let got = named_partitions(&tmp.path().join("sys"), &tmp.path().join("dev"), None).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn unreadable_class_dir_is_an_error() {
        let tmp = TempDir::new("blockdev-file");
        tmp.write("sys/class/block", "not a directory");
        let got = named_partitions(&tmp.path().join("sys"), &tmp.path().join("dev"), None);
        assert!(matches!(got, Err(BlockError::ReadDir { .. })), "{got:?}");
    }
}
