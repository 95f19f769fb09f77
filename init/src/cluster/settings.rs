//! `kiln: cluster:` (YAML) / `[kiln.cluster]` (kiln.toml): what a node needs to form or
//! join a cluster, as written by `kiln cluster gen`. Checked when deserialized (values and
//! how they fit together), so a bad block is a broken config with its line and column.
//!
//! Secrets travel inline as PEM: a control plane carries the CA keys (it issues etcd
//! certificates and kubeadm issues the rest), a worker only the cluster CA certificate and
//! the bootstrap token.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::{AbsPath, Cidr, Hostname};

/// The name every node uses for the API servers (kubeadm `controlPlaneEndpoint`).
pub const API_ENDPOINT_NAME: &str = "apiserver.cluster.local";
pub const API_PORT: u16 = 6443;
/// 100 years, kubeadm's `certificateValidityPeriod` / `caCertificateValidityPeriod`.
pub const DEFAULT_VALIDITY_HOURS: u32 = 876_000;
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
/// kubeadm's default is 10.96.0.0/12, which holds lvscare's VIP 10.103.97.2 (a Service
/// could be handed the VIP as its ClusterIP); a /16 (65 536 Services) keeps it out.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";

/// `kiln: cluster:` as written and validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Shape", into = "Shape")]
pub struct ClusterSettings(Shape);

impl std::ops::Deref for ClusterSettings {
    type Target = Shape;
    fn deref(&self) -> &Shape {
        &self.0
    }
}

fn default_pod_cidr() -> Cidr {
    Cidr::try_from(DEFAULT_POD_CIDR.to_string()).unwrap_or(Cidr {
        addr: IpAddr::from([10, 244, 0, 0]),
        prefix: 16,
    })
}
fn default_service_cidr() -> Cidr {
    Cidr::try_from(DEFAULT_SERVICE_CIDR.to_string()).unwrap_or(Cidr {
        addr: IpAddr::from([10, 96, 0, 0]),
        prefix: 16,
    })
}
fn default_validity() -> u32 {
    DEFAULT_VALIDITY_HOURS
}

/// The fields of `kiln: cluster:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// Cluster name (a DNS label): kubeadm `clusterName`, etcd `initial-cluster-token`.
    pub name: Hostname,
    /// This node's address on the cluster network: etcd peer/client URLs, kubelet
    /// `node-ip`, API server `advertiseAddress`.
    pub address: IpAddr,
    /// The control planes the cluster was created with (etcd's initial cluster, the load
    /// balancer's real servers). A control plane not in this list joins an existing
    /// cluster (etcd member-add, `kubeadm join --control-plane`).
    pub control_planes: Vec<Member>,
    /// Kubernetes version for kubeadm (`v1.34.2`); absent: the image's kubeadm default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<KubeVersion>,
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: Cidr,
    #[serde(default = "default_service_cidr")]
    pub service_cidr: Cidr,
    /// The cluster's load-balancer VIP (workers reach the API servers through it): kept
    /// out of kube-proxy's IPVS table on every node, in the API server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<IpAddr>,
    /// Validity of the leaf certificates init and kubeadm issue, in hours (100 years).
    #[serde(default = "default_validity")]
    pub cert_validity_hours: u32,
    pub bootstrap_token: BootstrapToken,
    /// Encrypts the control-plane certificates kubeadm shares (`--certificate-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<CertificateKey>,
    /// Cluster CA: certificate on every node, key on control planes.
    pub ca: CertAndKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_ca: Option<CertAndKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_proxy_ca: Option<CertAndKey>,
    /// Service-account signing key pair (`sa.key`, `sa.pub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<KeyPair>,
    #[serde(default)]
    pub etcd: EtcdSettings,
}

/// One initial control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: Hostname,
    pub address: IpAddr,
}

/// A certificate and, where this node needs it, its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertAndKey {
    pub cert: Pem,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Pem>,
}

/// A key pair (PEM): PKCS#8 private key and SubjectPublicKeyInfo public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPair {
    pub private: Pem,
    pub public: Pem,
}

fn default_snapshot_interval() -> u64 {
    3600
}
fn default_snapshot_keep() -> u32 {
    24
}

/// etcd on control planes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// Seconds between periodic snapshots to /var/lib/kiln/etcd-backup; 0 turns them off.
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval_s: u64,
    /// Snapshots kept (oldest removed first).
    #[serde(default = "default_snapshot_keep")]
    pub snapshot_keep: u32,
    /// On a node without etcd data: restore this snapshot and start a new one-member
    /// cluster from it (disaster recovery); ignored once data exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<AbsPath>,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            snapshot_interval_s: default_snapshot_interval(),
            snapshot_keep: default_snapshot_keep(),
            restore_from: None,
        }
    }
}

/// Why a cluster block was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid bootstrap token {0:?}: expected [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    Token(String),
    #[error("invalid certificate key: expected 64 hex digits")]
    CertificateKey,
    #[error("invalid Kubernetes version {0:?}: expected v<major>.<minor>.<patch>")]
    Version(String),
    #[error("invalid PEM for {0}: expected one -----BEGIN …----- block")]
    Pem(String),
    #[error("no control planes listed")]
    NoControlPlanes,
    #[error("control plane {0} is listed twice")]
    DuplicateName(String),
    #[error("address {0} is listed twice")]
    DuplicateAddress(IpAddr),
    #[error("pod CIDR {0} overlaps service CIDR {1}")]
    Overlap(Cidr, Cidr),
    #[error("VIP {0} lies in the {1} CIDR {2}")]
    VipInCidr(IpAddr, &'static str, Cidr),
    #[error("cert_validity_hours must be at least 1")]
    Validity,
}

impl TryFrom<Shape> for ClusterSettings {
    type Error = ClusterError;
    fn try_from(s: Shape) -> Result<Self, ClusterError> {
        if s.control_planes.is_empty() {
            return Err(ClusterError::NoControlPlanes);
        }
        for (i, m) in s.control_planes.iter().enumerate() {
            let earlier = &s.control_planes[..i];
            if earlier.iter().any(|e| e.name == m.name) {
                return Err(ClusterError::DuplicateName(m.name.to_string()));
            }
            if earlier.iter().any(|e| e.address == m.address) {
                return Err(ClusterError::DuplicateAddress(m.address));
            }
        }
        if overlaps(&s.pod_cidr, &s.service_cidr) {
            return Err(ClusterError::Overlap(s.pod_cidr, s.service_cidr));
        }
        if let Some(vip) = s.vip {
            for (which, cidr) in [("pod", &s.pod_cidr), ("service", &s.service_cidr)] {
                if cidr.contains(vip) {
                    return Err(ClusterError::VipInCidr(vip, which, *cidr));
                }
            }
        }
        if s.cert_validity_hours == 0 {
            return Err(ClusterError::Validity);
        }
        Ok(Self(s))
    }
}

impl From<ClusterSettings> for Shape {
    fn from(c: ClusterSettings) -> Shape {
        c.0
    }
}

impl ClusterSettings {
    /// Whether this node is one of the initial control planes (its address is listed).
    pub fn initial_member(&self) -> Option<&Member> {
        self.control_planes
            .iter()
            .find(|m| m.address == self.address)
    }

    /// `apiserver.cluster.local:6443`.
    pub fn endpoint(&self) -> String {
        format!("{API_ENDPOINT_NAME}:{API_PORT}")
    }
}

/// Whether two networks share an address.
pub fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    if a.addr.is_ipv4() != b.addr.is_ipv4() {
        return false;
    }
    let wider = if a.prefix <= b.prefix { a } else { b };
    let other = if a.prefix <= b.prefix { b } else { a };
    wider.contains(other.addr)
}

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = ClusterError;
            fn try_from(s: String) -> Result<Self, ClusterError> {
                let check: fn(&str) -> Result<(), ClusterError> = $check;
                check(&s).map(|()| Self(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

checked_string!(
    /// kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
    BootstrapToken,
    |s| {
        let ok = |p: &str, n: usize| {
            p.len() == n
                && p
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        match s.split_once('.') {
            Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(()),
            _ => Err(ClusterError::Token(s.to_string())),
        }
    }
);

checked_string!(
    /// kubeadm certificate key: 32 bytes as 64 hex digits.
    CertificateKey,
    |s| {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(ClusterError::CertificateKey)
        }
    }
);

checked_string!(
    /// `v1.34.2` (pre-release suffixes such as `-rc.1` allowed).
    KubeVersion,
    |s| {
        let core = s
            .strip_prefix('v')
            .map(|r| r.split_once('-').map_or(r, |(c, _)| c));
        let parts: Vec<&str> = core.map(|c| c.split('.').collect()).unwrap_or_default();
        let numeric =
            |p: &&str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if parts.len() == 3 && parts.iter().all(numeric) {
            Ok(())
        } else {
            Err(ClusterError::Version(s.to_string()))
        }
    }
);

checked_string!(
    /// One PEM block (certificate or key), text as written.
    Pem,
    |s| {
        let t = s.trim();
        let label = t
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.split_once("-----"))
            .map(|(l, _)| l);
        match label {
            Some(l) if t.ends_with(&format!("-----END {l}-----")) => Ok(()),
            _ => Err(ClusterError::Pem(
                t.lines().next().unwrap_or("empty").chars().take(40).collect(),
            )),
        }
    }
);

// Secrets never reach logs or panics through Debug.
impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.0.split('.').next().unwrap_or("");
        write!(f, "BootstrapToken({id}.…)")
    }
}
impl fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateKey(…)")
    }
}
impl fmt::Debug for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KubeVersion({})", self.0)
    }
}
impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.0.trim().lines().next().unwrap_or("");
        write!(f, "Pem({first} …)")
    }
}
impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn yaml(extra: &str) -> String {
        format!(
            "name: dev\naddress: 10.0.0.11\ncontrol_planes:\n- {{name: cp-1, address: 10.0.0.11}}\n\
             - {{name: cp-2, address: 10.0.0.12}}\nbootstrap_token: abcdef.0123456789abcdef\n\
             ca:\n  cert: {CERT:?}\n{extra}"
        )
    }

    fn parse(text: &str) -> Result<ClusterSettings, String> {
        serde_saphyr::from_str::<ClusterSettings>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_block_gets_defaults() {
        let c = parse(&yaml("")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.pod_cidr.to_string(), DEFAULT_POD_CIDR);
        assert_eq!(c.service_cidr.to_string(), DEFAULT_SERVICE_CIDR);
        assert_eq!(c.cert_validity_hours, 876_000);
        assert_eq!(c.etcd.snapshot_interval_s, 3600);
        assert_eq!(c.initial_member().map(|m| m.name.as_str()), Some("cp-1"));
        assert_eq!(c.endpoint(), "apiserver.cluster.local:6443");
        assert!(c.certificate_key.is_none());
    }

    #[test]
    fn bad_blocks_are_refused_with_the_cause() {
        let cases = [
            (yaml("").replace("abcdef.", "ABCDEF."), "bootstrap token"),
            (yaml("certificate_key: abc\n"), "certificate key"),
            (yaml("kubernetes_version: 1.34\n"), "Kubernetes version"),
            (yaml("").replace("cp-2", "cp-1"), "listed twice"),
            (yaml("").replace("10.0.0.12", "10.0.0.11"), "listed twice"),
            (yaml("pod_cidr: 10.96.0.0/16\n"), "overlaps service CIDR"),
            (yaml("").replace("-----END", "-----FIN"), "invalid PEM"),
            (
                yaml("vip: 10.103.97.2\nservice_cidr: 10.96.0.0/12\n"),
                "lies in the service CIDR",
            ),
            (yaml("etcd: {snapshot_every: 5}\n"), "snapshot_every"),
        ];
        for (text, want) in cases {
            let Err(err) = parse(&text) else {
                panic!("accepted: {text}")
            };
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }

    #[test]
    fn versions_and_overlaps() {
        for good in ["v1.34.2", "v1.35.0-rc.1"] {
            assert!(KubeVersion::try_from(good.to_string()).is_ok(), "{good}");
        }
        for bad in ["1.34.2", "v1.34", "v1.x.2", ""] {
            assert!(KubeVersion::try_from(bad.to_string()).is_err(), "{bad}");
        }
        let c = |s: &str| Cidr::try_from(s.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert!(overlaps(&c("10.0.0.0/8"), &c("10.96.0.0/12")));
        assert!(overlaps(&c("10.96.0.0/12"), &c("10.0.0.0/8")));
        assert!(!overlaps(&c("10.244.0.0/16"), &c("10.96.0.0/12")));
        assert!(!overlaps(&c("10.0.0.0/8"), &c("fd00::/8")));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = parse(&yaml(
            "certificate_key: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
        assert!(!dbg.contains("00112233"), "{dbg}");
        assert!(!dbg.contains("MIIB"), "{dbg}");
    }
}
