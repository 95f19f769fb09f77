//! Checks for `kubeadm init`: InitConfiguration, ClusterConfiguration (with the external
//! etcd files on this node) and the component configs.

use std::net::IpAddr;

use super::{certificate_key, endpoint, extra_args, node_registration, token, Findings};
use crate::config::Docs;
use crate::formats::{cidr, dns_subdomain, host_port};
use crate::v1beta4::{ClusterConfiguration, ExternalEtcd};
use crate::Root;

/// kubeadm feature gates known to 1.34.
const FEATURE_GATES: &[&str] = &[
    "ControlPlaneKubeletLocalMode",
    "EtcdLearnerMode",
    "NodeLocalCRISocket",
    "PublicKeysECDSA",
    "RootlessControlPlane",
    "WaitForAllControlPlaneComponents",
];

/// Checks a config for `kubeadm init`; `root` is where external etcd files must exist.
pub fn init(docs: &Docs, root: &Root) -> Findings {
    let mut f = Findings::default();
    if docs.join.is_some() {
        f.warnings
            .push("ignored JoinConfiguration document (kubeadm init does not use it)".into());
    }
    match &docs.init {
        None => f.required(
            "InitConfiguration",
            "kube-standin needs localAPIEndpoint.advertiseAddress (it does not auto-detect)",
        ),
        Some(init) => {
            for (i, t) in init.bootstrap_tokens.iter().flatten().enumerate() {
                let field = format!("InitConfiguration.bootstrapTokens[{i}]");
                token(&mut f, &format!("{field}.token"), &t.token);
                if t.ttl.is_some() && t.expires.is_some() {
                    f.errors
                        .push(format!("{field}: ttl and expires are mutually exclusive"));
                }
                for u in t.usages.iter().flatten() {
                    if u != "signing" && u != "authentication" {
                        f.invalid(
                            &format!("{field}.usages"),
                            u,
                            "not signing or authentication",
                        );
                    }
                }
            }
            node_registration(&mut f, "InitConfiguration", init.node_registration.as_ref());
            endpoint(
                &mut f,
                "InitConfiguration.localAPIEndpoint",
                init.local_api_endpoint.as_ref(),
            );
            if let Some(key) = &init.certificate_key {
                certificate_key(&mut f, "InitConfiguration.certificateKey", key);
            }
        }
    }
    match &docs.cluster {
        None => f.required(
            "ClusterConfiguration",
            "kubeadm init needs the cluster's settings",
        ),
        Some(c) => cluster(&mut f, c, root),
    }
    components(&mut f, docs);
    f
}

fn cluster(f: &mut Findings, c: &ClusterConfiguration, root: &Root) {
    const K: &str = "ClusterConfiguration";
    match c.control_plane_endpoint.as_deref() {
        None | Some("") => f.required(
            &format!("{K}.controlPlaneEndpoint"),
            "kube-standin needs the shared API endpoint (Kiln's apiserver.cluster.local:6443)",
        ),
        Some(ep) => {
            if let Err(why) = host_port(ep, false) {
                f.invalid(&format!("{K}.controlPlaneEndpoint"), ep, &why);
            }
        }
    }
    if let Some(v) = &c.kubernetes_version {
        kubernetes_version(f, v);
    }
    if let Some(n) = &c.networking {
        for (name, value) in [
            ("serviceSubnet", &n.service_subnet),
            ("podSubnet", &n.pod_subnet),
        ] {
            if let Some(v) = value {
                if v.split(',').any(|c| cidr(c).is_none()) {
                    f.invalid(
                        &format!("{K}.networking.{name}"),
                        v,
                        "not a CIDR (or comma-separated pair)",
                    );
                }
            }
        }
        if let Some(d) = &n.dns_domain {
            if !dns_subdomain(d) {
                f.invalid(
                    &format!("{K}.networking.dnsDomain"),
                    d,
                    "not a DNS-1123 subdomain",
                );
            }
        }
    }
    if let Some(etcd) = &c.etcd {
        match (&etcd.local, &etcd.external) {
            (Some(_), Some(_)) => f.errors.push(format!(
                "{K}.etcd: Invalid value: local and external are mutually exclusive"
            )),
            (_, Some(ext)) => external_etcd(f, ext, root),
            _ => {}
        }
    }
    for (name, gate) in c.feature_gates.iter().flatten() {
        if !FEATURE_GATES.contains(&name.as_str()) {
            f.invalid(
                &format!("{K}.featureGates"),
                name,
                &format!("unrecognized feature-gate key (={gate})"),
            );
        }
    }
    for (name, d) in [
        ("certificateValidityPeriod", &c.certificate_validity_period),
        (
            "caCertificateValidityPeriod",
            &c.ca_certificate_validity_period,
        ),
    ] {
        if d.as_ref().is_some_and(|d| d.positive().is_none()) {
            f.invalid(
                &format!("{K}.{name}"),
                &d.as_ref().map(|d| d.to_string()).unwrap_or_default(),
                "must be positive",
            );
        }
    }
    if let Some(dir) = &c.certificates_dir {
        if !dir.starts_with('/') {
            f.invalid(&format!("{K}.certificatesDir"), dir, "not an absolute path");
        }
    }
    for (name, args) in [
        (
            "apiServer",
            c.api_server.as_ref().and_then(|a| a.extra_args.as_ref()),
        ),
        (
            "controllerManager",
            c.controller_manager
                .as_ref()
                .and_then(|a| a.extra_args.as_ref()),
        ),
        (
            "scheduler",
            c.scheduler.as_ref().and_then(|a| a.extra_args.as_ref()),
        ),
    ] {
        extra_args(f, &format!("{K}.{name}.extraArgs"), args.map(Vec::as_slice));
    }
}

fn external_etcd(f: &mut Findings, ext: &ExternalEtcd, root: &Root) {
    const K: &str = "ClusterConfiguration";
    if ext.endpoints.is_empty() {
        f.required(
            &format!("{K}.etcd.external.endpoints"),
            "at least one etcd URL",
        );
    }
    for e in &ext.endpoints {
        let ok = ["http://", "https://"].iter().any(|s| {
            e.strip_prefix(s)
                .is_some_and(|hp| host_port(hp, true).is_ok())
        });
        if !ok {
            f.invalid(
                &format!("{K}.etcd.external.endpoints"),
                e,
                "not an http(s)://host:port URL",
            );
        }
    }
    let files = [
        ("caFile", &ext.ca_file),
        ("certFile", &ext.cert_file),
        ("keyFile", &ext.key_file),
    ];
    let set = files.iter().filter(|(_, v)| v.is_some()).count();
    if set != 0 && set != 3 {
        f.errors.push(format!(
            "{K}.etcd.external: caFile, certFile and keyFile must be set together"
        ));
    }
    for (name, path) in files {
        if let Some(p) = path {
            if !root.exists(p) {
                f.invalid(
                    &format!("{K}.etcd.external.{name}"),
                    p,
                    "no such file on this node",
                );
            }
        }
    }
}

fn components(f: &mut Findings, docs: &Docs) {
    if let Some(k) = &docs.kubelet {
        for ip in k.cluster_dns.iter().flatten() {
            if ip.parse::<IpAddr>().is_err() {
                f.invalid("KubeletConfiguration.clusterDNS", ip, "not an IP address");
            }
        }
        if let Some(p) = k.healthz_port.filter(|p| !(0..=65535).contains(p)) {
            f.invalid(
                "KubeletConfiguration.healthzPort",
                &p.to_string(),
                "must be between 0 and 65535",
            );
        }
        if let Some(p) = k.static_pod_path.as_ref().filter(|p| !p.starts_with('/')) {
            f.invalid(
                "KubeletConfiguration.staticPodPath",
                p,
                "not an absolute path",
            );
        }
    }
    if let Some(p) = &docs.proxy {
        let cidrs = p.ipvs.as_ref().and_then(|i| i.exclude_cidrs.as_ref());
        for c in cidrs.into_iter().flatten().chain(p.cluster_cidr.iter()) {
            if c.split(',').any(|c| cidr(c).is_none()) {
                f.invalid("KubeProxyConfiguration", c, "not a CIDR");
            }
        }
    }
}

fn kubernetes_version(f: &mut Findings, v: &str) {
    let field = "ClusterConfiguration.kubernetesVersion";
    let nums: Vec<Option<u32>> = v
        .strip_prefix('v')
        .unwrap_or(v)
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().ok())
        .collect();
    match nums.as_slice() {
        [Some(1), Some(minor), Some(_)] if *minor < 33 => f.invalid(
            field,
            v,
            "this version of kubeadm only supports deploying clusters with the control plane version >= 1.33.0",
        ),
        [Some(1), Some(minor), Some(_)] if *minor > 34 => f
            .warnings
            .push(format!("{field} {v} is newer than kubeadm v1.34")),
        [Some(1), Some(_), Some(_)] => {}
        _ => f.invalid(field, v, "not a version like v1.34.2"),
    }
}
