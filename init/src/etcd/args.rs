//! etcd's command line (all flags, no config file, so `ps` shows the whole truth) and
//! the `etcdutl snapshot restore` command line for disaster recovery.
//!
//! Pure functions of the cluster settings and paths; nothing here reads the disk except
//! `data_exists`.

use std::net::IpAddr;
use std::path::Path;

use super::{Paths, CLIENT_PORT, METRICS_URL, PEER_PORT};
use crate::cluster::ClusterSettings;

pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// Debian's `etcd-client` package ships it next to etcdctl.
pub const ETCDUTL_BIN: &str = "/usr/bin/etcdutl";

/// How this member meets its cluster on first start (ignored by etcd once its data
/// directory holds a member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initial {
    /// Bootstrap a new cluster with these `(name, peer URL)` members (this node among
    /// them): `--initial-cluster-state new`.
    New { members: Vec<(String, String)> },
    /// Join a cluster this node was just added to (member add): every member's
    /// `(name, peer URL)`, this node included: `--initial-cluster-state existing`.
    Existing { members: Vec<(String, String)> },
    /// The data directory was made by `etcdutl snapshot restore` (see `restore_args`): a
    /// new one-member cluster of this node.
    Restored,
}

/// `https://10.0.0.11:2380`, `https://[fd00::11]:2380`.
pub fn peer_url(ip: IpAddr) -> String {
    https(ip, PEER_PORT)
}

/// `https://10.0.0.11:2379`.
pub fn client_url(ip: IpAddr) -> String {
    https(ip, CLIENT_PORT)
}

fn https(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}:{port}"),
        IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
    }
}

/// The initial control planes as `(name, peer URL)`, for `Initial::New`.
pub fn initial_members(settings: &ClusterSettings) -> Vec<(String, String)> {
    settings
        .control_planes
        .iter()
        .map(|m| (m.name.to_string(), peer_url(m.address)))
        .collect()
}

fn join_members(members: &[(String, String)]) -> String {
    let parts: Vec<String> = members.iter().map(|(n, u)| format!("{n}={u}")).collect();
    parts.join(",")
}

/// The whole etcd command line, program first. The HTTP/JSON gateway our `Client` uses
/// is on by default (`--enable-grpc-gateway`), on the client URLs.
pub fn etcd_args(
    settings: &ClusterSettings,
    node_name: &str,
    initial: &Initial,
    paths: &Paths,
) -> Vec<String> {
    let addr = settings.address;
    let peer = peer_url(addr);
    let client = client_url(addr);
    let loopback = client_url(IpAddr::from([127, 0, 0, 1]));
    // etcd refuses to listen twice on one address.
    let listen_client = if client == loopback {
        client.clone()
    } else {
        format!("{client},{loopback}")
    };
    let (cluster, state) = match initial {
        Initial::New { members } => (join_members(members), "new"),
        Initial::Existing { members } => (join_members(members), "existing"),
        Initial::Restored => (format!("{node_name}={peer}"), "new"),
    };
    let etcd_dir = paths.pki_dir.join("etcd");
    let file = |name: &str| etcd_dir.join(name).display().to_string();
    let pairs: [(&str, String); 19] = [
        ("--name", node_name.to_string()),
        ("--data-dir", paths.data_dir.display().to_string()),
        ("--listen-peer-urls", peer.clone()),
        ("--listen-client-urls", listen_client),
        ("--advertise-client-urls", client),
        ("--initial-advertise-peer-urls", peer),
        ("--initial-cluster", cluster),
        ("--initial-cluster-state", state.to_string()),
        ("--initial-cluster-token", settings.name.to_string()),
        ("--client-cert-auth", String::new()),
        ("--trusted-ca-file", file("ca.crt")),
        ("--cert-file", file("server.crt")),
        ("--key-file", file("server.key")),
        ("--peer-client-cert-auth", String::new()),
        ("--peer-trusted-ca-file", file("ca.crt")),
        ("--peer-cert-file", file("peer.crt")),
        ("--peer-key-file", file("peer.key")),
        ("--snapshot-count", "10000".to_string()),
        ("--listen-metrics-urls", METRICS_URL.to_string()),
    ];
    let mut argv = vec![ETCD_BIN.to_string()];
    for (flag, value) in pairs {
        argv.push(flag.to_string());
        if !value.is_empty() {
            argv.push(value);
        }
    }
    argv
}

/// Whether `paths.data_dir` already holds a member (etcd would ignore `--initial-*`).
pub fn data_exists(paths: &Paths) -> bool {
    let member = paths.data_dir.join("member");
    member.join("snap").exists() || member.join("wal").exists()
}

/// `etcdutl snapshot restore` into `paths.data_dir` (which must be missing or empty:
/// etcdutl refuses otherwise) as a new one-member cluster of this node; start etcd with
/// `Initial::Restored` afterwards. The snapshot's trailing sha256 is checked by etcdutl.
pub fn restore_args(
    snapshot: &Path,
    settings: &ClusterSettings,
    node_name: &str,
    paths: &Paths,
) -> Vec<String> {
    let peer = peer_url(settings.address);
    [
        ETCDUTL_BIN,
        "snapshot",
        "restore",
        &snapshot.display().to_string(),
        "--name",
        node_name,
        "--initial-cluster",
        &format!("{node_name}={peer}"),
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster-token",
        settings.name.as_str(),
        "--data-dir",
        &paths.data_dir.display().to_string(),
    ]
    .map(str::to_string)
    .to_vec()
}
