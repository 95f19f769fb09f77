//! Tests for .deb extraction: fixtures built in-process, dpkg-deb built packages and
//! (when present) real packages from /tmp/debs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::io::Write;

/// (raw path, tar type byte, mode, payload or link target)
type Fx<'a> = (&'a str, u8, u32, &'a [u8]);

fn tar_of(entries: &[Fx]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(path, ty, mode, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(tar::EntryType::new(ty));
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(if ty == b'0' { 5 } else { 0 });
        h.set_mtime(0);
        let body: &[u8] = if matches!(ty, b'0') { data } else { b"" };
        if matches!(ty, b'1' | b'2') {
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
        }
        h.set_size(body.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn compress(ext: &str, data: &[u8]) -> Vec<u8> {
    match ext {
        ".xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        ".zst" => zstd::encode_all(data, 3).unwrap(),
        ".gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => data.to_vec(),
    }
}

fn ar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = ar::Builder::new(Vec::new());
    for (name, data) in members {
        let header = ar::Header::new(name.as_bytes().to_vec(), data.len() as u64);
        b.append(&header, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn deb_with(data_ext: &str, data: &[Fx]) -> Vec<u8> {
    let control = tar_of(&[
        ("./", b'5', 0o755, b""),
        ("./control", b'0', 0o644, b"Package: t\n"),
    ]);
    ar_of(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.xz", compress(".xz", &control)),
        (
            &format!("data.tar{data_ext}"),
            compress(data_ext, &tar_of(data)),
        ),
    ])
}

fn collect(deb: &[u8]) -> Result<Vec<Entry>, DebError> {
    let mut out = Vec::new();
    extract_data(deb, &mut |e| {
        out.push(e);
        Ok(())
    })?;
    Ok(out)
}

fn entry(path: &str, mode: u32, gid: u32, kind: EntryKind) -> Entry {
    let path = path.to_string();
    Entry {
        path,
        mode,
        uid: 0,
        gid,
        kind,
    }
}

const GOOD: &[Fx] = &[
    ("./", b'5', 0o755, b""),
    ("./usr/", b'5', 0o755, b""),
    ("./usr/bin/su", b'0', 0o4755, b"binary"),
    ("usr/bin/sh", b'2', 0o777, b"../../bin/dash"),
    ("/usr/bin/su2", b'1', 0o644, b"./usr/bin/su"),
    ("./tmp/", b'5', 0o1777, b""),
];

fn good_entries() -> Vec<Entry> {
    vec![
        entry("usr", 0o755, 0, EntryKind::Dir),
        entry("usr/bin/su", 0o4755, 5, EntryKind::File(b"binary".to_vec())),
        entry(
            "usr/bin/sh",
            0o777,
            0,
            EntryKind::Symlink("../../bin/dash".into()),
        ),
        entry(
            "usr/bin/su2",
            0o644,
            0,
            EntryKind::Hardlink("usr/bin/su".into()),
        ),
        entry("tmp", 0o1777, 0, EntryKind::Dir),
    ]
}

#[test]
fn extracts_every_compression() {
    for ext in ["", ".xz", ".zst", ".gz"] {
        assert_eq!(
            collect(&deb_with(ext, GOOD)).unwrap(),
            good_entries(),
            "{ext}"
        );
    }
}

#[test]
fn control_text_reads_control_file() {
    assert_eq!(
        control_text(&deb_with(".xz", GOOD)).unwrap(),
        "Package: t\n"
    );
    let no_file = ar_of(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", tar_of(&[("./md5sums", b'0', 0o644, b"")])),
    ]);
    assert!(matches!(
        control_text(&no_file),
        Err(DebError::NoControlFile)
    ));
    let no_member = ar_of(&[("debian-binary", b"2.0\n".to_vec())]);
    assert!(matches!(
        control_text(&no_member),
        Err(DebError::NoControlMember)
    ));
}

/// Asserts the expected error variant.
type Check = fn(&DebError) -> bool;

#[test]
fn bad_inputs_name_the_problem() {
    let bin = ("debian-binary", b"2.0\n".to_vec());
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("not ar", b"PK\x03\x04 zip".to_vec(), |e| {
            matches!(e, DebError::NotADeb)
        }),
        ("empty ar", ar_of(&[]), |e| matches!(e, DebError::NotADeb)),
        ("ar, no debian-binary", ar_of(&[("x", vec![1])]), |e| {
            matches!(e, DebError::NotADeb)
        }),
        ("no data", ar_of(std::slice::from_ref(&bin)), |e| {
            matches!(e, DebError::NoDataMember)
        }),
        (
            "bz2",
            ar_of(&[bin.clone(), ("data.tar.bz2", vec![0])]),
            |e| matches!(e, DebError::UnknownCompression(n) if n == "data.tar.bz2"),
        ),
        (
            "corrupt xz",
            ar_of(&[bin.clone(), ("data.tar.xz", b"garbage".to_vec())]),
            |e| matches!(e, DebError::Tar { member, .. } if member == "data.tar.xz"),
        ),
        (
            "dotdot",
            deb_with("", &[("./a/../../etc/x", b'0', 0o644, b"")]),
            |e| matches!(e, DebError::UnsafePath(p) if p == "./a/../../etc/x"),
        ),
        (
            "hardlink dotdot",
            deb_with("", &[("./x", b'1', 0o644, b"../y")]),
            |e| matches!(e, DebError::UnsafePath(p) if p == "../y"),
        ),
        (
            "fifo",
            deb_with(".gz", &[("./run/p", b'6', 0o644, b"")]),
            |e| matches!(e, DebError::Unsupported { path, kind } if path == "./run/p" && kind == "fifo"),
        ),
        (
            "char dev",
            deb_with("", &[("./dev/null", b'3', 0o666, b"")]),
            |e| matches!(e, DebError::Unsupported { kind, .. } if kind == "character device"),
        ),
        (
            "root file",
            deb_with("", &[("./", b'0', 0o644, b"x")]),
            |e| matches!(e, DebError::UnsafePath(_)),
        ),
    ];
    for (name, deb, check) in cases {
        let err = collect(&deb).expect_err(name);
        assert!(check(&err), "{name}: {err:?}");
    }
}

#[test]
fn sink_error_stops_extraction() {
    let mut seen = 0;
    let err = extract_data(&deb_with(".zst", GOOD), &mut |e| {
        seen += 1;
        Err(DebError::Sink {
            path: e.path,
            source: "full".into(),
        })
    });
    assert!(matches!(err, Err(DebError::Sink { path, .. }) if path == "usr"));
    assert_eq!(seen, 1);
}

/// Builds real packages with dpkg-deb when the host has it.
#[test]
fn dpkg_deb_built_packages() {
    if std::process::Command::new("dpkg-deb")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("dpkg-deb absent, skipping");
        return;
    }
    use std::os::unix::fs::{symlink, PermissionsExt};
    let dir = std::env::temp_dir().join(format!("kiln-deb-test-{}", std::process::id()));
    let root = dir.join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let control =
        "Package: kiln-t\nVersion: 1\nArchitecture: all\nMaintainer: k <k@k>\nDescription: t\n";
    std::fs::write(root.join("DEBIAN/control"), control).unwrap();
    std::fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).unwrap();
    symlink("tool", root.join("usr/bin/link")).unwrap();
    for z in ["xz", "zstd", "gzip", "none"] {
        let out = dir.join(format!("t-{z}.deb"));
        let status = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(format!("-Z{z}"))
            .args([&root, &out])
            .output()
            .unwrap();
        assert!(status.status.success(), "{z}: {status:?}");
        let deb = std::fs::read(&out).unwrap();
        assert_eq!(control_text(&deb).unwrap(), control);
        let mut entries = collect(&deb).unwrap();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let paths: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.mode)).collect();
        let want = [("usr", 0o755), ("usr/bin", 0o755), ("usr/bin/link", 0o777)];
        assert_eq!(&paths[..3], &want, "{z}");
        let tool = entries
            .iter()
            .filter(|e| e.path.starts_with("usr/bin/tool"));
        let kinds: Vec<_> = tool.map(|e| (e.mode, e.kind.clone())).collect();
        assert_eq!(kinds.len(), 2);
        assert!(
            kinds.contains(&(0o4755, EntryKind::File(b"#!/bin/sh\n".to_vec()))),
            "{z}"
        );
        let link_to = |t: &str| EntryKind::Hardlink(t.to_string());
        assert!(kinds
            .iter()
            .any(|k| k.1 == link_to("usr/bin/tool") || k.1 == link_to("usr/bin/tool2")));
        assert_eq!(entries[2].kind, EntryKind::Symlink("tool".into()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Extracts real packages dropped in /tmp/debs (e.g. `apt-get download busybox`); skips
/// when there are none. Packages over 8 MB only with KILN_DEB_BENCH=1 (timings:
/// `KILN_DEB_BENCH=1 cargo test --release ... real_debs -- --nocapture`).
#[test]
fn real_debs_in_tmp() {
    let Ok(dir) = std::fs::read_dir("/tmp/debs") else {
        return;
    };
    let max = if std::env::var_os("KILN_DEB_BENCH").is_some() {
        u64::MAX
    } else {
        8 << 20
    };
    let mut paths: Vec<_> = dir.flatten().map(|d| d.path()).collect();
    paths.retain(|p| p.extension().is_some_and(|e| e == "deb"));
    paths.retain(|p| p.metadata().is_ok_and(|m| m.len() <= max));
    paths.sort();
    for path in paths {
        let deb = std::fs::read(&path).unwrap();
        let start = std::time::Instant::now();
        let (mut n, mut bytes) = (0u64, 0u64);
        extract_data(&deb, &mut |e| {
            n += 1;
            if let EntryKind::File(d) = &e.kind {
                bytes += d.len() as u64;
            }
            Ok(())
        })
        .unwrap();
        let took = start.elapsed();
        assert!(control_text(&deb).unwrap().contains("Package: "));
        let mb = |b: u64| b as f64 / 1e6;
        eprintln!(
            "{}: {n} entries, {:.1} MB deb, {:.1} MB files, {took:.2?}",
            path.display(),
            mb(deb.len() as u64),
            mb(bytes)
        );
    }
}
