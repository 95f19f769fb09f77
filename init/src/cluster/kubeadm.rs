//! The `kubeadm` step: places the cluster PKI, points apiserver.cluster.local at the
//! right address, writes the v1beta4 config, runs `kubeadm init` (first control plane)
//! or `kubeadm join` (others) until it succeeds, with backoff while the endpoint is
//! down, then applies the baked manifests once the API answers (first control plane).
//! Runs once per node: a marker on STATE records success.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::context::{write_private, Context};
use super::steps::{backoff, emit, KUBEADM_CONFIG, KUBEADM_DONE, MANIFESTS};
use crate::chain::error_chain;
use crate::kube::{self, Plan};
use crate::lb::probe::{self as probe_tls, Check, Trust};

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
const KUBECTL: &str = "/usr/bin/kubectl";

/// What this node does with kubeadm.
pub fn plan(ctx: &Context) -> Plan {
    let first = ctx.settings.control_planes.first().map(|m| m.address);
    match (ctx.is_control_plane(), first == Some(ctx.settings.address)) {
        (true, true) => Plan::Init,
        (true, false) => Plan::JoinControlPlane,
        (false, _) => Plan::JoinWorker,
    }
}

fn plan_name(plan: Plan) -> &'static str {
    match plan {
        Plan::Init => "init",
        Plan::JoinControlPlane => "join-control-plane",
        Plan::JoinWorker => "join-worker",
    }
}

pub fn run(ctx: &Context) -> Result<(), String> {
    if Path::new(KUBEADM_DONE).exists() {
        emit("kubeadm_skipped", json!({"step": "done before"}));
        return Ok(());
    }
    let root = Path::new("/");
    let s = &ctx.settings;
    let plan = plan(ctx);
    prepare_kernel(root);
    let placed = kube::place_pki(root, s).map_err(|e| error_chain(&e))?;
    // A joining control plane cannot reach its own API server before it has one: it
    // joins through the first control plane, then points the name at itself.
    let (addr, name) = match plan {
        Plan::JoinControlPlane => kube::hosts_entry_while_joining(s),
        _ => kube::hosts_entry(s, ctx.is_control_plane(), ctx.vip),
    };
    write_hosts(addr, name)?;
    let facts = kube::NodeFacts {
        name: ctx.node_name.clone(),
        vip: ctx.vip,
        cri_socket: CRI_SOCKET.into(),
        ca_cert_hash: crate::pki::ca_cert_hash(s.ca.cert.as_str()).map_err(|e| error_chain(&e))?,
    };
    let config = kube::kubeadm_config(s, &facts, plan);
    write_private(Path::new(KUBEADM_CONFIG), config.as_bytes())
        .map_err(|e| format!("write {KUBEADM_CONFIG}: {e}"))?;
    let argv = kube::kubeadm_args(plan, Path::new(KUBEADM_CONFIG));
    let (program, args) = argv.split_first().ok_or("empty kubeadm command")?;
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        emit(
            "kubeadm_start",
            json!({"plan": plan_name(plan), "attempt": attempt, "files": placed.len(), "argv": argv}),
        );
        let status = Command::new(program)
            .args(args)
            .status()
            .map_err(|e| format!("run {program}: {e}"))?;
        if status.success() {
            break;
        }
        let wait = backoff(attempt);
        emit(
            "kubeadm_retry",
            json!({"plan": plan_name(plan), "attempt": attempt, "code": status.code(), "wait_s": wait.as_secs()}),
        );
        std::thread::sleep(wait);
    }
    if plan == Plan::JoinControlPlane {
        let (addr, name) = kube::hosts_entry(s, true, ctx.vip);
        write_hosts(addr, name)?;
    }
    write_private(Path::new(KUBEADM_DONE), b"")
        .map_err(|e| format!("write {KUBEADM_DONE}: {e}"))?;
    emit(
        "kubeadm_done",
        json!({"plan": plan_name(plan), "attempt": attempt, "seconds": start.elapsed().as_secs()}),
    );
    if plan == Plan::Init {
        wait_api(
            s.ca.cert.as_str(),
            SocketAddr::new(s.address, super::API_PORT),
        )?;
        apply_manifests()?;
    }
    Ok(())
}

/// Modules kubelet, containerd's overlay snapshotter and kube-proxy (IPVS mode) need.
/// The kernel cannot autoload them here (no modules.dep.bin), so they are loaded first.
pub const KUBE_MODULES: &[&str] = &[
    "overlay",
    "br_netfilter",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_sh",
    "nf_conntrack",
];
/// Sysctls kubeadm's preflight checks and pod networking need.
const SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv4/ip_forward", "1"),
    ("net/bridge/bridge-nf-call-iptables", "1"),
    ("net/bridge/bridge-nf-call-ip6tables", "1"),
];

/// Loads `KUBE_MODULES` and sets `SYSCTLS`; failures are reported, not fatal (kubeadm's
/// preflight names what is missing).
fn prepare_kernel(root: &Path) {
    let loaded = crate::kmod::running_release(root).and_then(|release| {
        crate::kmod::load(KUBE_MODULES, root, &release, &mut crate::kmod::SysLoader)
    });
    if let Err(e) = loaded {
        emit(
            "cluster_error",
            json!({"step": "modules", "error": error_chain(&e)}),
        );
    }
    for (key, value) in SYSCTLS {
        let path = root.join("proc/sys").join(key);
        if let Err(e) = std::fs::write(&path, value) {
            emit(
                "cluster_error",
                json!({"step": "sysctl", "error": format!("{}: {e}", path.display())}),
            );
        }
    }
}

/// Points apiserver.cluster.local at `addr` in /etc/hosts (temp + rename).
fn write_hosts(addr: IpAddr, name: &str) -> Result<(), String> {
    let existing = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    debug_assert_eq!(name, super::API_ENDPOINT_NAME);
    let text = crate::lb::vip::hosts_with(&existing, addr);
    let tmp = Path::new("/etc/.hosts.kiln-kubeadm");
    std::fs::write(tmp, text)
        .and_then(|()| std::fs::rename(tmp, "/etc/hosts"))
        .map_err(|e| format!("write /etc/hosts: {e}"))
}

/// Waits (up to 10 minutes) for `GET /readyz` to answer 200 over TLS verified against the
/// cluster CA under the endpoint name.
fn wait_api(ca_pem: &str, target: SocketAddr) -> Result<(), String> {
    let check = Check::Https {
        path: "/readyz".into(),
        trust: Trust::CaPem(ca_pem.as_bytes().to_vec()),
        server_name: Some(super::API_ENDPOINT_NAME.into()),
    };
    let prober = probe_tls::prober(&check).map_err(|e| error_chain(&e))?;
    let start = Instant::now();
    loop {
        match prober.probe(target, Duration::from_secs(2)) {
            Ok(()) => {
                emit(
                    "api_ready",
                    json!({"endpoint": target.to_string(), "seconds": start.elapsed().as_secs()}),
                );
                return Ok(());
            }
            Err(e) if start.elapsed() > Duration::from_secs(600) => {
                return Err(format!("API server {target} not ready after 600 s: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

/// `kubectl apply -f` of every file under /usr/share/kiln/manifests (if any), 5 tries.
fn apply_manifests() -> Result<(), String> {
    let mut files: Vec<String> = std::fs::read_dir(MANIFESTS)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        return Ok(());
    }
    for attempt in 1..=5u32 {
        let status = Command::new(KUBECTL)
            .args(["--kubeconfig", ADMIN_CONF, "apply", "-f", MANIFESTS])
            .status()
            .map_err(|e| format!("run {KUBECTL}: {e}"))?;
        if status.success() {
            emit(
                "manifests_applied",
                json!({"manifests": files, "attempt": attempt}),
            );
            return Ok(());
        }
        std::thread::sleep(backoff(attempt));
    }
    Err(format!("kubectl apply -f {MANIFESTS} failed 5 times"))
}
