//! `kiln cluster gen` / `kiln cluster add` end to end, through the built binary: the file
//! set and modes, every seed parsed back with init's own config parser, certificates
//! checked with openssl, seed images with fsck.fat and mtools, and every bad input
//! leaving nothing behind. Tools that are missing print `skipped: …` (and fail under
//! `CI=true`).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_imager::cluster::ClusterFile;
use kiln_init::config::{assemble, NodeConfig, Role, Sources};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh, empty folder for one case.
fn case_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cluster-gen")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    ok(std::fs::create_dir_all(&dir));
    dir
}

fn kiln(args: &[&str]) -> Output {
    ok(Command::new(KILN).args(args).output())
}

/// `kiln cluster gen` for cluster `dev` (3 control planes, 1 worker, gateway 10.0.0.1);
/// an option in `extra` replaces the default of the same name.
fn gen(out: &Path, extra: &[&str]) -> Output {
    let out = out.to_string_lossy();
    let defaults = [
        ("--name", "dev"),
        ("--control-plane", "10.0.0.11,10.0.0.12,10.0.0.13"),
        ("--worker", "10.0.0.21"),
        ("--gateway", "10.0.0.1"),
    ];
    let mut args = vec!["cluster", "gen", "--out", &out];
    for (key, value) in defaults {
        if !extra.contains(&key) {
            args.extend([key, value]);
        }
    }
    args.extend_from_slice(extra);
    kiln(&args)
}

fn succeeded(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "kiln failed: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The failure contract: exit 1, one stderr line `kiln: error: …` naming `cause`.
fn failed(o: &Output, cause: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kiln: error: ") && err.contains(cause),
        "{cause:?} not in {err}"
    );
}

/// Whether `tool` runs; otherwise the visible skip of STYLE rule 12.
fn have(tool: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok()
    {
        return true;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "{tool} missing in CI"
    );
    println!("skipped: {tool} missing");
    false
}

fn sh(cmd: &str, dir: &Path) -> String {
    let o = ok(Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output());
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd}: {}{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

fn mode(p: &Path) -> u32 {
    ok(std::fs::metadata(p)).permissions().mode() & 0o777
}

/// Every path under `root` (relative) with its mode.
fn tree(root: &Path) -> BTreeSet<(String, u32)> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in ok(std::fs::read_dir(&dir)) {
            let p = ok(e).path();
            let rel = ok(p.strip_prefix(root)).to_string_lossy().into_owned();
            out.insert((rel, mode(&p)));
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

/// Parses the seed of `node` exactly as init does with a NoCloud volume.
fn parse_seed(dir: &Path) -> NodeConfig {
    let read = |n: &str| Some(ok(std::fs::read(dir.join(n))));
    let src = Sources {
        user_data: read("user-data"),
        meta_data: read("meta-data"),
        network_config: read("network-config"),
        ..Sources::default()
    };
    ok(assemble(&src, "cidata"))
}

#[test]
fn gen_writes_private_files_for_every_node() {
    let root = case_dir("files");
    let out = root.join("cluster");
    let stdout = succeeded(&gen(&out, &[]));
    assert!(stdout.contains("worker-1"), "{stdout}");
    let mut want: BTreeSet<(String, u32)> = [
        ("secrets.toml", 0o600),
        ("admin.conf", 0o600),
        ("nodes", 0o700),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m))
    .collect();
    for node in ["cp-1", "cp-2", "cp-3", "worker-1"] {
        want.insert((format!("nodes/{node}"), 0o700));
        for f in [
            "user-data",
            "meta-data",
            "network-config",
            "kiln.toml",
            "seed.img",
        ] {
            want.insert((format!("nodes/{node}/{f}"), 0o600));
        }
    }
    assert_eq!(tree(&out), want);
    assert_eq!(mode(&out), 0o700);
    let leftovers: Vec<_> = ok(std::fs::read_dir(&root))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["cluster"], "temporary folders left behind");
}

#[test]
fn every_seed_parses_with_inits_parser() {
    let out = case_dir("parse").join("cluster");
    succeeded(&gen(&out, &["--debug-exec", "--k8s-version", "v1.34.2"]));
    let file = ok(ClusterFile::load(&out.join("secrets.toml")));
    assert_eq!(file.cluster.nodes.len(), 4);
    let members: Vec<(String, String)> = file
        .cluster
        .control_planes
        .iter()
        .map(|m| (m.name.to_string(), m.address.to_string()))
        .collect();
    assert_eq!(
        members,
        [
            ("cp-1", "10.0.0.11"),
            ("cp-2", "10.0.0.12"),
            ("cp-3", "10.0.0.13")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for node in &file.cluster.nodes {
        let dir = out.join("nodes").join(node.name.as_str());
        let cfg = parse_seed(&dir);
        assert_eq!(
            cfg.hostname.as_ref().map(|h| h.as_str()),
            Some(node.name.as_str())
        );
        assert!(
            cfg.instance_id.starts_with(&format!("dev-{}-", node.name)),
            "{}",
            cfg.instance_id
        );
        assert_eq!(cfg.kiln.role, node.role);
        assert!(cfg.kiln.debug_exec);
        let Some(c) = &cfg.kiln.cluster else {
            panic!("{}: no cluster block", node.name)
        };
        assert_eq!(c.address, node.address);
        assert_eq!(c.control_planes, file.cluster.control_planes);
        assert_eq!(c.bootstrap_token, file.secrets.bootstrap_token);
        let iface = &cfg.network.interfaces[0];
        assert_eq!(
            iface.addresses[0].to_string(),
            format!("{}/24", node.address)
        );
        assert_eq!(
            iface.gateway4.map(|g| g.to_string()).as_deref(),
            Some("10.0.0.1")
        );
        match node.role {
            Role::ControlPlane => {
                assert!(cfg.kiln.lb.is_none());
                assert!(c.ca.key.is_some() && c.etcd_ca.is_some() && c.service_account.is_some());
            }
            _ => {
                let backends = cfg.kiln.lb.as_ref().map(|l| l.backends.clone());
                assert_eq!(
                    backends,
                    Some(
                        ["10.0.0.11:6443", "10.0.0.12:6443", "10.0.0.13:6443"]
                            .map(String::from)
                            .to_vec()
                    )
                );
                assert!(c.ca.key.is_none() && c.etcd_ca.is_none() && c.service_account.is_none());
            }
        }
        // kiln.toml carries the same node config.
        let src = Sources {
            kiln_toml: Some(ok(std::fs::read(dir.join("kiln.toml")))),
            ..Sources::default()
        };
        let native = ok(assemble(&src, "kiln"));
        assert_eq!(
            (&native.kiln, &native.network, &native.instance_id),
            (&cfg.kiln, &cfg.network, &cfg.instance_id)
        );
    }
}

#[test]
fn seed_images_are_cidata_volumes_checked_by_dosfstools_and_mtools() {
    if !have("fsck.fat") || !have("mtype") {
        return;
    }
    let out = case_dir("seed").join("cluster");
    succeeded(&gen(&out, &[]));
    let dir = out.join("nodes/worker-1");
    let fsck = sh("fsck.fat -n seed.img", &dir);
    assert!(fsck.contains("4 files"), "{fsck}");
    let listing = sh("mdir -i seed.img ::", &dir);
    assert!(listing.contains("Volume in drive : is CIDATA"), "{listing}");
    for name in ["user-data", "meta-data", "network-config"] {
        assert!(listing.contains(name), "{name} not in {listing}");
        let inside = sh(&format!("mtype -i seed.img ::{name}"), &dir);
        assert_eq!(
            inside,
            ok(std::fs::read_to_string(dir.join(name))),
            "{name}"
        );
    }
    assert!(!listing.contains("kiln.toml"), "{listing}");
}

/// The parts of a kubeconfig the test reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeConfig {
    current_context: String,
    clusters: Vec<KcCluster>,
    users: Vec<KcUser>,
}

#[derive(serde::Deserialize)]
struct KcCluster {
    name: String,
    cluster: KcClusterData,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KcClusterData {
    certificate_authority_data: String,
}

#[derive(serde::Deserialize)]
struct KcUser {
    name: String,
    user: KcUserData,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KcUserData {
    client_certificate_data: String,
}

#[test]
fn certificates_check_out_with_openssl() {
    if !have("openssl") {
        return;
    }
    let root = case_dir("openssl");
    let out = root.join("cluster");
    succeeded(&gen(&out, &[]));
    let file = ok(ClusterFile::load(&out.join("secrets.toml")));
    let s = &file.secrets;
    for (name, text) in [
        ("ca.crt", s.ca.cert.as_str()),
        ("ca.key", s.ca.key.as_str()),
        ("etcd-ca.crt", s.etcd_ca.cert.as_str()),
        ("front-proxy-ca.crt", s.front_proxy_ca.cert.as_str()),
        ("sa.key", s.service_account.private.as_str()),
        ("sa.pub", s.service_account.public.as_str()),
    ] {
        ok(std::fs::write(root.join(name), text));
    }
    let this_year: i32 = ok(sh("date -u +%Y", &root).trim().parse());
    for (crt, cn) in [
        ("ca.crt", "kubernetes"),
        ("etcd-ca.crt", "etcd-ca"),
        ("front-proxy-ca.crt", "front-proxy-ca"),
    ] {
        let text = sh(&format!("openssl x509 -noout -text -in {crt}"), &root);
        assert!(text.contains(&format!("Subject: CN = {cn}")), "{text}");
        assert!(
            text.contains("CA:TRUE") && text.contains("Certificate Sign, CRL Sign"),
            "{text}"
        );
        let end = sh(&format!("openssl x509 -noout -enddate -in {crt}"), &root);
        let year: i32 = ok(end.split_whitespace().rev().nth(1).unwrap_or("").parse());
        assert!((year - this_year - 100).abs() <= 1, "{crt}: {end}");
    }
    assert_eq!(
        sh("openssl pkey -in sa.key -pubout", &root),
        sh("openssl pkey -pubin -in sa.pub", &root)
    );
    assert_eq!(
        sh("openssl pkey -in ca.key -pubout", &root),
        sh("openssl x509 -noout -pubkey -in ca.crt", &root)
    );
    // admin.conf: the embedded CA is the cluster CA and the client certificate verifies.
    let conf = ok(std::fs::read_to_string(out.join("admin.conf")));
    assert!(
        conf.contains("server: https://apiserver.cluster.local:6443"),
        "{conf}"
    );
    let kc: KubeConfig = ok(serde_saphyr::from_str(&conf));
    assert_eq!(kc.current_context, "kubernetes-admin@dev");
    let ([cluster], [user]) = (kc.clusters.as_slice(), kc.users.as_slice()) else {
        panic!("not one cluster and one user: {conf}")
    };
    assert_eq!(
        (cluster.name.as_str(), user.name.as_str()),
        ("dev", "kubernetes-admin")
    );
    let ca_b64 = &cluster.cluster.certificate_authority_data;
    ok(std::fs::write(
        root.join("admin.b64"),
        &user.user.client_certificate_data,
    ));
    ok(std::fs::write(root.join("conf-ca.b64"), ca_b64));
    sh(
        "base64 -d admin.b64 > admin.crt && base64 -d conf-ca.b64 > conf-ca.crt",
        &root,
    );
    assert_eq!(sh("cat conf-ca.crt", &root), s.ca.cert.as_str());
    assert_eq!(
        sh("openssl verify -CAfile ca.crt admin.crt", &root).trim(),
        "admin.crt: OK"
    );
    let admin = sh("openssl x509 -noout -text -in admin.crt", &root);
    assert!(
        admin.contains("Subject: O = kubeadm:cluster-admins, CN = kubernetes-admin"),
        "{admin}"
    );
    assert!(
        admin.contains("TLS Web Client Authentication") && admin.contains("CA:FALSE"),
        "{admin}"
    );
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let root = case_dir("bad");
    let cases: [(&[&str], &str); 13] = [
        (
            &["--worker", "10.0.0.12"],
            "address 10.0.0.12 is used twice (cp-2 and worker-1)",
        ),
        (
            &["--worker", "10.103.97.2"],
            "used twice (the VIP and worker-1)",
        ),
        (&["--vip", "10.0.0.11"], "used twice (the VIP and cp-1)"),
        (
            &["--worker", "10.244.3.3"],
            "lies in the pod CIDR 10.244.0.0/16",
        ),
        (
            &["--worker", "10.96.0.1"],
            "lies in the service CIDR 10.96.0.0/16",
        ),
        (
            &["--service-cidr", "10.96.0.0/12"],
            "the VIP address 10.103.97.2 lies in the service CIDR 10.96.0.0/12",
        ),
        (
            &["--pod-cidr", "10.96.0.0/16"],
            "pod CIDR 10.96.0.0/16 overlaps service CIDR",
        ),
        (&["--k8s-version", "1.34.2"], "invalid version \"1.34.2\""),
        (&["--name", "Dev_Cluster"], "invalid name \"Dev_Cluster\""),
        (&["--prefix", "40"], "invalid prefix \"40\""),
        (&["--prefix", "0"], "invalid prefix \"0\""),
        (
            &["--gateway", "192.168.1.1"],
            "gateway 192.168.1.1 is not on cp-1's network",
        ),
        (&["--ca-validity-hours", "0"], "invalid CA validity"),
    ];
    for (i, (extra, cause)) in cases.into_iter().enumerate() {
        let out = root.join(format!("out-{i}"));
        failed(&gen(&out, extra), cause);
        assert!(!out.exists(), "{cause}: output written");
    }
    let out = root.join("no-cp");
    let o = kiln(&[
        "cluster",
        "gen",
        "--name",
        "dev",
        "--control-plane",
        "",
        "--out",
        &out.to_string_lossy(),
    ]);
    failed(&o, "no control planes");
    assert!(!out.exists());
    // An existing non-empty --out is left alone; an empty one is used.
    let full = root.join("full");
    ok(std::fs::create_dir(&full));
    ok(std::fs::write(full.join("keep"), "x"));
    failed(
        &gen(&full, &[]),
        "already exists and is not an empty folder",
    );
    assert_eq!(tree(&full).len(), 1);
    let empty = root.join("empty");
    ok(std::fs::create_dir(&empty));
    succeeded(&gen(&empty, &[]));
    assert!(empty.join("secrets.toml").exists());
    let names: Vec<String> = ok(std::fs::read_dir(&root))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("kiln-tmp")), "{names:?}");
}

#[test]
fn add_writes_one_more_node_and_records_it() {
    let out = case_dir("add").join("cluster");
    succeeded(&gen(&out, &[]));
    let dir = out.to_string_lossy().into_owned();
    let before = ok(std::fs::read(out.join("secrets.toml")));
    for (args, cause) in [
        (["--worker", "10.0.0.13"], "used twice (cp-3 and worker-2)"),
        (["--control-plane", "10.96.0.5"], "lies in the service CIDR"),
        (["--worker", "10.0.0.300"], "invalid address \"10.0.0.300\""),
    ] {
        failed(
            &kiln(&["cluster", "add", "--dir", &dir, args[0], args[1]]),
            cause,
        );
        assert_eq!(
            ok(std::fs::read(out.join("secrets.toml"))),
            before,
            "{cause}"
        );
        assert_eq!(tree(&out.join("nodes")).len(), 4 * 6, "{cause}");
    }
    failed(
        &kiln(&[
            "cluster",
            "add",
            "--dir",
            "/nonexistent/kiln",
            "--worker",
            "10.0.0.22",
        ]),
        "read /nonexistent/kiln/secrets.toml",
    );

    succeeded(&kiln(&[
        "cluster",
        "add",
        "--dir",
        &dir,
        "--worker",
        "10.0.0.22",
    ]));
    succeeded(&kiln(&[
        "cluster",
        "add",
        "--dir",
        &dir,
        "--control-plane",
        "10.0.0.14",
    ]));
    let file = ok(ClusterFile::load(&out.join("secrets.toml")));
    let names: Vec<&str> = file.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2", "cp-4"]
    );
    assert_eq!(file.cluster.control_planes.len(), 3);
    assert_eq!(mode(&out.join("secrets.toml")), 0o600);

    let w2 = parse_seed(&out.join("nodes/worker-2"));
    assert_eq!(w2.kiln.role, Role::Worker);
    assert_eq!(
        w2.kiln
            .cluster
            .as_ref()
            .map(|c| c.address.to_string())
            .as_deref(),
        Some("10.0.0.22")
    );
    let cp4 = parse_seed(&out.join("nodes/cp-4"));
    let Some(c) = &cp4.kiln.cluster else {
        panic!("cp-4: no cluster block")
    };
    assert_eq!(c.address.to_string(), "10.0.0.14");
    assert_eq!(
        c.control_planes, file.cluster.control_planes,
        "joins the initial members"
    );
    assert!(c.initial_member().is_none());
    assert_eq!(c.ca.cert, file.secrets.ca.cert);
    // A worker added now also balances over the new control plane.
    succeeded(&kiln(&[
        "cluster",
        "add",
        "--dir",
        &dir,
        "--worker",
        "10.0.0.23",
    ]));
    let w3 = parse_seed(&out.join("nodes/worker-3"));
    assert_eq!(w3.kiln.lb.map(|l| l.backends.len()), Some(4));
}
