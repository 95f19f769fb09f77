//! The files `kubeadm init` and `kubeadm join` leave on a node (API server certificate,
//! marker static Pods, kubeconfigs, kubelet config and flags), the "API objects" a control
//! plane serves to joining nodes (ConfigMaps as JSON under [`API_DIR`], bootstrap tokens).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, Result};
use base64::Engine as _;
use serde_json::{json, Value};

use super::formats::{cidr, host_port};
use super::kubeconfig::{self, Credentials};
use super::pki::{self, Ca, LeafSpec};
use super::v1beta4::{Arg, ClusterConfiguration};
use super::{Root, API_DIR, BANNER};

pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const KUBELET_FLAGS: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const PAUSE_TAG: &str = "3.10.1";
const DEFAULT_VALIDITY: Duration = Duration::from_secs(8760 * 3600);

/// The cluster-wide facts every node file needs, from a ClusterConfiguration.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    /// `host:port` of the shared endpoint.
    pub endpoint: String,
    pub endpoint_host: String,
    pub cert_dir: String,
    pub dns_domain: String,
    pub service_subnet: String,
    pub service_ip: IpAddr,
    pub cert_sans: Vec<String>,
    pub validity: Duration,
    pub image_repository: String,
    pub version: String,
    pub extra_args: Vec<Arg>,
    pub etcd_servers: Vec<String>,
}

impl Cluster {
    pub fn from_config(c: &ClusterConfiguration, bind_port: u16) -> Result<Cluster> {
        let ep = c.control_plane_endpoint.clone().unwrap_or_default();
        let (host, port) =
            host_port(&ep, false).map_err(|e| anyhow!("controlPlaneEndpoint {ep:?}: {e}"))?;
        let net = c.networking.clone().unwrap_or_default();
        let service_subnet = net.service_subnet.unwrap_or_else(|| "10.96.0.0/12".into());
        let first = service_subnet.split(',').next().unwrap_or_default();
        let (base, _) =
            cidr(first).ok_or_else(|| anyhow!("serviceSubnet {service_subnet:?} is not a CIDR"))?;
        let service_ip = match base {
            IpAddr::V4(a) => IpAddr::from(u32::from(a).wrapping_add(1).to_be_bytes()),
            IpAddr::V6(a) => IpAddr::from(u128::from(a).wrapping_add(1).to_be_bytes()),
        };
        let shown = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(Cluster {
            name: c
                .cluster_name
                .clone()
                .unwrap_or_else(|| "kubernetes".into()),
            endpoint: format!("{shown}:{}", port.unwrap_or(bind_port)),
            endpoint_host: host,
            cert_dir: c
                .certificates_dir
                .clone()
                .unwrap_or_else(|| "/etc/kubernetes/pki".into()),
            dns_domain: net.dns_domain.unwrap_or_else(|| "cluster.local".into()),
            service_subnet,
            service_ip,
            cert_sans: c
                .api_server
                .as_ref()
                .and_then(|a| a.cert_sans.clone())
                .unwrap_or_default(),
            validity: c
                .certificate_validity_period
                .as_ref()
                .and_then(|d| d.positive())
                .unwrap_or(DEFAULT_VALIDITY),
            image_repository: c
                .image_repository
                .clone()
                .unwrap_or_else(|| "registry.k8s.io".into()),
            version: c
                .kubernetes_version
                .clone()
                .unwrap_or_else(|| "v1.34.2".into()),
            extra_args: c
                .api_server
                .as_ref()
                .and_then(|a| a.extra_args.clone())
                .unwrap_or_default(),
            etcd_servers: c
                .etcd
                .as_ref()
                .and_then(|e| e.external.as_ref())
                .map(|x| x.endpoints.clone())
                .unwrap_or_default(),
        })
    }
}

/// This node's facts.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub advertise: Option<IpAddr>,
    pub bind_port: u16,
    pub cri_socket: Option<String>,
    pub kubelet_extra_args: Vec<Arg>,
}

/// apiserver.crt/key signed by `ca`, then the marker static Pods.
pub fn write_control_plane(root: &Root, ca: &Ca, c: &Cluster, node: &Node) -> Result<()> {
    let advertise = node
        .advertise
        .ok_or_else(|| anyhow!("no advertiseAddress"))?;
    let mut dns = vec![
        node.name.clone(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", c.dns_domain),
    ];
    let mut ips = vec![c.service_ip, advertise];
    for san in c.cert_sans.iter().chain([&c.endpoint_host]) {
        match san.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !dns.contains(san) => dns.push(san.clone()),
            Err(_) => {}
        }
    }
    println!("[certs] Generating \"apiserver\" certificate and key");
    println!("[certs] apiserver serving cert is signed for DNS names {dns:?} and IPs {ips:?}");
    let spec = LeafSpec {
        common_name: "kube-apiserver".into(),
        dns,
        ips,
        server: true,
        validity: c.validity,
        ..LeafSpec::default()
    };
    let (cert, key) = pki::issue(ca, &spec)?;
    root.write(
        format!("{}/apiserver.crt", c.cert_dir),
        cert.as_bytes(),
        0o644,
    )?;
    root.write(
        format!("{}/apiserver.key", c.cert_dir),
        key.as_bytes(),
        0o600,
    )?;
    let mut args = vec![
        format!("--advertise-address={advertise}"),
        format!("--secure-port={}", node.bind_port),
        format!("--tls-cert-file={}/apiserver.crt", c.cert_dir),
        format!("--tls-private-key-file={}/apiserver.key", c.cert_dir),
        format!("--client-ca-file={}/ca.crt", c.cert_dir),
        format!("--service-cluster-ip-range={}", c.service_subnet),
    ];
    if !c.etcd_servers.is_empty() {
        args.push(format!("--etcd-servers={}", c.etcd_servers.join(",")));
    }
    args.extend(
        c.extra_args
            .iter()
            .map(|a| format!("--{}={}", a.name, a.value)),
    );
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        println!("[control-plane] Creating static Pod manifest for {component:?}");
        let command: Vec<String> = if component == "kube-apiserver" {
            args.clone()
        } else {
            Vec::new()
        };
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": component, "namespace": "kube-system",
                         "annotations": {"kube-standin": "NOT Kubernetes: a marker the stand-in kubelet serves"}},
            "spec": {"hostNetwork": true, "containers": [{
                "name": component,
                "image": format!("{}/{component}:{}", c.image_repository, c.version),
                "command": std::iter::once(component.to_string()).chain(command).collect::<Vec<_>>(),
            }]},
        });
        let text = format!(
            "# {BANNER}: marker static Pod\n{}\n",
            serde_json::to_string_pretty(&pod)?
        );
        root.write(
            format!("{MANIFESTS}/{component}.yaml"),
            text.as_bytes(),
            0o600,
        )?;
    }
    Ok(())
}

/// The kubeconfig `file` (admin.conf, …) for a client certificate issued by `ca`.
pub fn write_kubeconfig(
    root: &Root,
    ca: &Ca,
    c: &Cluster,
    file: &str,
    server: &str,
    cn: &str,
    org: Option<&str>,
) -> Result<()> {
    println!("[kubeconfig] Writing {file:?} kubeconfig file");
    let spec = LeafSpec {
        common_name: cn.into(),
        organizations: org.map(String::from).into_iter().collect(),
        validity: c.validity,
        ..LeafSpec::default()
    };
    let (cert_pem, key_pem) = pki::issue(ca, &spec)?;
    let text = kubeconfig::render(
        &c.name,
        server,
        &ca.cert_pem,
        cn,
        &Credentials::ClientCert { cert_pem, key_pem },
    );
    root.write(format!("/etc/kubernetes/{file}"), text.as_bytes(), 0o600)
}

/// The KubeletConfiguration kubeadm writes: the document with kubeadm's defaults filled in.
pub fn kubelet_config(doc: Option<&Value>, c: &Cluster) -> Value {
    let mut v = doc.cloned().unwrap_or_else(
        || json!({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"}),
    );
    let dns_ip = match c.service_ip {
        IpAddr::V4(a) => IpAddr::from((u32::from(a) + 9).to_be_bytes()),
        IpAddr::V6(a) => IpAddr::from((u128::from(a) + 9).to_be_bytes()),
    };
    let defaults: [(&[&str], Value); 8] = [
        (&["staticPodPath"], json!(MANIFESTS)),
        (&["clusterDomain"], json!(c.dns_domain)),
        (&["clusterDNS"], json!([dns_ip.to_string()])),
        (&["cgroupDriver"], json!("systemd")),
        (&["rotateCertificates"], json!(true)),
        (&["healthzBindAddress"], json!("127.0.0.1")),
        (&["healthzPort"], json!(10248)),
        (
            &["authentication", "x509", "clientCAFile"],
            json!(format!("{}/ca.crt", c.cert_dir)),
        ),
    ];
    for (path, value) in defaults {
        let mut at = &mut v;
        for (i, key) in path.iter().enumerate() {
            let Some(obj) = at.as_object_mut() else { break };
            let fill = if i + 1 == path.len() {
                value.clone()
            } else {
                json!({})
            };
            at = obj.entry(key.to_string()).or_insert(fill);
        }
    }
    v
}

/// `KUBELET_KUBEADM_ARGS="…"`: kubeadm's flags, then kubeletExtraArgs (which override).
pub fn flags_env(node: &Node, c: &Cluster) -> String {
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: String| match flags.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value,
        None => flags.push((name.to_string(), value)),
    };
    if let Some(s) = &node.cri_socket {
        set("container-runtime-endpoint", s.clone());
    }
    if let Some(ip) = node.advertise {
        set("node-ip", ip.to_string());
    }
    set(
        "pod-infra-container-image",
        format!("{}/pause:{PAUSE_TAG}", c.image_repository),
    );
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if !node.name.is_empty() && node.name != hostname.trim() {
        set("hostname-override", node.name.clone());
    }
    for a in &node.kubelet_extra_args {
        set(&a.name, a.value.clone());
    }
    flags.sort();
    let line: Vec<String> = flags.iter().map(|(n, v)| format!("--{n}={v}")).collect();
    format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", line.join(" "))
}

pub fn write_kubelet_files(root: &Root, config: &Value, flags: &str) -> Result<()> {
    println!(
        "[kubelet-start] Writing kubelet environment file with flags to file {KUBELET_FLAGS:?}"
    );
    root.write(KUBELET_FLAGS, flags.as_bytes(), 0o644)?;
    println!("[kubelet-start] Writing kubelet configuration to file {KUBELET_CONFIG:?}");
    let text = format!(
        "# {BANNER} (JSON is YAML)\n{}\n",
        serde_json::to_string_pretty(config)?
    );
    root.write(KUBELET_CONFIG, text.as_bytes(), 0o644)
}

/// A ConfigMap the stand-in "API server" serves at /api/v1/namespaces/{ns}/configmaps/{name}.
pub fn publish(root: &Root, ns: &str, name: &str, data: &Value) -> Result<()> {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data});
    root.write(
        format!("{API_DIR}/{ns}/{name}.json"),
        &serde_json::to_vec_pretty(&cm)?,
        0o600,
    )
}

/// kube-public/cluster-info: a kubeconfig with the CA and one detached JWS per token.
pub fn publish_cluster_info(
    root: &Root,
    ca_pem: &str,
    server: &str,
    tokens: &[String],
) -> Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kc = format!("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n");
    let mut data = json!({"kubeconfig": kc});
    for t in tokens {
        let (id, secret) = t.split_once('.').unwrap_or((t, ""));
        data[format!("jws-kubeconfig-{id}")] = json!(jws(&kc, id, secret));
    }
    publish(root, "kube-public", "cluster-info", &data)?;
    root.write(
        format!("{API_DIR}/bootstrap-tokens.json"),
        &serde_json::to_vec(tokens)?,
        0o600,
    )
}

/// A detached HS256 JWS of `content` keyed by the token secret, as the bootstrap signer makes.
pub fn jws(content: &str, id: &str, secret: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{id}\"}}"));
    let input = format!("{header}.{}", b64.encode(content));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "{header}..{}",
        b64.encode(ring::hmac::sign(&key, input.as_bytes()))
    )
}
