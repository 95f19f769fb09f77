//! Golden files (init/testdata/kubeadm, `KILN_BLESS=1` rewrites them) and a read-back of
//! every document through structs that copy the v1beta4 / kubelet / kube-proxy JSON tags
//! and deny unknown fields, so a misspelt or misplaced key fails here, not at boot.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::super::fixtures::{self, CA_HASH, CERT_KEY};
use super::*;

fn facts(name: &str, vip: Option<&str>) -> NodeFacts {
    NodeFacts {
        name: name.to_string(),
        vip: vip.map(|v| v.parse().unwrap_or_else(|e| panic!("{v}: {e}"))),
        cri_socket: "unix:///run/containerd/containerd.sock".to_string(),
        ca_cert_hash: CA_HASH.to_string(),
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/kubeadm")
        .join(name)
}

fn cases() -> [(&'static str, String); 3] {
    [
        (
            "init.yaml",
            kubeadm_config(
                &fixtures::settings("10.0.0.11"),
                &facts("cp-1", Some("10.0.0.100")),
                Plan::Init,
            ),
        ),
        (
            "join-control-plane.yaml",
            kubeadm_config(
                &fixtures::settings("10.0.0.12"),
                &facts("cp-2", None),
                Plan::JoinControlPlane,
            ),
        ),
        (
            "join-worker.yaml",
            kubeadm_config(
                &fixtures::worker_settings("10.0.0.21"),
                &facts("w-1", Some("10.0.0.100")),
                Plan::JoinWorker,
            ),
        ),
    ]
}

#[test]
fn output_matches_golden_files() {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    for (name, text) in cases() {
        let path = golden(name);
        if bless {
            std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (KILN_BLESS=1 writes it)", path.display()));
        assert!(text == want, "{name} differs from its golden file:\n{text}");
    }
}

#[path = "config_schema.rs"]
mod schema;
use schema::*;

fn read_back(text: &str) -> Vec<Doc> {
    serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const KUBEADM_API: &str = "kubeadm.k8s.io/v1beta4";

#[test]
fn init_documents_read_back_with_the_key_values() {
    let text = &cases()[0].1;
    let docs = read_back(text);
    let [Doc::Init(init), Doc::Cluster(cluster), Doc::Kubelet(kubelet), Doc::KubeProxy(proxy)] =
        docs.as_slice()
    else {
        panic!("expected Init, Cluster, Kubelet, KubeProxy: {docs:?}")
    };
    assert_eq!(init.api_version, KUBEADM_API);
    let token = &init.bootstrap_tokens[0];
    assert_eq!(
        (token.token.as_str(), token.ttl.as_str()),
        ("abcdef.0123456789abcdef", "0s")
    );
    assert_eq!(token.usages, ["signing", "authentication"]);
    assert_eq!(token.groups, [TOKEN_GROUP]);
    assert!(!token.description.is_empty());
    assert_eq!(init.node_registration.name, "cp-1");
    assert_eq!(
        init.node_registration.cri_socket,
        "unix:///run/containerd/containerd.sock"
    );
    assert_eq!(
        init.node_registration.kubelet_extra_args,
        [arg_of("node-ip", "10.0.0.11")]
    );
    assert_eq!(init.local_api_endpoint.advertise_address, "10.0.0.11");
    assert_eq!(init.local_api_endpoint.bind_port, 6443);
    assert_eq!(init.certificate_key.as_deref(), Some(CERT_KEY));

    assert_eq!(cluster.api_version, KUBEADM_API);
    assert_eq!(cluster.cluster_name, "dev");
    assert_eq!(cluster.kubernetes_version.as_deref(), Some("v1.34.2"));
    assert_eq!(
        cluster.control_plane_endpoint,
        "apiserver.cluster.local:6443"
    );
    let net = &cluster.networking;
    assert_eq!(
        (net.pod_subnet.as_str(), net.service_subnet.as_str()),
        ("10.244.0.0/16", "10.96.0.0/16")
    );
    assert_eq!(net.dns_domain, "cluster.local");
    let etcd = &cluster.etcd.external;
    let want = [
        "https://10.0.0.11:2379",
        "https://10.0.0.12:2379",
        "https://10.0.0.13:2379",
    ];
    assert_eq!(etcd.endpoints, want);
    assert_eq!(etcd.ca_file, "/etc/kubernetes/pki/etcd/ca.crt");
    assert_eq!(
        etcd.cert_file,
        "/etc/kubernetes/pki/apiserver-etcd-client.crt"
    );
    assert_eq!(
        etcd.key_file,
        "/etc/kubernetes/pki/apiserver-etcd-client.key"
    );
    let sans = [
        "apiserver.cluster.local",
        "127.0.0.1",
        "10.0.0.100",
        "10.0.0.11",
        "10.0.0.12",
        "10.0.0.13",
    ];
    assert_eq!(cluster.api_server.cert_sans, sans);
    assert_eq!(
        cluster.controller_manager.extra_args,
        [arg_of("cluster-signing-duration", "876000h")]
    );
    assert_eq!(cluster.certificate_validity_period, "876000h0m0s");
    assert_eq!(cluster.ca_certificate_validity_period, "876000h0m0s");
    assert_eq!(cluster.encryption_algorithm, "ECDSA-P256");

    assert_eq!(kubelet.api_version, "kubelet.config.k8s.io/v1beta1");
    assert_eq!(kubelet.cgroup_driver, "cgroupfs");
    assert_eq!(
        kubelet.container_runtime_endpoint,
        "unix:///run/containerd/containerd.sock"
    );
    assert!(kubelet.rotate_certificates && !kubelet.server_tls_bootstrap);

    assert_eq!(proxy.api_version, "kubeproxy.config.k8s.io/v1alpha1");
    assert_eq!(
        (proxy.mode.as_str(), proxy.cluster_cidr.as_str()),
        ("ipvs", "10.244.0.0/16")
    );
    let exclude = proxy.ipvs.as_ref().map(|i| i.exclude_cidrs.clone());
    assert_eq!(exclude, Some(vec!["10.0.0.100/32".to_string()]));
}

fn arg_of(name: &str, value: &str) -> Arg {
    Arg {
        name: name.to_string(),
        value: value.to_string(),
    }
}

fn join_of(text: &str) -> Join {
    let mut docs = read_back(text);
    match (docs.pop(), docs.is_empty()) {
        (Some(Doc::Join(join)), true) => join,
        other => panic!("expected one JoinConfiguration: {other:?} {docs:?}"),
    }
}

#[test]
fn join_documents_read_back_with_the_key_values() {
    let [_, (_, cp_text), (_, worker_text)] = cases();
    for (text, name, addr) in [
        (&cp_text, "cp-2", "10.0.0.12"),
        (&worker_text, "w-1", "10.0.0.21"),
    ] {
        let join = join_of(text);
        assert_eq!(join.api_version, KUBEADM_API);
        assert_eq!(join.node_registration.name, name);
        assert_eq!(
            join.node_registration.cri_socket,
            "unix:///run/containerd/containerd.sock"
        );
        assert_eq!(
            join.node_registration.kubelet_extra_args,
            [arg_of("node-ip", addr)]
        );
        let token = &join.discovery.bootstrap_token;
        assert_eq!(token.api_server_endpoint, "apiserver.cluster.local:6443");
        assert_eq!(token.token, "abcdef.0123456789abcdef");
        assert_eq!(token.ca_cert_hashes, [CA_HASH]);
        assert!(!token.unsafe_skip_ca_verification);
    }
    let cp = join_of(&cp_text).control_plane;
    let Some(cp) = cp else {
        panic!("control plane join without controlPlane")
    };
    assert_eq!(cp.local_api_endpoint.advertise_address, "10.0.0.12");
    assert_eq!(cp.local_api_endpoint.bind_port, 6443);
    // Its keys are pre-placed: no download from the short-lived kubeadm-certs Secret.
    assert_eq!(cp.certificate_key, None);
    assert!(join_of(&worker_text).control_plane.is_none());
}

#[test]
fn control_plane_without_shared_keys_downloads_them() {
    let mut shape: crate::cluster::settings::Shape = fixtures::settings("10.0.0.12").into();
    shape.service_account = None;
    let settings = ClusterSettings::try_from(shape).unwrap_or_else(|e| panic!("{e}"));
    let text = kubeadm_config(&settings, &facts("cp-2", None), Plan::JoinControlPlane);
    let cp = join_of(&text).control_plane.and_then(|c| c.certificate_key);
    assert_eq!(cp.as_deref(), Some(CERT_KEY));
}

#[test]
fn optional_inputs_change_only_their_fields() {
    let mut shape: crate::cluster::settings::Shape = fixtures::settings("fd00::11").into();
    shape.kubernetes_version = None;
    shape.certificate_key = None;
    shape.cert_validity_hours = 8760;
    shape.control_planes[0].address = "fd00::11"
        .parse::<IpAddr>()
        .unwrap_or_else(|e| panic!("{e}"));
    let settings = ClusterSettings::try_from(shape).unwrap_or_else(|e| panic!("{e}"));
    let docs = read_back(&kubeadm_config(
        &settings,
        &facts("cp-1", Some("fd00::100")),
        Plan::Init,
    ));
    let (Some(Doc::Init(init)), Some(Doc::Cluster(cluster)), Some(Doc::KubeProxy(proxy))) =
        (docs.first(), docs.get(1), docs.get(3))
    else {
        panic!("{docs:?}")
    };
    assert_eq!(init.certificate_key, None);
    assert_eq!(cluster.kubernetes_version, None);
    assert_eq!(cluster.certificate_validity_period, "8760h0m0s");
    assert_eq!(
        cluster.controller_manager.extra_args,
        [arg_of("cluster-signing-duration", "8760h")]
    );
    assert_eq!(
        cluster.etcd.external.endpoints[0],
        "https://[fd00::11]:2379"
    );
    assert_eq!(
        cluster.api_server.cert_sans[2..4],
        ["fd00::100", "fd00::11"]
    );
    let exclude = proxy.ipvs.as_ref().map(|i| i.exclude_cidrs.clone());
    assert_eq!(exclude, Some(vec!["fd00::100/128".to_string()]));

    let no_vip = read_back(&kubeadm_config(&settings, &facts("cp-1", None), Plan::Init));
    let Some(Doc::KubeProxy(proxy)) = no_vip.get(3) else {
        panic!("{no_vip:?}")
    };
    assert!(proxy.ipvs.is_none());
}
