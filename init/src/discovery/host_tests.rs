//! The real host pieces on temp directories: persist → STATE round trips, sysfs
//! scanning with image files standing in for /dev nodes, capped reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::fakes::*;
use super::host::read_capped;
use super::*;
use crate::config::Sources;
use crate::testutil::TempDir;

fn load_state(dir: &Path) -> Result<Option<Found>, DiscoveryError> {
    let w = World::default();
    let files = HostFiles { max: MAX_FILE };
    let env = Env {
        files: &files,
        state_dir: dir,
        net_seed_dir: dir,
        ..w.env()
    };
    State.load(&env, &mut Vec::new())
}

fn found(user: &str, origin: &str) -> Found {
    let sources = Sources {
        user_data: Some(user.as_bytes().to_vec()),
        configdrive_network: Some(b"{\"links\": []}".to_vec()),
        ..Sources::default()
    };
    Found::new(sources, origin)
}

#[test]
fn persist_then_state_round_trip() {
    let tmp = TempDir::new("discovery-persist");
    let dir = tmp.path().join("var/lib/kiln/config");
    assert!(load_state(&dir).unwrap().is_none());

    let first = found("#cloud-config\nhostname: a\n", "nocloud:/dev/sr0");
    persist(&first, &dir).unwrap();
    let got = load_state(&dir).unwrap().unwrap();
    assert_eq!(got.sources, first.sources);
    assert_eq!(got.origin, "state");
    let mut notes = Vec::new();
    let env_files = HostFiles { max: MAX_FILE };
    let w = World::default();
    let env = Env {
        files: &env_files,
        state_dir: &dir,
        net_seed_dir: &dir,
        ..w.env()
    };
    State.load(&env, &mut notes).unwrap();
    assert_eq!(notes, ["config persisted from nocloud:/dev/sr0"]);

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("user-data")), 0o600);

    // Replacing: the link moves, no stale files or directories stay behind.
    let second = Found::new(Sources::default(), "defaults");
    persist(&second, &dir).unwrap();
    let got = load_state(&dir).unwrap().unwrap();
    assert_eq!(got.sources, Sources::default());
    let mut left: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".config.1", "config"]);
}

#[test]
fn persist_replaces_a_plain_directory() {
    let tmp = TempDir::new("discovery-persist-plain");
    tmp.write("state/config/user-data", "#cloud-config\n");
    let dir = tmp.path().join("state/config");
    let got = load_state(&dir);
    assert!(matches!(got, Err(DiscoveryError::Broken { .. })), "{got:?}");
    let f = found("#cloud-config\n", "cmdline");
    persist(&f, &dir).unwrap();
    assert_eq!(load_state(&dir).unwrap().unwrap().sources, f.sources);
    assert!(!tmp.path().join("state/.config.old").exists());
}

#[test]
fn state_origin_must_be_text() {
    let tmp = TempDir::new("discovery-origin");
    let dir = tmp.path().join("c");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("origin"), [0xff, 0xfe]).unwrap();
    let got = load_state(&dir);
    assert!(
        matches!(got, Err(DiscoveryError::Broken { ref reason, .. }) if reason == "origin is not UTF-8"),
        "{got:?}"
    );
}

#[test]
fn capped_reads() {
    let tmp = TempDir::new("discovery-cap");
    let path = tmp.write("f", "12345");
    assert_eq!(read_capped(&path, 5).unwrap().unwrap(), b"12345");
    let got = read_capped(&path, 4);
    assert!(
        matches!(got, Err(DiscoveryError::TooLarge { max: 4, .. })),
        "{got:?}"
    );
    assert_eq!(read_capped(&tmp.path().join("none"), 4).unwrap(), None);
    let got = read_capped(tmp.path(), 4);
    assert!(matches!(got, Err(DiscoveryError::Read(..))), "{got:?}");
}

/// A minimal FAT12 boot sector labelled `label` (root directory empty).
fn fat12(label: &str) -> Vec<u8> {
    let mut b = vec![0u8; 8192];
    b[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    b[12] = 0x02; // 512 bytes per sector
    b[13] = 1; // sectors per cluster
    b[14] = 1; // reserved sectors
    b[16] = 2; // FATs
    b[17] = 16; // root entries
    b[22] = 1; // sectors per FAT
    b[0x26] = 0x29;
    let mut l = [b' '; 11];
    l[..label.len()].copy_from_slice(label.as_bytes());
    b[0x2B..0x2B + 11].copy_from_slice(&l);
    b[0x36..0x3E].copy_from_slice(b"FAT12   ");
    b
}

/// (name, uevent PARTNAME, size in sectors, /dev contents)
type SysDev<'a> = (&'a str, Option<&'a str>, &'a str, Option<Vec<u8>>);

#[test]
fn sysfs_scan_probes_disks_and_partitions_and_skips_the_rest() {
    let tmp = TempDir::new("discovery-sysfs");
    let devices: &[SysDev] = &[
        ("sr0", None, "2048", Some(fat12("CIDATA"))),
        ("sr1", None, "0", Some(fat12("CIDATA"))),
        ("vda", None, "100000", Some(vec![0; 4096])),
        ("vda1", Some("EFI"), "2048", Some(fat12("EFI"))),
        ("vda2", Some("KILN-ROOT-A"), "2048", Some(fat12("CIDATA"))),
        ("sdb1", Some("stick"), "2048", Some(fat12("KILN"))),
        ("vdc", None, "2048", None),
        ("loop0", None, "2048", Some(fat12("CIDATA"))),
        ("zram0", None, "2048", Some(fat12("CIDATA"))),
    ];
    for (name, partname, size, dev) in devices {
        let mut uevent = format!("MAJOR=8\nDEVNAME={name}\n");
        if let Some(p) = partname {
            uevent.push_str(&format!("DEVTYPE=partition\nPARTNAME={p}\n"));
        }
        tmp.write(&format!("sys/class/block/{name}/uevent"), &uevent);
        tmp.write(
            &format!("sys/class/block/{name}/size"),
            &format!("{size}\n"),
        );
        if let Some(bytes) = dev {
            std::fs::create_dir_all(tmp.path().join("dev")).unwrap();
            std::fs::write(tmp.path().join("dev").join(name), bytes).unwrap();
        }
    }
    let sys = SysBlockDevices::new(tmp.path().join("sys"), tmp.path().join("dev"));
    let got: Vec<(String, Option<String>, Option<String>)> = sys
        .list()
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.partname, d.fs.map(|f| f.label)))
        .collect();
    let s = |v: &str| Some(v.to_string());
    let want = vec![
        ("sdb1".to_string(), s("stick"), s("KILN")),
        ("sr0".to_string(), None, s("CIDATA")),
        ("vda".to_string(), None, None),
        ("vda1".to_string(), s("EFI"), s("EFI")),
        ("vdc".to_string(), None, None),
    ];
    assert_eq!(got, want);
    let none = SysBlockDevices::new(tmp.path().join("nothing"), tmp.path().join("dev"));
    assert!(none.list().unwrap().is_empty());
}
