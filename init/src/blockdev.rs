//! Finding a GPT partition by name without udev: scan /sys/class/block/*/uevent for
//! `PARTNAME=` and wait for its /dev node, polling because disks appear asynchronously.
//!
//! Owns reading sysfs and checking device nodes under roots passed in by the caller (so
//! tests use a temp dir). It does not mount anything.

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

/// The uevent keys we use; others are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Uevent {
    pub devname: Option<String>,
    pub devtype: Option<String>,
    pub partname: Option<String>,
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

/// Every named partition under `sys_root/class/block`, sorted by kernel name. A missing
/// class directory means "none yet"; unreadable uevent files (devices going away) are
/// skipped.
pub fn named_partitions(sys_root: &Path, dev_root: &Path) -> Result<Vec<Partition>, BlockError> {
    let dir = sys_root.join("class/block");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(BlockError::ReadDir { path: dir, source }),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("uevent")) else {
            continue;
        };
        let uevent = parse_uevent(&text);
        if let (Some(devname), Some(partname)) = (uevent.devname, uevent.partname) {
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
    partname: &str,
) -> Result<Option<Found>, BlockError> {
    let all = named_partitions(sys_root, dev_root)?;
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
    partname: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<Found, BlockError> {
    let start = Instant::now();
    loop {
        if let Some(found) = find_partition(sys_root, dev_root, partname)? {
            return Ok(found);
        }
        if start.elapsed() >= timeout {
            return Err(BlockError::Timeout {
                partname: partname.to_string(),
                secs: timeout.as_secs(),
                seen: seen_summary(sys_root, dev_root),
            });
        }
        std::thread::sleep(interval);
    }
}

/// `vda1=EFI, vda2=KILN-ROOT-A` (or `none`), for the timeout message.
fn seen_summary(sys_root: &Path, dev_root: &Path) -> String {
    let parts = named_partitions(sys_root, dev_root).unwrap_or_default();
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
                },
            ),
            (
                "MAJOR=254\nDEVNAME=vda\nDEVTYPE=disk\n",
                Uevent {
                    devname: Some("vda".into()),
                    devtype: Some("disk".into()),
                    partname: None,
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
        wait_for_partition(&sys, &dev, partname, Duration::ZERO, Duration::ZERO)
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

    #[test]
    fn missing_sysfs_class_is_empty_not_an_error() {
        let tmp = TempDir::new("blockdev-empty");
        let got = named_partitions(&tmp.path().join("sys"), &tmp.path().join("dev")).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn unreadable_class_dir_is_an_error() {
        let tmp = TempDir::new("blockdev-file");
        tmp.write("sys/class/block", "not a directory");
        let got = named_partitions(&tmp.path().join("sys"), &tmp.path().join("dev"));
        assert!(matches!(got, Err(BlockError::ReadDir { .. })), "{got:?}");
    }
}
