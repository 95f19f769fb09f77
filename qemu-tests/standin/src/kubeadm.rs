//! kube-standin `kubeadm` (NOT Kubernetes): `init --config F`, `join --config F` (in
//! [`super::join`]) and `version [-o short|json]`, with kubeadm 1.34's flags and phase
//! names. `init` validates the config, runs the file preflight checks, signs the API
//! server certificate with the CA on disk, writes kubeconfigs, kubelet files and marker
//! static Pods, waits for the kubelet's healthz and the API server's `/readyz` (served by
//! the stand-in kubelet), then publishes cluster-info / kubeadm-config / kubelet-config.
//!
//! Not emulated: etcd (external or local: nothing is checked beyond the files), addons,
//! RBAC, token TTLs, `dryRun` (validates and stops), `patches`, `--upload-certs` (the key
//! is printed, nothing is uploaded). The waits default to 60 s (kubeadm: 4m) unless
//! `timeouts` says otherwise.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use ring::rand::SecureRandom as _;
use serde_json::{json, Value};

use super::checks::{self, Findings};
use super::config::{self, Docs};
use super::cpfiles::{self, Cluster, Node};
use super::flags::{self, flag, Kind, Spec, VERBOSITY};
use super::preflight::{skip_phases, Preflight};
use super::v1beta4::Timeouts;
use super::{join, Call, Root, BANNER, VERSION};
use super::{pki, probe};

pub const INIT_FLAGS: &[Spec] = &[
    flag("config", None, Kind::Value),
    flag("upload-certs", None, Kind::Bool),
    // Real `kubeadm init` flags (they keep the token and key out of the output).
    flag("skip-token-print", None, Kind::Bool),
    flag("skip-certificate-key-print", None, Kind::Bool),
    flag("ignore-preflight-errors", None, Kind::Value),
    flag("skip-phases", None, Kind::Value),
    VERBOSITY,
];
pub const JOIN_FLAGS: &[Spec] = &[
    flag("config", None, Kind::Value),
    flag("ignore-preflight-errors", None, Kind::Value),
    VERBOSITY,
];
const VERSION_FLAGS: &[Spec] = &[flag("output", Some('o'), Kind::Value), VERBOSITY];
const ALL_FLAGS: &[Spec] = &[
    flag("config", None, Kind::Value),
    flag("upload-certs", None, Kind::Bool),
    flag("skip-token-print", None, Kind::Bool),
    flag("skip-certificate-key-print", None, Kind::Bool),
    flag("ignore-preflight-errors", None, Kind::Value),
    flag("skip-phases", None, Kind::Value),
    flag("output", Some('o'), Kind::Value),
    VERBOSITY,
];

pub const INIT_PHASES: &[&str] = &[
    "preflight",
    "certs",
    "kubeconfig",
    "etcd",
    "control-plane",
    "kubelet-start",
    "wait-control-plane",
    "upload-config",
    "upload-certs",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "show-join-command",
];
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

pub fn run(root: &Root, args: &[String], call: &mut Call) -> Result<()> {
    let first = flags::parse(args, ALL_FLAGS)?;
    let sub = first.args.first().map(String::as_str);
    let specs = match sub {
        Some("init") => INIT_FLAGS,
        Some("join") => JOIN_FLAGS,
        Some("version") => VERSION_FLAGS,
        Some(other) => {
            bail!("unknown command {other:?} for \"kubeadm\" ({BANNER} knows init, join, version)")
        }
        None => bail!("{BANNER} kubeadm: a subcommand is required: init, join or version"),
    };
    let parsed = flags::parse(args, specs)?;
    if parsed.args.len() > 1 {
        bail!(
            "can not mix '--config' with arguments {:?}",
            &parsed.args[1..]
        );
    }
    match sub {
        Some("init") => init(root, &parsed, call),
        Some("join") => join::run(root, &parsed, call),
        _ => version(parsed.get("output")),
    }
}

fn version(output: Option<&str>) -> Result<()> {
    match output {
        Some("short") => println!("{VERSION}"),
        Some("json") => println!("{}", json!({"clientVersion": {"major": "1", "minor": "34", "gitVersion": VERSION, "platform": "linux/amd64"}})),
        None => println!("kubeadm version: &version.Info{{Major:\"1\", Minor:\"34\", GitVersion:\"{VERSION}\", Platform:\"linux/amd64\"}} ({BANNER})"),
        Some(other) => bail!("error: invalid output format: {other}"),
    }
    Ok(())
}

/// Reads and parses `--config`, records it, and applies `check`.
pub fn load_config(
    root: &Root,
    parsed: &flags::Parsed,
    call: &mut Call,
    check: impl Fn(&Docs) -> Findings,
) -> Result<Docs> {
    let path = parsed
        .get("config")
        .ok_or_else(|| anyhow!("{BANNER} kubeadm needs --config (it has no defaults)"))?;
    let text = root
        .read(path)
        .map_err(|e| anyhow!("unable to read config from {path:?}: {e:#}"))?;
    let docs =
        config::parse(&text).map_err(|e| anyhow!("unable to read config from {path:?}: {e:#}"))?;
    call.config = Some(Value::Array(docs.json.clone()));
    let findings = check(&docs);
    for w in findings.warnings {
        call.warn(format!("[config] {w}"));
    }
    if !findings.errors.is_empty() {
        bail!(
            "invalid configuration in {path:?}:\n\t{}",
            findings.errors.join("\n\t")
        );
    }
    Ok(docs)
}

pub fn wait_for(timeouts: Option<&Timeouts>) -> (Duration, Duration) {
    let pick = |d: Option<&super::duration::GoDuration>| {
        d.and_then(|d| d.positive()).unwrap_or(DEFAULT_WAIT)
    };
    let t = timeouts.cloned().unwrap_or_default();
    (
        pick(t.kubelet_health_check.as_ref()),
        pick(t.control_plane_component_health_check.as_ref()),
    )
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_lowercase()
}

/// The JSON of the document of `kind` in the file.
pub fn doc_json<'a>(docs: &'a Docs, kind: &str) -> Option<&'a Value> {
    docs.json.iter().find(|d| d["kind"] == kind)
}

fn init(root: &Root, parsed: &flags::Parsed, call: &mut Call) -> Result<()> {
    println!("{BANNER}: kubeadm init");
    let docs = load_config(root, parsed, call, |d| checks::init(d, root))?;
    let (Some(init), Some(cc)) = (&docs.init, &docs.cluster) else {
        bail!("InitConfiguration and ClusterConfiguration are required");
    };
    let skip = skip_phases(
        parsed.get("skip-phases"),
        init.skip_phases.as_ref(),
        INIT_PHASES,
    )?;
    let nr = init.node_registration.clone().unwrap_or_default();
    let ep = init.local_api_endpoint.clone().unwrap_or_default();
    let node = Node {
        name: nr.name.clone().unwrap_or_else(hostname),
        advertise: ep
            .advertise_address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok()),
        bind_port: ep
            .bind_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(6443),
        cri_socket: nr.cri_socket.clone(),
        kubelet_extra_args: nr.kubelet_extra_args.clone().unwrap_or_default(),
    };
    let cluster = Cluster::from_config(cc, node.bind_port)?;
    println!("[init] Using Kubernetes version: {}", cluster.version);
    if init.dry_run == Some(true) {
        println!("[dryrun] {BANNER}: configuration valid; dryRun set, nothing written");
        return Ok(());
    }
    if !skip.iter().any(|p| p == "preflight") {
        let mut pf = Preflight::new(
            parsed.get("ignore-preflight-errors"),
            nr.ignore_preflight_errors.as_ref(),
        );
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            pf.file_available(root, &format!("{}/{c}.yaml", cpfiles::MANIFESTS));
        }
        pf.port_free(node.bind_port);
        if let Some(local) = cc.etcd.as_ref().and_then(|e| e.local.as_ref()) {
            pf.dir_available(root, local.data_dir.as_deref().unwrap_or("/var/lib/etcd"));
        }
        pf.finish()?;
    }
    println!("[certs] Using certificateDir folder {:?}", cluster.cert_dir);
    let dir = &cluster.cert_dir;
    let ca = pki::load_ca(root, &format!("{dir}/ca.crt"), &format!("{dir}/ca.key"))
        .map_err(|e| anyhow!("error execution phase certs/ca: {e:#}"))?;
    println!("[certs] Using existing ca certificate authority");
    pki::load_ca(
        root,
        &format!("{dir}/front-proxy-ca.crt"),
        &format!("{dir}/front-proxy-ca.key"),
    )
    .map_err(|e| anyhow!("error execution phase certs/front-proxy-ca: {e:#}"))?;
    for f in ["sa.key", "sa.pub"] {
        if !root.exists(format!("{dir}/{f}")) {
            bail!("error execution phase certs/sa: {dir}/{f} does not exist (kube-standin does not generate keys)");
        }
    }
    cpfiles::write_control_plane(root, &ca, &cluster, &node)?;
    let server = format!("https://{}", cluster.endpoint);
    let local = format!(
        "https://{}",
        std::net::SocketAddr::new(
            node.advertise.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            node.bind_port
        )
    );
    for (file, srv, cn, org) in [
        (
            "admin.conf",
            &server,
            "kubernetes-admin",
            Some("kubeadm:cluster-admins"),
        ),
        (
            "super-admin.conf",
            &server,
            "kubernetes-super-admin",
            Some("system:masters"),
        ),
        (
            "kubelet.conf",
            &server,
            &*format!("system:node:{}", node.name),
            Some("system:nodes"),
        ),
        (
            "controller-manager.conf",
            &local,
            "system:kube-controller-manager",
            None,
        ),
        ("scheduler.conf", &local, "system:kube-scheduler", None),
    ] {
        cpfiles::write_kubeconfig(root, &ca, &cluster, file, srv, cn, org)?;
    }
    let kubelet = cpfiles::kubelet_config(doc_json(&docs, "KubeletConfiguration"), &cluster);
    cpfiles::write_kubelet_files(root, &kubelet, &cpfiles::flags_env(&node, &cluster))?;
    if !skip.iter().any(|p| p == "wait-control-plane") {
        let (kubelet_wait, cp_wait) = wait_for(init.timeouts.as_ref());
        probe::wait_kubelet(&kubelet, kubelet_wait)?;
        if let Some(ip) = node.advertise {
            probe::wait_apiserver(&ca.cert_pem, ip, node.bind_port, cp_wait)?;
        }
    }
    println!("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace");
    cpfiles::publish(
        root,
        "kube-system",
        "kubeadm-config",
        &json!({"ClusterConfiguration": doc_json(&docs, "ClusterConfiguration").map(Value::to_string)}),
    )?;
    cpfiles::publish(
        root,
        "kube-system",
        "kubelet-config",
        &json!({"kubelet": serde_json::to_string(&kubelet)?}),
    )?;
    let mut tokens: Vec<String> = init
        .bootstrap_tokens
        .iter()
        .flatten()
        .map(|t| t.token.clone())
        .collect();
    if tokens.is_empty() {
        tokens.push(random_token()?);
    }
    println!("[bootstrap-token] Using token: {}", tokens[0]);
    cpfiles::publish_cluster_info(root, &ca.cert_pem, &server, &tokens)?;
    let mut key = init.certificate_key.clone();
    if parsed.is_true("upload-certs") {
        let k = match &key {
            Some(k) => k.clone(),
            None => hex(&random_bytes::<32>()?),
        };
        println!("[upload-certs] Using certificate key:\n{k}\n({BANNER}: nothing is uploaded)");
        key = Some(k);
    }
    let hash = pki::ca_cert_hash(&ca.spki);
    let cp = key
        .map(|k| format!(" \\\n\t--control-plane --certificate-key {k}"))
        .unwrap_or_default();
    println!("\nYour Kubernetes control-plane has initialized successfully! ({BANNER})\n");
    println!("To start using your cluster, you need to run the following as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n");
    println!("You can now join any number of control-plane nodes running the following command on each as root:\n\n  kubeadm join {} --token {} \\\n\t--discovery-token-ca-cert-hash {hash}{cp}\n", cluster.endpoint, tokens[0]);
    println!("Then you can join any number of worker nodes by running the following on each as root:\n\nkubeadm join {} --token {} \\\n\t--discovery-token-ca-cert-hash {hash}", cluster.endpoint, tokens[0]);
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow!("read randomness"))?;
    Ok(b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `[a-z0-9]{6}.[a-z0-9]{16}` token.
fn random_token() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |b: &u8| ALPHABET[usize::from(*b) % ALPHABET.len()] as char;
    let b = random_bytes::<22>()?;
    let id: String = b[..6].iter().map(pick).collect();
    let secret: String = b[6..].iter().map(pick).collect();
    Ok(format!("{id}.{secret}"))
}
