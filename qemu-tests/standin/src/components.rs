//! The component configs kubeadm passes through: `KubeletConfiguration`
//! (`kubelet.config.k8s.io/v1beta1`) and `KubeProxyConfiguration`
//! (`kubeproxy.config.k8s.io/v1alpha1`). Only a **subset** of each is modelled (the fields
//! below, with their upstream types); any other field is refused as unknown, so a config
//! using a real but unlisted field needs the field added here first.
//!
//! KubeletConfiguration: address, port, readOnlyPort, healthzPort, healthzBindAddress,
//! staticPodPath, syncFrequency, fileCheckFrequency, httpCheckFrequency, authentication
//! {x509 {clientCAFile}, webhook {enabled, cacheTTL}, anonymous {enabled}}, authorization
//! {mode, webhook {cacheAuthorizedTTL, cacheUnauthorizedTTL}}, clusterDomain, clusterDNS,
//! cgroupDriver, cgroupsPerQOS, cgroupRoot, kubeletCgroups, systemCgroups,
//! containerRuntimeEndpoint, imageServiceEndpoint, rotateCertificates, serverTLSBootstrap,
//! tlsCertFile, tlsPrivateKeyFile, tlsMinVersion, tlsCipherSuites, failSwapOn, memorySwap
//! {swapBehavior}, resolvConf, maxPods, podPidsLimit, podCIDR, evictionHard, evictionSoft,
//! evictionSoftGracePeriod, evictionPressureTransitionPeriod, kubeReserved, systemReserved,
//! enforceNodeAllocatable, featureGates, imageGCHighThresholdPercent,
//! imageGCLowThresholdPercent, imageMinimumGCAge, imageMaximumGCAge, serializeImagePulls,
//! maxParallelImagePulls, runtimeRequestTimeout, nodeStatusUpdateFrequency,
//! nodeStatusReportFrequency, streamingConnectionIdleTimeout, shutdownGracePeriod,
//! shutdownGracePeriodCriticalPods, containerLogMaxSize, containerLogMaxFiles,
//! cpuManagerPolicy, cpuManagerReconcilePeriod, memoryManagerPolicy, topologyManagerPolicy,
//! protectKernelDefaults, hairpinMode, volumePluginDir, providerID, registerNode,
//! registerWithTaints, logging {format, verbosity, flushFrequency}.
//!
//! KubeProxyConfiguration: bindAddress, bindAddressHardFail, healthzBindAddress,
//! metricsBindAddress, enableProfiling, clusterCIDR, hostnameOverride, clientConnection
//! {kubeconfig, acceptContentTypes, contentType, qps, burst}, mode (`""`, iptables, ipvs,
//! nftables), iptables and nftables {masqueradeAll, masqueradeBit, localhostNodePorts,
//! syncPeriod, minSyncPeriod}, ipvs {syncPeriod, minSyncPeriod, scheduler, excludeCIDRs,
//! strictARP, tcpTimeout, tcpFinTimeout, udpTimeout}, conntrack {maxPerCore, min,
//! tcpEstablishedTimeout, tcpCloseWaitTimeout, tcpBeLiberal, udpTimeout, udpStreamTimeout},
//! featureGates, nodePortAddresses, oomScoreAdj, detectLocalMode, detectLocal
//! {bridgeInterface, interfaceNamePrefix}, configSyncPeriod, portRange, logging.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::GoDuration;
use super::v1beta4::Taint;

pub const KUBELET_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
pub const PROXY_API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";

type Dur = Option<GoDuration>;
type Map = Option<BTreeMap<String, String>>;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeletConfiguration {
    pub api_version: String,
    pub kind: String,
    pub address: Option<String>,
    pub port: Option<i32>,
    pub read_only_port: Option<i32>,
    pub healthz_port: Option<i32>,
    pub healthz_bind_address: Option<String>,
    pub static_pod_path: Option<String>,
    pub sync_frequency: Dur,
    pub file_check_frequency: Dur,
    pub http_check_frequency: Dur,
    pub authentication: Option<KubeletAuthentication>,
    pub authorization: Option<KubeletAuthorization>,
    pub cluster_domain: Option<String>,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Option<Vec<String>>,
    pub cgroup_driver: Option<CgroupDriver>,
    #[serde(rename = "cgroupsPerQOS")]
    pub cgroups_per_qos: Option<bool>,
    pub cgroup_root: Option<String>,
    pub kubelet_cgroups: Option<String>,
    pub system_cgroups: Option<String>,
    pub container_runtime_endpoint: Option<String>,
    pub image_service_endpoint: Option<String>,
    pub rotate_certificates: Option<bool>,
    #[serde(rename = "serverTLSBootstrap")]
    pub server_tls_bootstrap: Option<bool>,
    pub tls_cert_file: Option<String>,
    pub tls_private_key_file: Option<String>,
    pub tls_min_version: Option<String>,
    pub tls_cipher_suites: Option<Vec<String>>,
    pub fail_swap_on: Option<bool>,
    pub memory_swap: Option<MemorySwap>,
    pub resolv_conf: Option<String>,
    pub max_pods: Option<i32>,
    pub pod_pids_limit: Option<i64>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    pub eviction_hard: Map,
    pub eviction_soft: Map,
    pub eviction_soft_grace_period: Map,
    pub eviction_pressure_transition_period: Dur,
    pub kube_reserved: Map,
    pub system_reserved: Map,
    pub enforce_node_allocatable: Option<Vec<String>>,
    pub feature_gates: Option<BTreeMap<String, bool>>,
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: Option<i32>,
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: Option<i32>,
    #[serde(rename = "imageMinimumGCAge")]
    pub image_minimum_gc_age: Dur,
    #[serde(rename = "imageMaximumGCAge")]
    pub image_maximum_gc_age: Dur,
    pub serialize_image_pulls: Option<bool>,
    pub max_parallel_image_pulls: Option<i32>,
    pub runtime_request_timeout: Dur,
    pub node_status_update_frequency: Dur,
    pub node_status_report_frequency: Dur,
    pub streaming_connection_idle_timeout: Dur,
    pub shutdown_grace_period: Dur,
    pub shutdown_grace_period_critical_pods: Dur,
    pub container_log_max_size: Option<String>,
    pub container_log_max_files: Option<i32>,
    pub cpu_manager_policy: Option<String>,
    pub cpu_manager_reconcile_period: Dur,
    pub memory_manager_policy: Option<String>,
    pub topology_manager_policy: Option<String>,
    pub protect_kernel_defaults: Option<bool>,
    pub hairpin_mode: Option<String>,
    pub volume_plugin_dir: Option<String>,
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    pub register_node: Option<bool>,
    pub register_with_taints: Option<Vec<Taint>>,
    pub logging: Option<Logging>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Systemd,
    Cgroupfs,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeletAuthentication {
    pub x509: Option<X509Authentication>,
    pub webhook: Option<WebhookAuthentication>,
    pub anonymous: Option<Anonymous>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509Authentication {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookAuthentication {
    pub enabled: Option<bool>,
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: Dur,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Anonymous {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeletAuthorization {
    pub mode: Option<AuthorizationMode>,
    pub webhook: Option<WebhookAuthorization>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum AuthorizationMode {
    AlwaysAllow,
    Webhook,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookAuthorization {
    #[serde(rename = "cacheAuthorizedTTL")]
    pub cache_authorized_ttl: Dur,
    #[serde(rename = "cacheUnauthorizedTTL")]
    pub cache_unauthorized_ttl: Dur,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemorySwap {
    pub swap_behavior: Option<String>,
}

/// component-base LoggingConfiguration (subset). `flushFrequency` takes a duration string
/// or integer nanoseconds, as upstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logging {
    pub format: Option<String>,
    pub verbosity: Option<u32>,
    pub flush_frequency: Option<DurationOrNanos>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DurationOrNanos {
    Nanos(i64),
    Text(GoDuration),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeProxyConfiguration {
    pub api_version: String,
    pub kind: String,
    pub bind_address: Option<String>,
    pub bind_address_hard_fail: Option<bool>,
    pub healthz_bind_address: Option<String>,
    pub metrics_bind_address: Option<String>,
    pub enable_profiling: Option<bool>,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: Option<String>,
    pub hostname_override: Option<String>,
    pub client_connection: Option<ClientConnection>,
    pub mode: Option<ProxyMode>,
    pub iptables: Option<ProxyIptables>,
    pub nftables: Option<ProxyIptables>,
    pub ipvs: Option<ProxyIpvs>,
    pub conntrack: Option<ProxyConntrack>,
    pub feature_gates: Option<BTreeMap<String, bool>>,
    pub node_port_addresses: Option<Vec<String>>,
    pub oom_score_adj: Option<i32>,
    pub detect_local_mode: Option<String>,
    pub detect_local: Option<DetectLocal>,
    pub config_sync_period: Dur,
    pub port_range: Option<String>,
    pub logging: Option<Logging>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    #[serde(rename = "")]
    Default,
    Iptables,
    Ipvs,
    Nftables,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConnection {
    pub kubeconfig: Option<String>,
    pub accept_content_types: Option<String>,
    pub content_type: Option<String>,
    pub qps: Option<f32>,
    pub burst: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyIptables {
    pub masquerade_all: Option<bool>,
    pub masquerade_bit: Option<i32>,
    pub localhost_node_ports: Option<bool>,
    pub sync_period: Dur,
    pub min_sync_period: Dur,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyIpvs {
    pub sync_period: Dur,
    pub min_sync_period: Dur,
    pub scheduler: Option<String>,
    #[serde(rename = "excludeCIDRs")]
    pub exclude_cidrs: Option<Vec<String>>,
    #[serde(rename = "strictARP")]
    pub strict_arp: Option<bool>,
    pub tcp_timeout: Dur,
    pub tcp_fin_timeout: Dur,
    pub udp_timeout: Dur,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConntrack {
    pub max_per_core: Option<i32>,
    pub min: Option<i32>,
    pub tcp_established_timeout: Dur,
    pub tcp_close_wait_timeout: Dur,
    pub tcp_be_liberal: Option<bool>,
    pub udp_timeout: Dur,
    pub udp_stream_timeout: Dur,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectLocal {
    pub bridge_interface: Option<String>,
    pub interface_name_prefix: Option<String>,
}
