//! Snapshot names, pruning, and receiving the stream into a file (without a network:
//! the stream is fed from memory).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use super::fake::{fake_db, ok, snapshot_stream};
use super::snapshot::{receive, Fail};
use super::*;
use crate::testutil::TempDir;

#[test]
fn names_are_utc_timestamps() {
    let table = [
        (0, "etcd-19700101T000000Z.db"),
        (1_735_787_045, "etcd-20250102T030405Z.db"),
        (951_782_400, "etcd-20000229T000000Z.db"),
        (1_709_164_800, "etcd-20240229T000000Z.db"),
        (4_102_444_799, "etcd-20991231T235959Z.db"),
    ];
    for (t, name) in table {
        assert_eq!(snapshot_name(t), name);
        assert_eq!(parse_snapshot_name(name), Some(t), "{name}");
    }
    // Every day for 130 years comes back to itself.
    for day in (0..47_500u64).step_by(13) {
        let t = day * 86_400 + day % 86_400;
        assert_eq!(parse_snapshot_name(&snapshot_name(t)), Some(t));
    }
}

#[test]
fn other_names_are_not_snapshots() {
    for name in [
        "etcd-20250102T030405Z.db.tmp",
        "etcd-20250102T030405.db",
        "etcd-2025010T2030405Z.db",
        "etcd-20250230T000000Z.db",
        "etcd-20250100T000000Z.db",
        "etcd-20251301T000000Z.db",
        "etcd-20250102T240000Z.db",
        "etcd-2025-1-2T030405Z.db",
        "etcd-19690101T000000Z.db",
        "etcd-+0250102T030405Z.db",
        "snapshot.db",
        "",
    ] {
        assert_eq!(parse_snapshot_name(name), None, "{name}");
    }
}

#[test]
fn prune_removes_the_oldest_snapshots_only() {
    let dir = TempDir::new("etcd-prune");
    let times = [
        1_700_000_000u64,
        1_600_000_000,
        1_750_000_000,
        1_650_000_000,
    ];
    for t in times {
        dir.write(&snapshot_name(t), "db");
    }
    for other in [
        "notes.txt",
        "etcd-20250102T030405Z.db.tmp",
        "etcd-latest.db",
    ] {
        dir.write(other, "keep me");
    }
    ok(std::fs::create_dir(dir.path().join(snapshot_name(1))));
    let removed = ok(prune(dir.path(), 2));
    let want: Vec<PathBuf> = [1_600_000_000, 1_650_000_000]
        .map(|t| dir.path().join(snapshot_name(t)))
        .to_vec();
    assert_eq!(removed, want);
    let mut left: Vec<String> = ok(std::fs::read_dir(dir.path()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    left.sort();
    let want_left = [
        "etcd-19700101T000001Z.db",
        "etcd-20231114T221320Z.db",
        "etcd-20250102T030405Z.db.tmp",
        "etcd-20250615T150640Z.db",
        "etcd-latest.db",
        "notes.txt",
    ];
    assert_eq!(left, want_left);
    assert_eq!(ok(prune(dir.path(), 2)), Vec::<PathBuf>::new());
    let Err(e) = prune(&dir.path().join("missing"), 1) else {
        panic!("pruned a missing directory")
    };
    assert!(e.to_string().starts_with("read "), "{e}");
}

#[test]
fn stream_becomes_the_exact_file() {
    let dir = TempDir::new("etcd-receive");
    let db = fake_db(100_000);
    let stream = snapshot_stream(&db, 32 * 1024);
    let dest = dir.path().join("snap.db");
    let info = match receive(stream.as_slice(), &dest, Duration::from_secs(1)) {
        Ok(info) => info,
        Err(Fail::Remote(e)) => panic!("{e}"),
        Err(Fail::Local(e)) => panic!("{e}"),
    };
    let written = ok(std::fs::read(&dest));
    let sha = ring::digest::digest(&ring::digest::SHA256, &db);
    assert_eq!(&written[..db.len()], db.as_slice());
    assert_eq!(&written[db.len()..], sha.as_ref());
    assert_eq!(info.bytes, written.len() as u64);
    let whole = ring::digest::digest(&ring::digest::SHA256, &written);
    assert_eq!(info.sha256_hex, crate::pki::hex(whole.as_ref()));
    assert_eq!(info.path, dest);
    let mode = ok(std::fs::metadata(&dest)).permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!dir.path().join("snap.db.tmp").exists());
}

#[test]
fn broken_streams_leave_no_file() {
    let db = fake_db(10_000);
    let good = String::from_utf8(snapshot_stream(&db, 4096)).unwrap_or_default();
    let lines: Vec<&str> = good.lines().collect();
    let mut bad_sum = lines.clone();
    let zeros = format!(r#"{{"result":{{"blob":"{}="}}}}"#, "A".repeat(43));
    bad_sum[3] = &zeros;
    let cases: [(String, &str); 6] = [
        (lines[..2].join("\n"), "still to come"),
        (bad_sum.join("\n"), "checksum mismatch"),
        (lines[..3].join("\n"), "checksum mismatch"),
        (String::new(), "empty snapshot stream"),
        (
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}"#
                .into(),
            "HTTP 503: etcdserver: no leader",
        ),
        (format!("{}\n{{\"result\":", lines[0]), "EOF while parsing"),
    ];
    for (stream, want) in cases {
        let dir = TempDir::new("etcd-receive-bad");
        let dest = dir.path().join("snap.db");
        let Err(Fail::Remote(e)) = receive(stream.as_bytes(), &dest, Duration::from_secs(1)) else {
            panic!("{want}: not a remote failure")
        };
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
        let left = ok(std::fs::read_dir(dir.path())).count();
        assert_eq!(left, 0, "{want}: files left behind");
    }
}

#[test]
fn local_write_errors_are_not_the_endpoints_fault() {
    let dir = TempDir::new("etcd-receive-local");
    let dest = dir.path().join("no-such-dir").join("snap.db");
    let stream = snapshot_stream(&fake_db(10), 4);
    let Err(Fail::Local(e)) = receive(stream.as_slice(), &dest, Duration::from_secs(1)) else {
        panic!("not a local failure")
    };
    assert!(e.to_string().contains("snap.db.tmp"), "{e}");
}
