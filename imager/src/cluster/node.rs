//! One node's configuration files: cloud-config `user-data`, NoCloud `meta-data`,
//! network-config v2 and the same in init's native `kiln.toml`.
//!
//! The `kiln:` block is built from init's own types (`KilnSettings`, `ClusterSettings`,
//! `LbSettings`, `NetworkConfig`) and checked with init's own validation before it is
//! serialized, so the schema cannot drift from what the node accepts.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use kiln_init::cluster::settings::{ClusterSettings, EtcdSettings, Shape, API_PORT};
use kiln_init::config::{
    Cidr, Hostname, Interface, KilnSettings, Match, NetworkConfig, Role, Route,
};
use kiln_init::lb::settings::{self as lb, CheckSettings, LbSettings};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::secrets::ClusterFile;
use super::topology::{LbCheck, NodeEntry};
use super::GenError;

/// Where a worker's seed puts the cluster CA for its load balancer's HTTPS check (the
/// load balancer starts before kubeadm writes /etc/kubernetes/pki/ca.crt).
pub const CLUSTER_CA_PATH: &str = "/etc/kiln/cluster-ca.pem";
/// Where `--etcd-restore`'s snapshot lands on the first control plane (write_files).
pub const ETCD_RESTORE_PATH: &str = "/var/lib/kiln/etcd-restore.db";

/// A node's rendered files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFiles {
    pub instance_id: String,
    pub user_data: String,
    pub meta_data: String,
    pub network_config: String,
    pub kiln_toml: String,
}

/// A `write_files` entry (cloud-config and kiln.toml share the shape).
#[derive(Debug, Serialize)]
struct FileOut {
    path: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    permissions: &'static str,
}

#[derive(Serialize)]
struct UserData<'a> {
    hostname: &'a Hostname,
    #[serde(skip_serializing_if = "<[FileOut]>::is_empty")]
    write_files: &'a [FileOut],
    kiln: &'a KilnSettings,
}

#[derive(Serialize)]
struct KilnToml<'a> {
    instance_id: &'a str,
    hostname: &'a Hostname,
    #[serde(skip_serializing_if = "<[FileOut]>::is_empty")]
    write_files: &'a [FileOut],
    network: &'a NetworkConfig,
    kiln: &'a KilnSettings,
}

#[derive(Serialize)]
struct NetV2 {
    version: u8,
    ethernets: BTreeMap<String, EthV2>,
}

#[derive(Serialize)]
struct EthV2 {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dhcp4: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway4: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway6: Option<Ipv6Addr>,
}

fn render_err(what: &'static str) -> impl Fn(String) -> GenError {
    move |reason| GenError::Render { what, reason }
}

/// Renders every file of `node`.
pub fn render(file: &ClusterFile, node: &NodeEntry) -> Result<NodeFiles, GenError> {
    render_with(file, node, None)
}

/// Renders every file of `node`; with `restore` (an etcd snapshot), the node restores it
/// into a new etcd cluster on first boot (the file travels gzip+base64 in write_files).
pub fn render_with(
    file: &ClusterFile,
    node: &NodeEntry,
    restore: Option<&[u8]>,
) -> Result<NodeFiles, GenError> {
    let mut kiln = kiln_settings(file, node)?;
    if restore.is_some() {
        let Some(cluster) = kiln.cluster.take() else {
            return Err(render_err("kiln: cluster:")("no cluster settings".into()));
        };
        let mut shape = kiln_init::cluster::settings::Shape::from(cluster);
        shape.etcd.restore_from = Some(
            ETCD_RESTORE_PATH
                .try_into()
                .map_err(|e: kiln_init::config::ValueError| render_err("etcd")(e.to_string()))?,
        );
        kiln.cluster = Some(
            ClusterSettings::try_from(shape)
                .map_err(|e| render_err("kiln: cluster:")(e.to_string()))?,
        );
    }
    let network = network(file, node)?;
    let https_worker = node.role == Role::Worker && file.cluster.lb_check == LbCheck::Https;
    let write_files: Vec<FileOut> = https_worker
        .then(|| FileOut {
            path: CLUSTER_CA_PATH,
            content: file.secrets.ca.cert.as_str().to_string(),
            encoding: None,
            permissions: "0644",
        })
        .into_iter()
        .chain(restore.map(|bytes| FileOut {
            path: ETCD_RESTORE_PATH,
            content: gzip_base64(bytes),
            encoding: Some("gz+b64"),
            permissions: "0600",
        }))
        .collect();
    let user_data = UserData {
        hostname: &node.name,
        write_files: &write_files,
        kiln: &kiln,
    };
    let user_data = serde_saphyr::to_string(&user_data)
        .map(|y| format!("#cloud-config\n{y}"))
        .map_err(|e| render_err("user-data")(e.to_string()))?;
    let network_config = network_v2(&network)?;
    let digest = Sha256::new()
        .chain_update(&user_data)
        .chain_update([0])
        .chain_update(&network_config)
        .finalize();
    let instance_id = format!(
        "{}-{}-{}",
        file.cluster.name,
        node.name,
        &kiln_init::pki::hex(&digest)[..12]
    );
    let meta_data = format!(
        "instance-id: {instance_id}\nlocal-hostname: {}\n",
        node.name
    );
    let kiln_toml = KilnToml {
        instance_id: &instance_id,
        hostname: &node.name,
        write_files: &write_files,
        network: &network,
        kiln: &kiln,
    };
    let kiln_toml =
        toml::to_string(&kiln_toml).map_err(|e| render_err("kiln.toml")(e.to_string()))?;
    Ok(NodeFiles {
        instance_id,
        user_data,
        meta_data,
        network_config,
        kiln_toml,
    })
}

/// `kiln: cluster:` for `node`: control planes get every CA key, the service-account
/// pair and the certificate key; workers the cluster CA certificate and the token.
pub fn cluster_settings(file: &ClusterFile, node: &NodeEntry) -> Result<ClusterSettings, GenError> {
    let (t, s) = (&file.cluster, &file.secrets);
    let cp = node.role == Role::ControlPlane;
    let shape = Shape {
        name: t.name.clone(),
        address: node.address,
        control_planes: t.control_planes.clone(),
        kubernetes_version: t.kubernetes_version.clone(),
        pod_cidr: t.pod_cidr,
        service_cidr: t.service_cidr,
        cert_validity_hours: t.cert_validity_hours,
        bootstrap_token: s.bootstrap_token.clone(),
        certificate_key: cp.then(|| s.certificate_key.clone()),
        ca: s.ca.for_node(cp),
        etcd_ca: cp.then(|| s.etcd_ca.for_node(true)),
        front_proxy_ca: cp.then(|| s.front_proxy_ca.for_node(true)),
        service_account: cp.then(|| s.service_account.clone()),
        vip: Some(t.vip),
        etcd: EtcdSettings::default(),
    };
    ClusterSettings::try_from(shape).map_err(|e| render_err("kiln: cluster:")(e.to_string()))
}

/// `kiln: lb:` for a worker: every control plane (initial and added) on port 6443.
pub fn lb_settings(file: &ClusterFile) -> Result<LbSettings, GenError> {
    let t = &file.cluster;
    let settings = LbSettings {
        vip: t.vip.to_string(),
        port: API_PORT,
        backends: t
            .control_plane_addresses()
            .into_iter()
            .map(|a| SocketAddr::new(a, API_PORT).to_string())
            .collect(),
        scheduler: "rr".into(),
        mode: "auto".into(),
        check: CheckSettings {
            kind: match t.lb_check {
                LbCheck::Https => "https".into(),
                LbCheck::Tcp => "tcp".into(),
            },
            ca: (t.lb_check == LbCheck::Https).then(|| CLUSTER_CA_PATH.to_string()),
            ..CheckSettings::default()
        },
    };
    let ca = file.secrets.ca.cert.as_str().as_bytes().to_vec();
    let read = move |path: &str| match path {
        CLUSTER_CA_PATH => Ok(ca.clone()),
        _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    };
    lb::validate(&settings, &read).map_err(|e| render_err("kiln: lb:")(e.to_string()))?;
    Ok(settings)
}

fn kiln_settings(file: &ClusterFile, node: &NodeEntry) -> Result<KilnSettings, GenError> {
    Ok(KilnSettings {
        role: node.role,
        events_verbose: false,
        lb: match node.role {
            Role::Worker => Some(lb_settings(file)?),
            _ => None,
        },
        debug_exec: file.cluster.debug_exec,
        cluster: Some(cluster_settings(file, node)?),
    })
}

/// The static address (and default route) on `interface`, DHCPv4 on the others; sorted
/// by name, as network-config v2 lists them.
pub fn network(file: &ClusterFile, node: &NodeEntry) -> Result<NetworkConfig, GenError> {
    let t = &file.cluster;
    let address =
        Cidr::new(node.address, t.prefix).map_err(|e| render_err("network")(e.to_string()))?;
    let mut interfaces = vec![Interface {
        r#match: Match {
            name: Some(t.interface.clone()),
            mac: None,
        },
        addresses: vec![address],
        gateway4: match t.gateway {
            Some(IpAddr::V4(gw)) => Some(gw),
            _ => None,
        },
        routes: match t.gateway {
            Some(gw @ IpAddr::V6(_)) => vec![Route {
                to: Cidr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
                    .map_err(|e| render_err("network")(e.to_string()))?,
                via: gw,
                metric: None,
            }],
            _ => Vec::new(),
        },
        ..Interface::default()
    }];
    interfaces.extend(t.dhcp_interfaces.iter().map(|name| Interface {
        r#match: Match {
            name: Some(name.clone()),
            mac: None,
        },
        dhcp4: true,
        ..Interface::default()
    }));
    interfaces.sort_by(|a, b| a.r#match.name.cmp(&b.r#match.name));
    let net = NetworkConfig {
        interfaces,
        nameservers: Vec::new(),
        search: Vec::new(),
    };
    net.validate()
        .map_err(|e| render_err("network")(e.to_string()))?;
    Ok(net)
}

/// network-config version 2: one `ethernets` entry per interface, keyed by its name.
fn network_v2(net: &NetworkConfig) -> Result<String, GenError> {
    let mut ethernets = BTreeMap::new();
    for i in &net.interfaces {
        let name = i
            .r#match
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let gateway6 = i.routes.iter().find_map(|r| match r.via {
            IpAddr::V6(v6) if r.to.prefix == 0 => Some(v6),
            _ => None,
        });
        let eth = EthV2 {
            dhcp4: i.dhcp4,
            addresses: i.addresses.iter().map(|a| a.to_string()).collect(),
            gateway4: i.gateway4,
            gateway6,
        };
        ethernets.insert(name, eth);
    }
    let doc = NetV2 {
        version: 2,
        ethernets,
    };
    serde_saphyr::to_string(&doc).map_err(|e| render_err("network-config")(e.to_string()))
}

/// gzip (best) then base64, as cloud-init's `encoding: gz+b64` reads it.
fn gzip_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(bytes);
    let packed = gz.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(packed)
}
