//! Label probing on images made by tools we did not write (mkfs.fat, genisoimage,
//! cloud-localds). A missing tool prints "skipped: …", and fails the test when CI=true.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::testutil::TempDir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `tool` is on PATH; otherwise says so (and panics in CI).
fn have(tool: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {tool} is required in CI"
        );
        eprintln!("skipped: {test}: {tool} not installed");
    }
    found
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn seed_files(tmp: &TempDir) -> PathBuf {
    tmp.write("user-data", "#cloud-config\nhostname: n1\n");
    tmp.write("meta-data", "instance-id: iid-1\n");
    tmp.path().to_path_buf()
}

fn probe_file(path: &Path) -> Option<Fs> {
    let bytes = std::fs::read(path).unwrap();
    probe(bytes.as_slice())
}

fn fs(kind: FsKind, label: &str) -> Option<Fs> {
    Some(Fs {
        kind,
        label: label.to_string(),
    })
}

#[test]
fn mkfs_fat_labels_in_every_fat_size() {
    if !have("mkfs.fat", "mkfs_fat_labels_in_every_fat_size") {
        return;
    }
    let tmp = TempDir::new("probe-fat");
    // (FAT size, KiB, label or none)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("12", "1440", Some("CIDATA")),
        ("16", "20000", Some("KILN")),
        ("32", "40000", Some("CONFIG-2")),
        ("12", "1440", None),
    ];
    for (i, (bits, kib, label)) in cases.iter().enumerate() {
        let img = format!("fat{i}.img");
        let mut args = vec!["-C", "-F", bits];
        if let Some(l) = label {
            args.extend(["-n", l]);
        }
        args.extend([img.as_str(), kib]);
        run(tmp.path(), "mkfs.fat", &args);
        let want = fs(FsKind::Vfat, label.unwrap_or(""));
        assert_eq!(
            probe_file(&tmp.path().join(&img)),
            want,
            "FAT{bits} {label:?}"
        );
    }
}

#[test]
fn fat_root_directory_label_wins_over_boot_sector() {
    if !have("mkfs.fat", "fat_root_directory_label_wins_over_boot_sector") {
        return;
    }
    let tmp = TempDir::new("probe-fat-root");
    run(
        tmp.path(),
        "mkfs.fat",
        &["-C", "-n", "CIDATA", "a.img", "1440"],
    );
    let mut bytes = std::fs::read(tmp.path().join("a.img")).unwrap();
    bytes[0x2B..0x2B + 11].copy_from_slice(b"STALE      ");
    assert_eq!(probe(bytes.as_slice()), fs(FsKind::Vfat, "CIDATA"));
    // Without a root entry (or beyond what is readable) the boot sector label counts.
    let boot_only = &bytes[..512];
    assert_eq!(probe(boot_only), fs(FsKind::Vfat, "STALE"));
}

#[test]
fn genisoimage_volume_ids() {
    if !have("genisoimage", "genisoimage_volume_ids") {
        return;
    }
    let tmp = TempDir::new("probe-iso");
    seed_files(&tmp);
    for label in ["cidata", "CIDATA", "config-2", "KILN"] {
        let iso = format!("{label}.iso");
        let args = ["-quiet", "-V", label, "-r", "-J", "-o", &iso, "user-data"];
        run(tmp.path(), "genisoimage", &args);
        let want = fs(FsKind::Iso9660, label);
        assert_eq!(probe_file(&tmp.path().join(&iso)), want, "{label}");
    }
}

#[test]
fn cloud_localds_seeds_in_both_formats() {
    if !have("cloud-localds", "cloud_localds_seeds_in_both_formats") {
        return;
    }
    let tmp = TempDir::new("probe-localds");
    seed_files(&tmp);
    run(
        tmp.path(),
        "cloud-localds",
        &["seed.iso", "user-data", "meta-data"],
    );
    let fat = ["-f", "vfat", "seed.img", "user-data", "meta-data"];
    run(tmp.path(), "cloud-localds", &fat);
    let iso = probe_file(&tmp.path().join("seed.iso"));
    assert_eq!(iso, fs(FsKind::Iso9660, "cidata"));
    // cloud-localds runs mkfs.vfat -n cidata: FAT stores it upper-cased.
    let img = probe_file(&tmp.path().join("seed.img")).unwrap();
    assert_eq!(img.kind, FsKind::Vfat);
    assert!(
        ["cidata", "CIDATA"].contains(&img.label.as_str()),
        "{img:?}"
    );
}

#[test]
fn other_bytes_are_not_filesystems() {
    let mut mbr = vec![0u8; 64 * 1024];
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    let mut grub_like = mbr.clone();
    grub_like[0] = 0xEB;
    grub_like[12] = 0x02; // 512 bytes per sector, but no "FAT" type string
    let mut bad_iso = vec![0u8; 40 * 1024];
    bad_iso[32768..32774].copy_from_slice(b"\x01CD002");
    let cases: &[(&str, &[u8])] = &[
        ("empty", &[]),
        ("short", &[0xEB, 0x3C, 0x90]),
        ("zeros", &[0u8; 4096]),
        ("protective MBR", &mbr),
        ("jump without BPB", &grub_like),
        ("wrong iso magic", &bad_iso),
    ];
    for (name, bytes) in cases {
        assert_eq!(probe(*bytes), None, "{name}");
    }
}

#[test]
fn iso_boot_record_before_primary_descriptor() {
    let mut img = vec![0u8; 40 * 1024];
    img[32768..32774].copy_from_slice(b"\x00CD001");
    let pvd = 32768 + 2048;
    img[pvd..pvd + 6].copy_from_slice(b"\x01CD001");
    img[pvd + 40..pvd + 72].copy_from_slice(&[b' '; 32]);
    img[pvd + 40..pvd + 46].copy_from_slice(b"cidata");
    assert_eq!(probe(img.as_slice()), fs(FsKind::Iso9660, "cidata"));
}
