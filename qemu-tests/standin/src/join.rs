//! kube-standin `kubeadm join` (NOT Kubernetes). Discovery as kubeadm does it with a
//! bootstrap token: fetch kube-public/cluster-info from `apiServerEndpoint` without
//! trusting the server yet, check the token's JWS over its kubeconfig, pin the CA by
//! `caCertHashes`, then read kubeadm-config and kubelet-config over TLS verified by that
//! CA with the token as bearer. A worker gets kubelet.conf (token credentials: the TLS
//! bootstrap is not emulated), the CA at `caCertPath`, config.yaml and kubeadm-flags.env;
//! a control plane also the API server (signed by the CA key already on the node: the
//! kubeadm-certs download is not emulated) and waits for it like init.
//!
//! An endpoint that does not answer fails at once with kubeadm's preflight message (the
//! caller retries); kubeadm itself would retry until `timeouts.discovery`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::checks;
use super::cpfiles::{self, Cluster, Node};
use super::flags::Parsed;
use super::formats::host_port;
use super::https::{self, Trust};
use super::kubeadm::{hostname, load_config, wait_for};
use super::kubeconfig::{self, Credentials};
use super::preflight::{skip_phases, Preflight};
use super::v1beta4::{ClusterConfiguration, JoinConfiguration};
use super::{config, Call, Root, BANNER};
use super::{pki, probe};

const JOIN_PHASES: &[&str] = &[
    "preflight",
    "control-plane-prepare",
    "kubelet-start",
    "control-plane-join",
    "wait-control-plane",
];
const TIMEOUT: Duration = Duration::from_secs(5);

/// What discovery learnt: the CA, the server URL from cluster-info and the two configs.
struct Discovered {
    ca_pem: String,
    server: String,
    cluster: ClusterConfiguration,
    /// The ClusterConfiguration as served (republished by a joining control plane).
    cluster_text: String,
    kubelet: Value,
}

pub fn run(root: &Root, parsed: &Parsed, call: &mut Call) -> Result<()> {
    println!("{BANNER}: kubeadm join");
    let docs = load_config(root, parsed, call, checks::join)?;
    let Some(j) = &docs.join else {
        bail!("a JoinConfiguration is required");
    };
    let skip = skip_phases(None, j.skip_phases.as_ref(), JOIN_PHASES)?;
    let nr = j.node_registration.clone().unwrap_or_default();
    let cp_ep = j
        .control_plane
        .as_ref()
        .and_then(|c| c.local_api_endpoint.clone())
        .unwrap_or_default();
    let node = Node {
        name: nr.name.clone().unwrap_or_else(hostname),
        advertise: cp_ep
            .advertise_address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok()),
        bind_port: cp_ep
            .bind_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(6443),
        cri_socket: nr.cri_socket.clone(),
        kubelet_extra_args: nr.kubelet_extra_args.clone().unwrap_or_default(),
    };
    let ca_path = j
        .ca_cert_path
        .clone()
        .unwrap_or_else(|| "/etc/kubernetes/pki/ca.crt".into());
    if !skip.iter().any(|p| p == "preflight") {
        let mut pf = Preflight::new(
            parsed.get("ignore-preflight-errors"),
            nr.ignore_preflight_errors.as_ref(),
        );
        pf.dir_available(root, cpfiles::MANIFESTS);
        pf.file_available(root, "/etc/kubernetes/kubelet.conf");
        pf.file_available(root, "/etc/kubernetes/bootstrap-kubelet.conf");
        if j.control_plane.is_some() {
            pf.port_free(node.bind_port);
        } else {
            pf.file_available(root, &ca_path);
        }
        pf.finish()?;
    }
    let found = discover(root, j).map_err(|e| anyhow!("error execution phase preflight: {e:#}"))?;
    let cluster = Cluster::from_config(&found.cluster, node.bind_port)?;
    let token = bearer(j);
    if j.control_plane.is_some() {
        let bt_token = j
            .discovery
            .bootstrap_token
            .as_ref()
            .map(|b| b.token.clone());
        control_plane(root, &found, &cluster, &node, bt_token)?;
    } else {
        println!("[kubelet-start] Writing the cluster CA to {ca_path:?}");
        root.write(&ca_path, found.ca_pem.as_bytes(), 0o644)?;
    }
    let kc = kubeconfig::render(
        &cluster.name,
        &found.server,
        &found.ca_pem,
        &format!("system:node:{}", node.name),
        &Credentials::Token(token.to_string()),
    );
    println!("[kubelet-start] Writing kubelet.conf ({BANNER}: token credentials, the TLS bootstrap is not emulated)");
    root.write("/etc/kubernetes/kubelet.conf", kc.as_bytes(), 0o600)?;
    cpfiles::write_kubelet_files(root, &found.kubelet, &cpfiles::flags_env(&node, &cluster))?;
    if let (Some(ip), true) = (
        node.advertise.filter(|_| j.control_plane.is_some()),
        !skip.iter().any(|p| p == "wait-control-plane"),
    ) {
        let (kubelet_wait, cp_wait) = wait_for(j.timeouts.as_ref());
        probe::wait_kubelet(&found.kubelet, kubelet_wait)?;
        probe::wait_apiserver(&found.ca_pem, ip, node.bind_port, cp_wait)?;
    }
    println!("\nThis node has joined the cluster ({BANNER}):\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.");
    Ok(())
}

fn bearer(j: &JoinConfiguration) -> &str {
    let bt = j
        .discovery
        .bootstrap_token
        .as_ref()
        .map(|b| b.token.as_str())
        .unwrap_or("");
    j.discovery.tls_bootstrap_token.as_deref().unwrap_or(bt)
}

fn control_plane(
    root: &Root,
    found: &Discovered,
    cluster: &Cluster,
    node: &Node,
    token: Option<String>,
) -> Result<()> {
    println!(
        "[preflight] Running pre-flight checks before initializing the new control plane instance"
    );
    let dir = &cluster.cert_dir;
    let ca = pki::load_ca(root, &format!("{dir}/ca.crt"), &format!("{dir}/ca.key")).map_err(|e| {
        anyhow!("error execution phase control-plane-prepare/download-certs: {e:#} ({BANNER} cannot download the kubeadm-certs Secret: the cluster CA and key must be on this node)")
    })?;
    for shared in [
        "sa.key",
        "sa.pub",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
    ] {
        let path = format!("{dir}/{shared}");
        if !root.path(&path).is_file() {
            bail!("error execution phase control-plane-prepare/certs: {path} is missing ({BANNER} cannot download the kubeadm-certs Secret: the shared certificates must be on this node)");
        }
    }
    let (spki, _) = pki::cert_spki(&found.ca_pem)?;
    if spki != ca.spki {
        bail!("error execution phase control-plane-prepare/certs: {dir}/ca.crt on this node is not the cluster's CA (discovery found {})", pki::ca_cert_hash(&spki));
    }
    cpfiles::write_control_plane(root, &ca, cluster, node)?;
    let local = format!(
        "https://{}",
        SocketAddr::new(
            node.advertise.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            node.bind_port
        )
    );
    for (file, srv, cn, org) in [
        (
            "admin.conf",
            &found.server,
            "kubernetes-admin",
            Some("kubeadm:cluster-admins"),
        ),
        (
            "controller-manager.conf",
            &local,
            "system:kube-controller-manager",
            None,
        ),
        ("scheduler.conf", &local, "system:kube-scheduler", None),
    ] {
        cpfiles::write_kubeconfig(root, &ca, cluster, file, srv, cn, org)?;
    }
    // This control plane serves the cluster's objects too (they live in etcd upstream).
    cpfiles::publish(
        root,
        "kube-system",
        "kubeadm-config",
        &serde_json::json!({"ClusterConfiguration": found.cluster_text}),
    )?;
    cpfiles::publish(
        root,
        "kube-system",
        "kubelet-config",
        &serde_json::json!({"kubelet": serde_json::to_string(&found.kubelet)?}),
    )?;
    let tokens: Vec<String> = token.into_iter().collect();
    cpfiles::publish_cluster_info(root, &found.ca_pem, &found.server, &tokens)
}

fn discover(root: &Root, j: &JoinConfiguration) -> Result<Discovered> {
    let bt = j
        .discovery
        .bootstrap_token
        .as_ref()
        .ok_or_else(|| anyhow!("no bootstrapToken discovery"))?;
    let endpoint = bt.api_server_endpoint.clone().unwrap_or_default();
    let (host, port) =
        host_port(&endpoint, true).map_err(|e| anyhow!("apiServerEndpoint {endpoint:?}: {e}"))?;
    let identity =
        |e: anyhow::Error| anyhow!("couldn't validate the identity of the API Server: {e:#}");
    let addr = probe::resolve(root, &host, port.unwrap_or(6443)).map_err(identity)?;
    println!("[preflight] Reading cluster-info from https://{endpoint}");
    let insecure = https::client_config(&Trust::Anything)?;
    let info =
        configmap(addr, &host, "kube-public", "cluster-info", None, insecure).map_err(identity)?;
    let kc = info["kubeconfig"]
        .as_str()
        .ok_or_else(|| identity(anyhow!("cluster-info has no kubeconfig")))?;
    let (id, secret) = bt.token.split_once('.').unwrap_or((&bt.token, ""));
    let Some(sig) = info[format!("jws-kubeconfig-{id}")].as_str() else {
        return Err(identity(anyhow!("there is no JWS signed token in the cluster-info ConfigMap. This token id {id:?} is invalid for this cluster, can't connect")));
    };
    if sig != cpfiles::jws(kc, id, secret) {
        return Err(identity(anyhow!("failed to verify JWS signature of received cluster info object, can't trust this API Server")));
    }
    let target = kubeconfig::first_cluster(kc, root).map_err(identity)?;
    let ca_pem = target
        .ca_pem
        .ok_or_else(|| identity(anyhow!("cluster-info has no CA")))?;
    let (spki, _) = pki::cert_spki(&ca_pem).map_err(identity)?;
    let hash = pki::ca_cert_hash(&spki);
    let pins = bt.ca_cert_hashes.clone().unwrap_or_default();
    if !pins.is_empty() && !pins.iter().any(|p| p.eq_ignore_ascii_case(&hash)) {
        return Err(identity(anyhow!("cluster CA found in cluster-info ConfigMap is invalid: none of the public keys {hash:?} are pinned")));
    }
    println!("[preflight] Cluster info signature and contents are valid and the CA is pinned ({hash}); will use API Server {:?}", target.server);
    let server_hp = target.server.trim_start_matches("https://").to_string();
    let (s_host, s_port) = host_port(&server_hp, false)
        .map_err(|e| anyhow!("cluster-info server {:?}: {e}", target.server))?;
    let s_addr = probe::resolve(root, &s_host, s_port.unwrap_or(6443))?;
    let verified = https::client_config(&Trust::Ca(ca_pem.clone()))?;
    println!("[preflight] Reading configuration from the cluster...");
    let fetch = |name: &str| {
        configmap(
            s_addr,
            &s_host,
            "kube-system",
            name,
            Some(bearer(j)),
            verified.clone(),
        )
        .map_err(|e| anyhow!("unable to fetch the {name} ConfigMap: {e:#}"))
    };
    let kubeadm_config = fetch("kubeadm-config")?;
    let cluster_text = kubeadm_config["ClusterConfiguration"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("kubeadm-config has no ClusterConfiguration"))?;
    let cluster: ClusterConfiguration = config::typed(
        "ClusterConfiguration",
        1,
        &serde_json::from_str(&cluster_text)?,
    )?;
    let kubelet_text = fetch("kubelet-config")?["kubelet"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("kubelet-config has no kubelet key"))?;
    config::parse_kubelet(&kubelet_text)?;
    Ok(Discovered {
        ca_pem,
        server: target.server,
        cluster,
        cluster_text,
        kubelet: serde_json::from_str(&kubelet_text)?,
    })
}

/// `data` of ConfigMap `ns/name`.
fn configmap(
    addr: SocketAddr,
    host: &str,
    ns: &str,
    name: &str,
    bearer: Option<&str>,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Result<Value> {
    let path = format!("/api/v1/namespaces/{ns}/configmaps/{name}");
    let r = https::get(addr, host, &path, bearer, config, TIMEOUT)?;
    match r.status {
        200 => {}
        401 => bail!("Unauthorized (the bootstrap token is not known to the cluster)"),
        404 => bail!("configmaps {name:?} not found"),
        s => bail!("status {s} for {path}"),
    }
    let cm: Value = serde_json::from_slice(&r.body)?;
    Ok(cm["data"].clone())
}
