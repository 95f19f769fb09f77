//! Test-only mirror of the fields kiln writes, with the JSON tags of the upstream types
//! (kubeadm v1beta4, kubelet.config.k8s.io/v1beta1, kubeproxy.config.k8s.io/v1alpha1)
//! and `deny_unknown_fields`: a misspelt or misplaced key does not read back.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(tag = "kind")]
pub(super) enum Doc {
    #[serde(rename = "InitConfiguration")]
    Init(Init),
    #[serde(rename = "ClusterConfiguration")]
    Cluster(Box<Cluster>),
    #[serde(rename = "KubeletConfiguration")]
    Kubelet(Kubelet),
    #[serde(rename = "KubeProxyConfiguration")]
    KubeProxy(Proxy),
    #[serde(rename = "JoinConfiguration")]
    Join(Join),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Init {
    pub(super) api_version: String,
    pub(super) bootstrap_tokens: Vec<Token>,
    pub(super) node_registration: NodeReg,
    #[serde(rename = "localAPIEndpoint")]
    pub(super) local_api_endpoint: Endpoint,
    pub(super) certificate_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Token {
    pub(super) token: String,
    pub(super) description: String,
    pub(super) ttl: String,
    pub(super) usages: Vec<String>,
    pub(super) groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct NodeReg {
    pub(super) name: String,
    pub(super) cri_socket: String,
    pub(super) kubelet_extra_args: Vec<Arg>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct Arg {
    pub(super) name: String,
    pub(super) value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Endpoint {
    pub(super) advertise_address: String,
    pub(super) bind_port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Cluster {
    pub(super) api_version: String,
    pub(super) cluster_name: String,
    pub(super) kubernetes_version: Option<String>,
    pub(super) control_plane_endpoint: String,
    pub(super) networking: Networking,
    pub(super) etcd: Etcd,
    pub(super) api_server: ApiServer,
    pub(super) controller_manager: Component,
    pub(super) certificate_validity_period: String,
    pub(super) ca_certificate_validity_period: String,
    pub(super) encryption_algorithm: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Networking {
    pub(super) pod_subnet: String,
    pub(super) service_subnet: String,
    pub(super) dns_domain: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Etcd {
    pub(super) external: External,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct External {
    pub(super) endpoints: Vec<String>,
    pub(super) ca_file: String,
    pub(super) cert_file: String,
    pub(super) key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiServer {
    #[serde(rename = "certSANs")]
    pub(super) cert_sans: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Component {
    pub(super) extra_args: Vec<Arg>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Kubelet {
    pub(super) api_version: String,
    pub(super) cgroup_driver: String,
    pub(super) container_runtime_endpoint: String,
    pub(super) rotate_certificates: bool,
    #[serde(rename = "serverTLSBootstrap")]
    pub(super) server_tls_bootstrap: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Proxy {
    pub(super) api_version: String,
    pub(super) mode: String,
    #[serde(rename = "clusterCIDR")]
    pub(super) cluster_cidr: String,
    pub(super) ipvs: Option<Ipvs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ipvs {
    #[serde(rename = "excludeCIDRs")]
    pub(super) exclude_cidrs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Join {
    pub(super) api_version: String,
    pub(super) node_registration: NodeReg,
    pub(super) discovery: Discovery,
    pub(super) control_plane: Option<JoinControlPlane>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Discovery {
    pub(super) bootstrap_token: TokenDiscovery,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct TokenDiscovery {
    pub(super) api_server_endpoint: String,
    pub(super) token: String,
    pub(super) ca_cert_hashes: Vec<String>,
    #[serde(rename = "unsafeSkipCAVerification")]
    pub(super) unsafe_skip_ca_verification: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    pub(super) local_api_endpoint: Endpoint,
    pub(super) certificate_key: Option<String>,
}
