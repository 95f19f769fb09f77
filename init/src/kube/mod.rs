//! kubeadm and kubelet on a node without systemd: the kubeadm configuration (v1beta4) and
//! argv for `kubeadm init`/`join`, the cluster PKI kubeadm expects to find pre-placed,
//! the kubelet argv that systemd's `10-kubeadm.conf` drop-in would otherwise build, and
//! the `/etc/hosts` entry for the API endpoint name.
//!
//! Pure functions and file placement only: running kubeadm, supervising kubelet and
//! writing /etc/hosts belong to the cluster steps that call this module.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::cluster::settings::{ClusterSettings, API_ENDPOINT_NAME};

mod args;
mod config;
mod envfile;
mod place;
mod yaml;

pub use args::{kubeadm_args, kubelet_args, KUBEADM, KUBELET};
pub use config::kubeadm_config;
pub use envfile::{parse_env, split_words, EnvError, EnvErrorKind};
pub use place::place_pki;

/// Where kubeadm keeps the cluster PKI.
pub const PKI_DIR: &str = "etc/kubernetes/pki";
/// kubeadm writes it in the kubelet-start phase; kubelet cannot start before it exists.
pub const KUBELET_CONFIG: &str = "var/lib/kubelet/config.yaml";
/// `KUBELET_KUBEADM_ARGS`, written by kubeadm next to the kubelet config.
pub const KUBEADM_FLAGS_ENV: &str = "var/lib/kubelet/kubeadm-flags.env";
/// `KUBELET_EXTRA_ARGS`, the operator's own kubelet flags (optional).
pub const KUBELET_DEFAULTS: &str = "etc/default/kubelet";

/// What `kubeadm` does on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// First control plane: `kubeadm init`.
    Init,
    /// Further control plane: `kubeadm join` with a `controlPlane` section.
    JoinControlPlane,
    /// `kubeadm join` as a worker.
    JoinWorker,
}

/// Facts about this node that are not in the cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node name (kubelet, Node object, certificate CN).
    pub name: String,
    /// The load balancer VIP, kept out of kube-proxy's IPVS table and in the API SANs.
    pub vip: Option<IpAddr>,
    /// CRI endpoint, `unix:///run/containerd/containerd.sock`.
    pub cri_socket: String,
    /// `sha256:<hex>` of the cluster CA's SubjectPublicKeyInfo
    /// (`crate::pki::ca_cert_hash`); joins pin the CA with it, init ignores it.
    pub ca_cert_hash: String,
}

/// Why kubeadm or kubelet input could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// kubeadm has not written the kubelet configuration yet: wait, then ask again.
    #[error("/{KUBELET_CONFIG} does not exist yet (kubeadm has not configured the kubelet)")]
    NotConfigured,
    #[error("read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists with other content than the cluster settings; remove it to replace it", .0.display())]
    Conflict(PathBuf),
    #[error("parse {}", .path.display())]
    Env {
        path: PathBuf,
        #[source]
        source: EnvError,
    },
}

/// The address `apiserver.cluster.local` resolves to once this node is part of the
/// cluster: a control plane talks to its own API server, a worker to the load
/// balancer's VIP when it runs one, otherwise to the first control plane.
pub fn hosts_entry(
    settings: &ClusterSettings,
    role_is_control_plane: bool,
    vip: Option<IpAddr>,
) -> (IpAddr, &'static str) {
    let addr = match (role_is_control_plane, vip) {
        (true, _) => settings.address,
        (false, Some(vip)) => vip,
        (false, None) => first_control_plane(settings, None),
    };
    (addr, API_ENDPOINT_NAME)
}

/// The address `apiserver.cluster.local` must resolve to while a control plane runs
/// `kubeadm join`: its own API server does not exist yet, and kubeadm reaches the
/// cluster through that name (discovery, then the cluster-info kubeconfig), so it points
/// at the first listed control plane other than this node. Switch to [`hosts_entry`]
/// once the join succeeded.
pub fn hosts_entry_while_joining(settings: &ClusterSettings) -> (IpAddr, &'static str) {
    (
        first_control_plane(settings, Some(settings.address)),
        API_ENDPOINT_NAME,
    )
}

/// The first listed control plane other than `except` (the first one if none other).
fn first_control_plane(settings: &ClusterSettings, except: Option<IpAddr>) -> IpAddr {
    let others = settings
        .control_planes
        .iter()
        .find(|m| Some(m.address) != except);
    others
        .or(settings.control_planes.first())
        .map_or(settings.address, |m| m.address)
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_entry_picks_own_address_vip_or_first_control_plane() {
        let cp = fixtures::settings("10.0.0.12");
        let worker = fixtures::settings("10.0.0.21");
        let vip: IpAddr = [10, 0, 0, 100].into();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            (&cp, true, Some(vip), "10.0.0.12"),
            (&cp, true, None, "10.0.0.12"),
            (&worker, false, Some(vip), "10.0.0.100"),
            (&worker, false, None, "10.0.0.11"),
        ];
        for (settings, is_cp, vip, want) in cases {
            let got = hosts_entry(settings, is_cp, vip);
            assert_eq!(
                got,
                (ip(want), "apiserver.cluster.local"),
                "{is_cp} {vip:?}"
            );
        }
    }

    #[test]
    fn a_joining_control_plane_points_at_another_one() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hosts_entry_while_joining(&fixtures::settings("10.0.0.12")).0,
            ip("10.0.0.11")
        );
        assert_eq!(
            hosts_entry_while_joining(&fixtures::settings("10.0.0.11")).0,
            ip("10.0.0.12")
        );
        // A control plane added later (not listed) joins through the first one.
        assert_eq!(
            hosts_entry_while_joining(&fixtures::settings("10.0.0.14")).0,
            ip("10.0.0.11")
        );
    }
}
