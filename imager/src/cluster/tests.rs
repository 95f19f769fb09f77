use std::net::IpAddr;

use kiln_init::config::{assemble, NodeConfig, Sources};

use super::secrets::Secrets;
use super::topology::LbCheck;
use super::*;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    ok(s.parse())
}

fn opts() -> GenOptions {
    GenOptions {
        name: "dev".into(),
        control_planes: vec!["10.0.0.11,10.0.0.12".into(), "10.0.0.13".into()],
        workers: vec!["10.0.0.21".into()],
        kubernetes_version: Some("v1.34.2".into()),
        gateway: Some("10.0.0.1".into()),
        dhcp_interfaces: vec!["eth1".into()],
        ..GenOptions::default()
    }
}

/// A cluster file with real secrets (CA validity short: only the structure matters here).
fn cluster_file(o: &GenOptions) -> ClusterFile {
    let cluster = ok(Topology::from_options(o));
    ClusterFile {
        secrets: ok(Secrets::generate(cluster.ca_validity_hours)),
        cluster,
    }
}

fn parse_seed(files: &node::NodeFiles) -> NodeConfig {
    let src = Sources {
        user_data: Some(files.user_data.clone().into_bytes()),
        meta_data: Some(files.meta_data.clone().into_bytes()),
        network_config: Some(files.network_config.clone().into_bytes()),
        ..Sources::default()
    };
    ok(assemble(&src, "cidata"))
}

fn parse_toml(files: &node::NodeFiles) -> NodeConfig {
    let src = Sources {
        kiln_toml: Some(files.kiln_toml.clone().into_bytes()),
        ..Sources::default()
    };
    ok(assemble(&src, "kiln"))
}

#[test]
fn options_become_named_nodes() {
    let t = ok(Topology::from_options(&opts()));
    let names: Vec<(&str, Role, IpAddr)> = t
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role, n.address))
        .collect();
    assert_eq!(
        names,
        [
            ("cp-1", Role::ControlPlane, ip("10.0.0.11")),
            ("cp-2", Role::ControlPlane, ip("10.0.0.12")),
            ("cp-3", Role::ControlPlane, ip("10.0.0.13")),
            ("worker-1", Role::Worker, ip("10.0.0.21")),
        ]
    );
    assert_eq!(t.control_planes.len(), 3);
    assert_eq!(t.control_planes[1].name.as_str(), "cp-2");
    assert_eq!(
        (t.ca_validity_hours, t.cert_validity_hours),
        (876_000, 876_000)
    );
    assert_eq!(t.lb_check, LbCheck::Https);
    let next = ok(topology::next_name(&t.nodes, Role::ControlPlane));
    assert_eq!(next.as_str(), "cp-4");
    let short = GenOptions {
        ca_validity_hours: "100".into(),
        ..opts()
    };
    assert_eq!(ok(Topology::from_options(&short)).cert_validity_hours, 100);
}

#[test]
fn bad_options_are_refused_with_the_cause() {
    type Edit = fn(&mut GenOptions);
    let cases: [(Edit, &str); 20] = [
        (|o| o.name = "Dev_1".into(), "invalid name"),
        (|o| o.name = String::new(), "invalid name"),
        (
            |o| o.kubernetes_version = Some("1.34".into()),
            "invalid version",
        ),
        (|o| o.control_planes.clear(), "no control planes"),
        (|o| o.control_planes = vec![",".into()], "no control planes"),
        (
            |o| o.control_planes.push("10.0.0.x".into()),
            "not an IP address",
        ),
        (
            |o| o.workers.push("10.0.0.12".into()),
            "10.0.0.12 is used twice (cp-2 and worker-2)",
        ),
        (
            |o| o.control_planes.push("10.0.0.11".into()),
            "used twice (cp-1 and cp-4)",
        ),
        (
            |o| o.workers.push("10.103.97.2".into()),
            "used twice (the VIP and worker-2)",
        ),
        (
            |o| o.workers.push("10.244.1.5".into()),
            "lies in the pod CIDR 10.244.0.0/16",
        ),
        (
            |o| o.workers.push("10.96.0.10".into()),
            "lies in the service CIDR",
        ),
        (
            |o| o.vip = "224.0.0.1".into(),
            "the VIP address 224.0.0.1 is not a usable",
        ),
        (
            |o| o.pod_cidr = "10.96.0.0/16".into(),
            "overlaps service CIDR",
        ),
        (
            |o| o.prefix = "33".into(),
            "invalid prefix \"33\": expected 1-32",
        ),
        (|o| o.prefix = "x".into(), "invalid prefix"),
        (
            |o| o.workers.push("fd00::1".into()),
            "not of the VIP's address family",
        ),
        (
            |o| o.workers.push("127.0.0.1".into()),
            "not a usable unicast address",
        ),
        (
            |o| o.gateway = Some("10.0.1.1".into()),
            "gateway 10.0.1.1 is not on cp-1's network",
        ),
        (
            |o| o.dhcp_interfaces.push("eth0".into()),
            "interface eth0 is listed twice",
        ),
        (|o| o.lb_check = "http".into(), "expected https or tcp"),
    ];
    for (edit, want) in cases {
        let mut o = opts();
        edit(&mut o);
        let Err(e) = Topology::from_options(&o) else {
            panic!("accepted, wanted {want:?}: {o:?}")
        };
        let text = e.to_string();
        assert!(text.contains(want), "{want:?} not in {text:?}");
        assert!(!text.contains('\n'), "{text:?}");
    }
    for hours in ["0", "-1", "many"] {
        let o = GenOptions {
            ca_validity_hours: hours.into(),
            ..opts()
        };
        assert!(Topology::from_options(&o).is_err(), "{hours}");
    }
}

#[test]
fn tokens_and_keys_have_kubeadms_shapes() {
    let a = ok(secrets::bootstrap_token());
    let b = ok(secrets::bootstrap_token());
    assert_ne!(a.as_str(), b.as_str());
    let (id, secret) = a.as_str().split_once('.').unwrap_or_default();
    assert_eq!((id.len(), secret.len()), (6, 16));
    let k = ok(secrets::certificate_key());
    assert_eq!(k.as_str().len(), 64);
    assert!(k.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn secrets_file_round_trips_and_is_checked_when_read() {
    let file = cluster_file(&opts());
    let text = ok(file.to_toml());
    let back = ok(ClusterFile::parse(
        &text,
        std::path::Path::new("secrets.toml"),
    ));
    assert_eq!(back, file);
    let typo = text.replace("pod_cidr", "pod_cdir");
    let Err(e) = ClusterFile::parse(&typo, std::path::Path::new("s.toml")) else {
        panic!("accepted a typo")
    };
    let msg = e.to_string();
    assert!(msg.starts_with("s.toml: unknown field `pod_cdir`"), "{msg}");
    assert!(msg.contains(" at line ") && !msg.contains('\n'), "{msg}");
    let dup = text.replace("address = \"10.0.0.21\"", "address = \"10.0.0.11\"");
    let Err(e) = ClusterFile::parse(&dup, std::path::Path::new("s.toml")) else {
        panic!("accepted a duplicate")
    };
    assert!(e.to_string().contains("used twice"), "{e}");
}

#[test]
fn control_plane_seed_parses_with_inits_parser() {
    let file = cluster_file(&opts());
    let cp2 = &file.cluster.nodes[1];
    let files = ok(node::render(&file, cp2));
    assert!(files.user_data.starts_with("#cloud-config\n"));
    let cfg = parse_seed(&files);
    assert_eq!(cfg.hostname.as_ref().map(|h| h.as_str()), Some("cp-2"));
    assert_eq!(cfg.instance_id, files.instance_id);
    assert!(
        cfg.instance_id.starts_with("dev-cp-2-"),
        "{}",
        cfg.instance_id
    );
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    assert_eq!(cfg.kiln.role, Role::ControlPlane);
    assert!(cfg.kiln.lb.is_none() && !cfg.kiln.debug_exec);
    let Some(c) = &cfg.kiln.cluster else {
        panic!("no cluster block")
    };
    assert_eq!(c.address, ip("10.0.0.12"));
    assert_eq!(c.initial_member().map(|m| m.name.as_str()), Some("cp-2"));
    assert_eq!(c.control_planes, file.cluster.control_planes);
    assert_eq!(
        c.kubernetes_version.as_ref().map(|v| v.to_string()),
        Some("v1.34.2".into())
    );
    assert_eq!(c.ca.key.as_ref(), Some(&file.secrets.ca.key));
    assert_eq!(
        c.etcd_ca.as_ref().and_then(|e| e.key.clone()),
        Some(file.secrets.etcd_ca.key.clone())
    );
    assert!(c.front_proxy_ca.as_ref().is_some_and(|f| f.key.is_some()));
    assert_eq!(
        c.service_account.as_ref(),
        Some(&file.secrets.service_account)
    );
    assert!(c.certificate_key.is_some());
    let net = &cfg.network.interfaces;
    assert_eq!(net.len(), 2);
    assert_eq!(
        net[0].r#match.name.as_ref().map(|n| n.as_str()),
        Some("eth0")
    );
    assert_eq!(net[0].addresses[0].to_string(), "10.0.0.12/24");
    assert_eq!(net[0].gateway4.map(IpAddr::V4), Some(ip("10.0.0.1")));
    assert!(net[1].dhcp4 && net[1].addresses.is_empty());
    // kiln.toml says the same.
    let native = parse_toml(&files);
    assert_eq!(native.kiln, cfg.kiln);
    assert_eq!(native.network, cfg.network);
    assert_eq!(
        (native.hostname, native.instance_id),
        (cfg.hostname, cfg.instance_id)
    );
}

#[test]
fn worker_seed_gets_the_lb_and_only_the_ca_certificate() {
    let o = GenOptions {
        debug_exec: true,
        ..opts()
    };
    let file = cluster_file(&o);
    let worker = &file.cluster.nodes[3];
    let files = ok(node::render(&file, worker));
    let cfg = parse_seed(&files);
    assert_eq!(cfg.kiln.role, Role::Worker);
    assert!(cfg.kiln.debug_exec);
    let Some(c) = &cfg.kiln.cluster else {
        panic!("no cluster block")
    };
    assert_eq!(c.address, ip("10.0.0.21"));
    assert!(c.initial_member().is_none());
    assert_eq!(c.ca.cert, file.secrets.ca.cert);
    assert!(c.ca.key.is_none() && c.etcd_ca.is_none() && c.front_proxy_ca.is_none());
    assert!(c.service_account.is_none() && c.certificate_key.is_none());
    assert_eq!(c.bootstrap_token, file.secrets.bootstrap_token);
    let Some(lb) = &cfg.kiln.lb else {
        panic!("no lb block")
    };
    assert_eq!(lb.vip, "10.103.97.2");
    assert_eq!(
        lb.backends,
        ["10.0.0.11:6443", "10.0.0.12:6443", "10.0.0.13:6443"]
    );
    assert_eq!(lb.check.kind, "https");
    assert_eq!(lb.check.ca.as_deref(), Some(node::CLUSTER_CA_PATH));
    let [ca_file] = cfg.write_files.as_slice() else {
        panic!("write_files: {:?}", cfg.write_files)
    };
    assert_eq!(ca_file.path.as_str(), node::CLUSTER_CA_PATH);
    assert_eq!(ca_file.content, file.secrets.ca.cert.as_str().as_bytes());
    let native = parse_toml(&files);
    assert_eq!(
        (native.kiln, native.write_files),
        (cfg.kiln, cfg.write_files)
    );

    let tcp = GenOptions {
        lb_check: "tcp".into(),
        ..opts()
    };
    let file = cluster_file(&tcp);
    let cfg = parse_seed(&ok(node::render(&file, &file.cluster.nodes[3])));
    assert_eq!(
        cfg.kiln.lb.map(|l| (l.check.kind, l.check.ca)),
        Some(("tcp".into(), None))
    );
    assert!(cfg.write_files.is_empty());
}

#[test]
fn ipv6_clusters_route_through_the_gateway() {
    let o = GenOptions {
        control_planes: vec!["fd00::11".into()],
        workers: vec!["fd00::21".into()],
        vip: "fd00:1::2".into(),
        prefix: "64".into(),
        gateway: Some("fd00::1".into()),
        dhcp_interfaces: Vec::new(),
        pod_cidr: "fd10::/56".into(),
        service_cidr: "fd20::/112".into(),
        ..opts()
    };
    let file = cluster_file(&o);
    let cfg = parse_seed(&ok(node::render(&file, &file.cluster.nodes[1])));
    let iface = &cfg.network.interfaces[0];
    assert_eq!(iface.addresses[0].to_string(), "fd00::21/64");
    assert_eq!(iface.routes[0].to.to_string(), "::/0");
    assert_eq!(iface.routes[0].via, ip("fd00::1"));
    assert_eq!(
        cfg.kiln.lb.map(|l| l.backends),
        Some(vec!["[fd00::11]:6443".to_string()])
    );
}
