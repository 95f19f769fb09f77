//! etcd and etcdutl command lines, argument by argument.

use std::path::{Path, PathBuf};

use super::fake::settings;
use super::*;
use crate::testutil::TempDir;

fn paths() -> Paths {
    Paths::default()
}

fn argv(words: &str) -> Vec<String> {
    words.split_whitespace().map(String::from).collect()
}

const TLS: &str = "--client-cert-auth \
    --trusted-ca-file /etc/kubernetes/pki/etcd/ca.crt \
    --cert-file /etc/kubernetes/pki/etcd/server.crt \
    --key-file /etc/kubernetes/pki/etcd/server.key \
    --peer-client-cert-auth \
    --peer-trusted-ca-file /etc/kubernetes/pki/etcd/ca.crt \
    --peer-cert-file /etc/kubernetes/pki/etcd/peer.crt \
    --peer-key-file /etc/kubernetes/pki/etcd/peer.key \
    --snapshot-count 10000 --listen-metrics-urls http://127.0.0.1:2381";

#[test]
fn new_cluster_of_the_initial_control_planes() {
    let s = settings("10.0.0.11", None);
    let initial = Initial::New {
        members: initial_members(&s),
    };
    let want = argv(&format!(
        "/usr/bin/etcd --name cp-1 --data-dir /var/lib/etcd \
         --listen-peer-urls https://10.0.0.11:2380 \
         --listen-client-urls https://10.0.0.11:2379,https://127.0.0.1:2379 \
         --advertise-client-urls https://10.0.0.11:2379 \
         --initial-advertise-peer-urls https://10.0.0.11:2380 \
         --initial-cluster cp-1=https://10.0.0.11:2380,cp-2=https://10.0.0.12:2380 \
         --initial-cluster-state new --initial-cluster-token dev {TLS}"
    ));
    assert_eq!(etcd_args(&s, "cp-1", &initial, &paths()), want);
}

#[test]
fn joining_member_and_restored_member() {
    let s = settings("10.0.0.13", None);
    let members = vec![
        (
            "cp-1".to_string(),
            peer_url("10.0.0.11".parse().unwrap_or_else(|e| panic!("{e}"))),
        ),
        ("cp-3".to_string(), "https://10.0.0.13:2380".to_string()),
    ];
    let args = etcd_args(&s, "cp-3", &Initial::Existing { members }, &paths());
    let at = |flag: &str| {
        let i = args.iter().position(|a| a == flag);
        i.and_then(|i| args.get(i + 1)).cloned()
    };
    assert_eq!(
        at("--initial-cluster").as_deref(),
        Some("cp-1=https://10.0.0.11:2380,cp-3=https://10.0.0.13:2380")
    );
    assert_eq!(at("--initial-cluster-state").as_deref(), Some("existing"));
    assert_eq!(at("--name").as_deref(), Some("cp-3"));

    let args = etcd_args(&s, "cp-3", &Initial::Restored, &paths());
    let at = |flag: &str| {
        let i = args.iter().position(|a| a == flag);
        i.and_then(|i| args.get(i + 1)).cloned()
    };
    assert_eq!(
        at("--initial-cluster").as_deref(),
        Some("cp-3=https://10.0.0.13:2380")
    );
    assert_eq!(at("--initial-cluster-state").as_deref(), Some("new"));
}

#[test]
fn ipv6_addresses_are_bracketed_and_paths_followed() {
    let s = settings("fd00::11", None);
    let p = Paths {
        data_dir: PathBuf::from("/data/etcd"),
        pki_dir: PathBuf::from("/pki"),
        backup_dir: PathBuf::from("/backup"),
    };
    let args = etcd_args(&s, "cp-1", &Initial::Restored, &p);
    let joined = args.join(" ");
    for want in [
        "--listen-peer-urls https://[fd00::11]:2380 ",
        "--listen-client-urls https://[fd00::11]:2379,https://127.0.0.1:2379 ",
        "--advertise-client-urls https://[fd00::11]:2379 ",
        "--data-dir /data/etcd ",
        "--trusted-ca-file /pki/etcd/ca.crt ",
        "--peer-key-file /pki/etcd/peer.key ",
    ] {
        assert!(joined.contains(want), "{want:?} not in {joined}");
    }
    assert_eq!(
        client_url("fd00::1".parse().unwrap_or_else(|e| panic!("{e}"))),
        "https://[fd00::1]:2379"
    );
}

#[test]
fn loopback_address_is_listened_on_once() {
    let s = settings("127.0.0.1", None);
    let args = etcd_args(&s, "cp-1", &Initial::Restored, &paths());
    let i = args.iter().position(|a| a == "--listen-client-urls");
    assert_eq!(
        i.and_then(|i| args.get(i + 1)).map(String::as_str),
        Some("https://127.0.0.1:2379")
    );
}

#[test]
fn restore_command_line() {
    let s = settings("10.0.0.11", None);
    let got = restore_args(
        Path::new("/var/lib/kiln/etcd-backup/etcd-20250102T030405Z.db"),
        &s,
        "cp-1",
        &paths(),
    );
    let want = argv(
        "/usr/bin/etcdutl snapshot restore /var/lib/kiln/etcd-backup/etcd-20250102T030405Z.db \
         --name cp-1 --initial-cluster cp-1=https://10.0.0.11:2380 \
         --initial-advertise-peer-urls https://10.0.0.11:2380 \
         --initial-cluster-token dev --data-dir /var/lib/etcd",
    );
    assert_eq!(got, want);
}

#[test]
fn data_exists_looks_for_snap_or_wal() {
    let dir = TempDir::new("etcd-data");
    let p = Paths {
        data_dir: dir.path().join("etcd"),
        ..Paths::default()
    };
    assert!(!data_exists(&p));
    std::fs::create_dir_all(p.data_dir.join("member")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!data_exists(&p), "an empty member dir is no data");
    for sub in ["member/wal", "member/snap"] {
        let d = dir.path().join(format!("etcd-{}", sub.replace('/', "-")));
        let p = Paths {
            data_dir: d.clone(),
            ..Paths::default()
        };
        std::fs::create_dir_all(d.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        assert!(data_exists(&p), "{sub}");
    }
}
