//! Tests for the FAT32 builder: fsck.fat/fatlabel on real images plus a tiny reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::names::{lfn_checksum, short_names, LFN_SLOTS};
use super::*;
use std::path::PathBuf;
use std::process::Command;

const MIB: u64 = 1 << 20;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-fat-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// An ESP-like tree; returns the builder and every file with its contents.
fn esp() -> (FatBuilder, Vec<(String, Vec<u8>)>) {
    let mut kernel = pattern(5 * MIB as usize + 123, 7);
    kernel[MIB as usize..2 * MIB as usize].fill(0); // exercises zero skipping
    let mut files = vec![
        ("EFI/BOOT/BOOTX64.EFI".to_owned(), pattern(300_000, 1)),
        (
            "EFI/systemd/systemd-bootx64.efi".to_owned(),
            pattern(90_000, 2),
        ),
        ("loader/loader.conf".to_owned(), b"timeout 0\n".to_vec()),
        (
            "loader/entries/kiln+3.conf".to_owned(),
            b"title Kiln\n".to_vec(),
        ),
        ("vmlinuz".to_owned(), kernel),
        ("empty".to_owned(), Vec::new()),
        ("ünïcødé name.txt".to_owned(), b"utf16".to_vec()),
        ("longfilename1.txt".to_owned(), b"1".to_vec()),
        ("longfilename2.txt".to_owned(), b"2".to_vec()),
    ];
    for i in 0..300 {
        files.push((
            format!("many/a rather long file name {i:03}.data"),
            vec![i as u8; i],
        ));
    }
    let mut b = FatBuilder::new("EFI");
    for (path, data) in &files {
        b.add_file(path, data.clone()).unwrap();
    }
    b.add_dir("EFI/Linux").unwrap();
    b.add_dir("EFI/BOOT").unwrap();
    (b, files)
}

/// Runs `tool args image`; `None` when the tool is not installed.
fn run(tool: &str, args: &[&str], image: &std::path::Path) -> Option<String> {
    let out = Command::new(tool).args(args).arg(image).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    Some(text)
}

/// `fsck.fat -n` must be silent, `fsck.fat -v -n -l` must list every file (long
/// names) and `fatlabel` must print the label.
fn assert_fsck_clean(image: &std::path::Path, label: &str, files: &[(String, Vec<u8>)]) {
    let Some(plain) = run("fsck.fat", &["-n"], image) else {
        println!("skipped: fsck.fat not installed");
        return;
    };
    for line in plain.lines() {
        let expected = line.starts_with("fsck.fat ") || line.contains(" files, ");
        assert!(expected, "unexpected fsck.fat output: {line:?}\n{plain}");
    }
    let verbose = run("fsck.fat", &["-v", "-n", "-l"], image).unwrap_or_default();
    assert!(
        verbose.contains("Checking free cluster summary"),
        "{verbose}"
    );
    for (path, _) in files {
        let line = format!("Checking file /{path}");
        let listed = verbose
            .lines()
            .any(|l| l == line || l.starts_with(&format!("{line} (")));
        assert!(listed, "{path} not listed:\n{verbose}");
    }
    match run("fatlabel", &[], image) {
        Some(text) => assert_eq!(text.trim_end(), label),
        None => println!("skipped: fatlabel not installed"),
    }
}

/// Tiny independent reader used to check contents.
struct Reader {
    img: Vec<u8>,
    cluster: usize,
    fat_at: usize,
    data_at: usize,
}

impl Reader {
    fn new(img: Vec<u8>) -> Self {
        let le16 = |at: usize| u16::from_le_bytes([img[at], img[at + 1]]) as usize;
        let fat_size = u32::from_le_bytes(img[36..40].try_into().unwrap()) as usize;
        let (rsvd, cluster) = (le16(14), img[13] as usize * 512);
        Self {
            cluster,
            fat_at: rsvd * 512,
            data_at: (rsvd + 2 * fat_size) * 512,
            img,
        }
    }

    fn chain(&self, mut c: u32) -> Vec<u8> {
        let mut out = Vec::new();
        while (2..0x0FFF_FFF8).contains(&c) {
            let at = self.data_at + (c as usize - 2) * self.cluster;
            out.extend_from_slice(&self.img[at..at + self.cluster]);
            let e = self.fat_at + 4 * c as usize;
            c = u32::from_le_bytes(self.img[e..e + 4].try_into().unwrap()) & 0x0FFF_FFFF;
        }
        out
    }

    /// (name, attr, first cluster, size) of a directory's entries, LFN preferred.
    fn list(&self, cluster: u32) -> Vec<(String, u8, u32, usize)> {
        let (mut out, mut lfn) = (Vec::new(), Vec::<(u8, u8, Vec<u16>)>::new());
        for e in self.chain(cluster).chunks(32) {
            if e[0] == 0 {
                break;
            }
            if e[11] == ATTR_LFN {
                let units = LFN_SLOTS
                    .iter()
                    .map(|&a| u16::from_le_bytes([e[a], e[a + 1]]));
                lfn.push((e[0] & 0x1F, e[13], units.collect()));
                continue;
            }
            let short: [u8; 11] = e[..11].try_into().unwrap();
            let mut name = String::from_utf8_lossy(&short[..8]).trim_end().to_owned();
            if short[8] != b' ' {
                name = format!("{name}.{}", String::from_utf8_lossy(&short[8..]).trim_end());
            }
            if !lfn.is_empty() {
                assert!(lfn.iter().all(|l| l.1 == lfn_checksum(&short)), "checksum");
                lfn.sort_by_key(|l| l.0);
                let units: Vec<u16> = lfn.iter().flat_map(|l| l.2.clone()).collect();
                let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
                name = String::from_utf16(&units[..end]).unwrap();
                lfn.clear();
            }
            let first = u32::from(u16::from_le_bytes([e[20], e[21]])) << 16
                | u32::from(u16::from_le_bytes([e[26], e[27]]));
            let size = u32::from_le_bytes(e[28..32].try_into().unwrap()) as usize;
            out.push((name, e[11], first, size));
        }
        out
    }

    fn read(&self, path: &str) -> Vec<u8> {
        let mut cluster = 2;
        let parts: Vec<&str> = path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let entries = self.list(cluster);
            let (_, attr, first, size) = entries
                .into_iter()
                .find(|e| e.0 == *part && e.1 != ATTR_VOLUME)
                .unwrap();
            if i + 1 == parts.len() {
                assert_eq!(attr, ATTR_ARCHIVE, "{path}");
                return self.chain(first)[..size].to_vec();
            }
            assert_eq!(attr, ATTR_DIR, "{path}");
            cluster = first;
        }
        unreachable!()
    }
}

#[test]
fn esp_images_pass_fsck_and_read_back() {
    let dir = scratch("esp");
    let (builder, files) = esp();
    for (size, offset, spc) in [(128 * MIB, 0, 2u8), (256 * MIB, MIB, 4), (40 * MIB, 0, 1)] {
        let path = dir.join(format!("disk-{size}"));
        let file = File::create(&path).unwrap();
        builder.write_to(&file, offset, size).unwrap();
        assert_eq!(file.metadata().unwrap().len(), offset + size);
        let mut img = std::fs::read(&path).unwrap();
        img.drain(..offset as usize);
        let esp_path = dir.join(format!("esp-{size}"));
        std::fs::write(&esp_path, &img).unwrap();
        assert_fsck_clean(&esp_path, "EFI", &files);
        assert_eq!(img[13], spc, "sectors per cluster for {size}");
        assert_eq!(
            u32::from_le_bytes(img[28..32].try_into().unwrap()),
            (offset / 512) as u32
        );
        let reader = Reader::new(img);
        for (path, data) in &files {
            assert!(reader.read(path) == *data, "{path} differs");
        }
        let root: Vec<String> = reader.list(2).into_iter().map(|e| e.0).collect();
        let want = [
            "EFI",
            "EFI",
            "empty",
            "loader",
            "longfilename1.txt",
            "longfilename2.txt",
        ];
        assert_eq!(&root[..6], want, "root listing (label first)");
        let esp1 = reader.list(reader.list(2)[1].2);
        assert_eq!(
            (esp1[0].0.as_str(), esp1[1].0.as_str(), esp1[1].2),
            (".", "..", 0)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_is_deterministic() {
    let dir = scratch("det");
    let images: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let path = dir.join(format!("{i}"));
            esp()
                .0
                .write_to(&File::create(&path).unwrap(), 0, 64 * MIB)
                .unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(images[0] == images[1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn short_names_table() {
    let names = [
        "BOOTX64.EFI",
        "vmlinuz",
        "loader.conf",
        "kiln+3.efi",
        ".bashrc",
        "a.b.c",
        "EFI",
        "longfilename1.txt",
        "longfilename2.txt",
        "LONGFI~1.TXT",
    ];
    let want = [
        "BOOTX64 EFI",
        "VMLINUZ    ",
        "LOADER~1CON",
        "KILN_3~1EFI",
        "BASHRC~1   ",
        "AB~1    C  ",
        "EFI        ",
        "LONGFI~2TXT",
        "LONGFI~3TXT",
        "LONGFI~1TXT",
    ];
    let got = short_names(&names).unwrap();
    let got: Vec<String> = got
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn bad_paths_are_rejected() {
    type Case = (&'static str, fn(&FatError) -> bool);
    let cases: [Case; 11] = [
        ("", |e| matches!(e, FatError::EmptyComponent(_))),
        ("/EFI/x", |e| matches!(e, FatError::EmptyComponent(_))),
        ("EFI//x", |e| matches!(e, FatError::EmptyComponent(_))),
        ("EFI/a:b", |e| {
            matches!(e, FatError::InvalidChar { ch: ':', .. })
        }),
        ("a\u{1}", |e| {
            matches!(e, FatError::InvalidChar { ch: '\u{1}', .. })
        }),
        ("EFI/..", |e| matches!(e, FatError::InvalidName(_))),
        ("trailing.", |e| matches!(e, FatError::InvalidName(_))),
        (
            "file",
            |e| matches!(e, FatError::Duplicate(p) if p == "file"),
        ),
        ("FILE", |e| matches!(e, FatError::Duplicate(_))),
        ("file/x", |e| matches!(e, FatError::Conflict(_))),
        ("efi", |e| matches!(e, FatError::Conflict(_))),
    ];
    for (path, check) in cases {
        let mut b = FatBuilder::new("EFI");
        b.add_file("file", vec![1]).unwrap();
        b.add_dir("EFI").unwrap();
        let err = b.add_file(path, vec![2]).unwrap_err();
        assert!(check(&err), "{path:?}: {err:?}");
    }
    let mut b = FatBuilder::new("EFI");
    b.add_file("file", vec![1]).unwrap();
    assert!(matches!(b.add_dir("file"), Err(FatError::Conflict(_))));
    let long = "x".repeat(256);
    assert!(matches!(b.add_dir(&long), Err(FatError::NameTooLong(_))));
}

#[test]
fn size_errors() {
    let dir = scratch("size");
    let file = File::create(dir.join("img")).unwrap();
    let b = FatBuilder::new("EFI");
    let err = b.write_to(&file, 0, 16 * MIB).unwrap_err();
    assert!(matches!(err, FatError::TooSmall { size } if size == 16 * MIB));
    let err = b.write_to(&file, 100, 64 * MIB).unwrap_err();
    assert!(matches!(err, FatError::Unaligned { offset: 100, .. }));
    let mut big = FatBuilder::new("EFI");
    big.add_file("big", vec![1; 40 * MIB as usize]).unwrap();
    let err = big.write_to(&file, 0, 40 * MIB).unwrap_err();
    assert!(matches!(err, FatError::TooLarge { needed, available } if needed > available));
    std::fs::remove_dir_all(&dir).unwrap();
}
