//! The kubeadm configuration file (kubeadm.k8s.io/v1beta4) for `kubeadm init` and
//! `kubeadm join`, with the kubelet and kube-proxy component configs on init (kubeadm
//! uploads them to the cluster; joining nodes download them).
//!
//! Choices that are not kubeadm defaults:
//! - The bootstrap token never expires (`ttl: 0s`): it is the token `kiln cluster add`
//!   hands to nodes that join months later. kubeadm only writes an expiration into the
//!   token Secret for a TTL above zero.
//! - etcd is external (init runs it outside kubeadm); kubeadm only reads the client files.
//! - A joining control plane gets `certificateKey` only when its settings lack the
//!   shared keys: with them pre-placed kubeadm needs nothing from the `kubeadm-certs`
//!   Secret, which init's upload deletes after two hours, so a key there would make every
//!   later control-plane join fail on the missing Secret.

use std::net::IpAddr;

use super::place::carries_shared_pki;
use super::yaml::{documents, list, map, s, Node};
use super::{NodeFacts, Plan};
use crate::cluster::settings::{ClusterSettings, API_ENDPOINT_NAME, API_PORT};

const KUBEADM_API: &str = "kubeadm.k8s.io/v1beta4";
const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_CA_FILE: &str = "/etc/kubernetes/pki/etcd/ca.crt";
const ETCD_CERT_FILE: &str = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
const ETCD_KEY_FILE: &str = "/etc/kubernetes/pki/apiserver-etcd-client.key";
/// Groups and usages kubeadm gives its default node token.
const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// The multi-document YAML kubeadm reads with `--config`, byte-for-byte stable.
pub fn kubeadm_config(settings: &ClusterSettings, node: &NodeFacts, plan: Plan) -> String {
    match plan {
        Plan::Init => documents(&[
            init_configuration(settings, node),
            cluster_configuration(settings, node),
            kubelet_configuration(node),
            kube_proxy_configuration(settings, node),
        ]),
        Plan::JoinControlPlane => documents(&[join_configuration(settings, node, true)]),
        Plan::JoinWorker => documents(&[join_configuration(settings, node, false)]),
    }
}

fn header(api: &'static str, kind: &'static str) -> Vec<(&'static str, Node)> {
    vec![("apiVersion", s(api)), ("kind", s(kind))]
}

fn init_configuration(settings: &ClusterSettings, node: &NodeFacts) -> Node {
    let token = map(vec![
        ("token", s(settings.bootstrap_token.as_str())),
        ("description", s("kiln: joins nodes to the cluster")),
        ("ttl", s("0s")),
        ("usages", list(["signing", "authentication"], s)),
        ("groups", list([TOKEN_GROUP], s)),
    ]);
    let mut doc = header(KUBEADM_API, "InitConfiguration");
    doc.push(("bootstrapTokens", Node::List(vec![token])));
    doc.push(("nodeRegistration", node_registration(settings, node)));
    doc.push(("localAPIEndpoint", local_endpoint(settings)));
    if let Some(key) = &settings.certificate_key {
        doc.push(("certificateKey", s(key.as_str())));
    }
    map(doc)
}

fn cluster_configuration(settings: &ClusterSettings, node: &NodeFacts) -> Node {
    let validity = format!("{}h0m0s", settings.cert_validity_hours);
    let endpoints = settings
        .control_planes
        .iter()
        .map(|m| format!("https://{}", host_port(m.address, ETCD_CLIENT_PORT)));
    let mut doc = header(KUBEADM_API, "ClusterConfiguration");
    doc.push(("clusterName", s(settings.name.as_str())));
    if let Some(version) = &settings.kubernetes_version {
        doc.push(("kubernetesVersion", s(version.as_str())));
    }
    doc.push(("controlPlaneEndpoint", s(settings.endpoint())));
    doc.push((
        "networking",
        map(vec![
            ("podSubnet", s(settings.pod_cidr.to_string())),
            ("serviceSubnet", s(settings.service_cidr.to_string())),
            ("dnsDomain", s("cluster.local")),
        ]),
    ));
    doc.push((
        "etcd",
        map(vec![(
            "external",
            map(vec![
                ("endpoints", list(endpoints, s)),
                ("caFile", s(ETCD_CA_FILE)),
                ("certFile", s(ETCD_CERT_FILE)),
                ("keyFile", s(ETCD_KEY_FILE)),
            ]),
        )]),
    ));
    doc.push((
        "apiServer",
        map(vec![("certSANs", list(cert_sans(settings, node), s))]),
    ));
    doc.push((
        "controllerManager",
        map(vec![(
            "extraArgs",
            Node::List(vec![arg(
                "cluster-signing-duration",
                &format!("{}h", settings.cert_validity_hours),
            )]),
        )]),
    ));
    doc.push(("certificateValidityPeriod", s(validity.clone())));
    doc.push(("caCertificateValidityPeriod", s(validity)));
    // The CAs `kiln cluster gen` writes are ECDSA P-256; kubeadm's own keys match them.
    doc.push(("encryptionAlgorithm", s("ECDSA-P256")));
    map(doc)
}

fn kubelet_configuration(node: &NodeFacts) -> Node {
    let mut doc = header("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration");
    // No systemd on the node: the kubelet and containerd manage cgroupfs directly.
    doc.push(("cgroupDriver", s("cgroupfs")));
    doc.push(("containerRuntimeEndpoint", s(node.cri_socket.as_str())));
    doc.push(("rotateCertificates", Node::Bool(true)));
    doc.push(("serverTLSBootstrap", Node::Bool(false)));
    map(doc)
}

fn kube_proxy_configuration(settings: &ClusterSettings, node: &NodeFacts) -> Node {
    let mut doc = header("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration");
    doc.push(("mode", s("ipvs")));
    doc.push(("clusterCIDR", s(settings.pod_cidr.to_string())));
    // kube-proxy deletes IPVS services it does not own unless excluded: the VIP's are
    // the load balancer's.
    if let Some(vip) = node.vip {
        let host = if vip.is_ipv4() { 32 } else { 128 };
        doc.push((
            "ipvs",
            map(vec![("excludeCIDRs", list([format!("{vip}/{host}")], s))]),
        ));
    }
    map(doc)
}

fn join_configuration(settings: &ClusterSettings, node: &NodeFacts, control_plane: bool) -> Node {
    let mut token = vec![
        ("apiServerEndpoint", s(settings.endpoint())),
        ("token", s(settings.bootstrap_token.as_str())),
    ];
    if !node.ca_cert_hash.is_empty() {
        token.push(("caCertHashes", list([node.ca_cert_hash.as_str()], s)));
    }
    token.push(("unsafeSkipCAVerification", Node::Bool(false)));
    let mut doc = header(KUBEADM_API, "JoinConfiguration");
    doc.push(("nodeRegistration", node_registration(settings, node)));
    doc.push(("discovery", map(vec![("bootstrapToken", map(token))])));
    if control_plane {
        let mut cp = vec![("localAPIEndpoint", local_endpoint(settings))];
        if let Some(key) = settings.certificate_key.as_ref() {
            if !carries_shared_pki(settings) {
                cp.push(("certificateKey", s(key.as_str())));
            }
        }
        doc.push(("controlPlane", map(cp)));
    }
    map(doc)
}

fn node_registration(settings: &ClusterSettings, node: &NodeFacts) -> Node {
    map(vec![
        ("name", s(node.name.as_str())),
        ("criSocket", s(node.cri_socket.as_str())),
        (
            "kubeletExtraArgs",
            Node::List(vec![arg("node-ip", &settings.address.to_string())]),
        ),
    ])
}

fn local_endpoint(settings: &ClusterSettings) -> Node {
    map(vec![
        ("advertiseAddress", s(settings.address.to_string())),
        ("bindPort", Node::Int(i64::from(API_PORT))),
    ])
}

/// v1beta4 `extraArgs` item: a list of name/value pairs, not a map.
fn arg(name: &str, value: &str) -> Node {
    map(vec![("name", s(name)), ("value", s(value))])
}

/// The API server's extra SANs: the endpoint name, loopback, the VIP, every listed
/// control plane and this node, each once, in that order.
fn cert_sans(settings: &ClusterSettings, node: &NodeFacts) -> Vec<String> {
    let mut sans = vec![API_ENDPOINT_NAME.to_string(), "127.0.0.1".to_string()];
    let addrs = node
        .vip
        .into_iter()
        .chain(settings.control_planes.iter().map(|m| m.address))
        .chain([settings.address]);
    for addr in addrs {
        let text = addr.to_string();
        if !sans.contains(&text) {
            sans.push(text);
        }
    }
    sans
}

fn host_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
