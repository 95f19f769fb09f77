//! kube-standin `kubelet` (NOT Kubernetes). Takes exactly the flags kubeadm's
//! kubeadm-flags.env and a supervisor pass (`--bootstrap-kubeconfig`, `--kubeconfig`,
//! `--config`, `--container-runtime-endpoint`, `--node-ip`, `--pod-infra-container-image`,
//! `--hostname-override`, `-v`). Exits 1 while `--config` is missing or invalid (the
//! supervisor restarts it, as with the real kubelet before `kubeadm init`). Otherwise it
//! records the call, warns about kubeadm-flags.env flags it was not given, serves healthz
//! on `healthzBindAddress:healthzPort` (plain HTTP) and watches `staticPodPath`: once
//! `kube-apiserver.yaml` appears it "runs" it as an HTTPS server on `0.0.0.0:<secure-port>`
//! with the manifest's certificate (`/readyz`, `/healthz`, `/livez`, `/version`, and the
//! ConfigMaps init published). Runs until SIGTERM or SIGINT (exit 0). Containers are not
//! run, nodes are not registered, a removed manifest keeps serving until restart.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::components::KubeletConfiguration;
use super::config;
use super::cpfiles::KUBELET_FLAGS;
use super::flags::{self, flag, Kind, Spec, VERBOSITY};
use super::https::{self, Handler, Reply, Request};
use super::{Call, Root, API_DIR, BANNER, VERSION};

const FLAGS: &[Spec] = &[
    flag("bootstrap-kubeconfig", None, Kind::Value),
    flag("kubeconfig", None, Kind::Value),
    flag("config", None, Kind::Value),
    flag("container-runtime-endpoint", None, Kind::Value),
    flag("node-ip", None, Kind::Value),
    flag("pod-infra-container-image", None, Kind::Value),
    flag("hostname-override", None, Kind::Value),
    VERBOSITY,
];

pub fn run(root: &Root, args: &[String], call: &mut Call) -> Result<()> {
    let parsed = flags::parse(args, FLAGS)?;
    if let Some(extra) = parsed.args.first() {
        bail!("unknown command {extra:?} for \"kubelet\" (the kubelet takes flags only)");
    }
    let path = parsed
        .get("config")
        .ok_or_else(|| anyhow!("{BANNER} kubelet needs --config"))?;
    let fail = |e: anyhow::Error| {
        anyhow!("failed to load kubelet config file, path: {path}, error: {e:#}")
    };
    let text = root.read(path).map_err(fail)?;
    let cfg = config::parse_kubelet(&text).map_err(fail)?;
    call.config = config::yaml_documents(&text)?.pop();
    if let Some(ip) = parsed.get("node-ip") {
        ip.split(',')
            .try_for_each(|a| a.parse::<IpAddr>().map(drop))
            .map_err(|_| {
                anyhow!("invalid argument {ip:?} for \"--node-ip\" flag: not an IP address")
            })?;
    }
    for w in missing_kubeadm_flags(root, &parsed) {
        call.warn(w);
    }
    // Bind before recording so that a port in use is recorded as this call's error.
    let healthz = healthz_listener(&cfg)?;
    println!("{BANNER} kubelet: started with config {path}");
    call.record(root, &Ok(()))?;
    block_signals()?;
    if let Some(listener) = healthz {
        let handler: Handler = Arc::new(|r: &Request| match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/healthz") => Reply::text(200, "ok"),
            _ => Reply::text(404, "404 page not found\n"),
        });
        std::thread::spawn(move || https::serve(listener, None, handler));
    }
    match cfg.static_pod_path.clone() {
        Some(dir) => {
            let root = root.clone();
            std::thread::spawn(move || watch_static_pods(&root, &dir));
        }
        None => println!("{BANNER} kubelet: staticPodPath unset: no static Pods (no API server)"),
    }
    let signal = wait_signal();
    println!("{BANNER} kubelet: signal {signal} received, exiting");
    Ok(())
}

/// The healthz listener on `healthzBindAddress:healthzPort` (port 0: none).
fn healthz_listener(cfg: &KubeletConfiguration) -> Result<Option<TcpListener>> {
    let port = cfg.healthz_port.unwrap_or(10248);
    if port == 0 {
        return Ok(None);
    }
    let host = cfg.healthz_bind_address.as_deref().unwrap_or("127.0.0.1");
    let ip: IpAddr = host
        .parse()
        .map_err(|_| anyhow!("healthzBindAddress {host:?} is not an IP"))?;
    let addr = SocketAddr::new(ip, u16::try_from(port)?);
    let listener =
        TcpListener::bind(addr).map_err(|e| anyhow!("listen on {addr} for healthz: {e}"))?;
    println!("{BANNER} kubelet: healthz on http://{addr}/healthz");
    Ok(Some(listener))
}

/// Flags kubeadm-flags.env sets that this kubelet was not started with.
fn missing_kubeadm_flags(root: &Root, parsed: &flags::Parsed) -> Vec<String> {
    let Ok(env) = root.read(KUBELET_FLAGS) else {
        return Vec::new();
    };
    let Some(line) = env
        .lines()
        .find_map(|l| l.strip_prefix("KUBELET_KUBEADM_ARGS="))
    else {
        return vec![format!("{KUBELET_FLAGS} has no KUBELET_KUBEADM_ARGS line")];
    };
    line.trim_matches('"')
        .split_whitespace()
        .filter_map(|f| f.strip_prefix("--")?.split_once('='))
        .filter(|(name, value)| parsed.get(name) != Some(*value))
        .map(|(name, value)| format!("started without --{name}={value} from {KUBELET_FLAGS} (is KUBELET_KUBEADM_ARGS passed?)"))
        .collect()
}

/// Waits for `<dir>/kube-apiserver.yaml`, then serves it.
fn watch_static_pods(root: &Root, dir: &str) {
    let manifest = format!("{}/kube-apiserver.yaml", dir.trim_end_matches('/'));
    let mut last_error = String::new();
    loop {
        if root.exists(&manifest) {
            match start_apiserver(root, &manifest) {
                Ok(()) => return,
                Err(e) => {
                    let e = format!("{e:#}");
                    if e != last_error {
                        println!("{BANNER} kubelet: static Pod kube-apiserver: {e} (retrying)");
                        last_error = e;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn start_apiserver(root: &Root, manifest: &str) -> Result<()> {
    let docs = config::yaml_documents(&root.read(manifest)?)?;
    let command = docs
        .first()
        .and_then(|d| d["spec"]["containers"][0]["command"].as_array())
        .ok_or_else(|| anyhow!("{manifest}: no spec.containers[0].command"))?;
    let arg = |name: &str| {
        command
            .iter()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{manifest}: no --{name}="))
    };
    let port: u16 = arg("secure-port")?
        .parse()
        .map_err(|_| anyhow!("{manifest}: bad --secure-port"))?;
    let (cert, key) = (
        root.read(arg("tls-cert-file")?)?,
        root.read(arg("tls-private-key-file")?)?,
    );
    let tls = https::server_config(&cert, &key)?;
    let listener = TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| anyhow!("listen on 0.0.0.0:{port}: {e}"))?;
    println!("{BANNER} kubelet: static Pod kube-apiserver: serving https://0.0.0.0:{port} (a stand-in, NOT an API server)");
    let root = root.clone();
    let handler: Handler = Arc::new(move |r: &Request| {
        let reply = api(&root, r);
        println!(
            "{BANNER} kubelet: kube-apiserver: {} {} from {} -> {}",
            r.method, r.path, r.peer, reply.status
        );
        reply
    });
    std::thread::spawn(move || https::serve(listener, Some(tls), handler));
    Ok(())
}

fn not_found() -> Reply {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404});
    Reply::json(404, status.to_string().into_bytes())
}

/// The stand-in API server's answers.
fn api(root: &Root, r: &Request) -> Reply {
    if r.method != "GET" {
        return Reply::text(405, "kube-standin serves GET only\n");
    }
    match r.path.as_str() {
        "/readyz" | "/healthz" | "/livez" => return Reply::text(200, "ok"),
        "/version" => {
            let v = json!({"major": "1", "minor": "34", "gitVersion": VERSION, "platform": "linux/amd64", "note": BANNER});
            return Reply::json(200, v.to_string().into_bytes());
        }
        _ => {}
    }
    let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let ["api", "v1", "namespaces", ns, "configmaps", name] = parts.as_slice() else {
        return not_found();
    };
    if !super::formats::dns_subdomain(ns) || !super::formats::dns_subdomain(name) {
        return not_found();
    }
    if let (Some(token), false) = (&r.bearer, *ns == "kube-public") {
        let known: Vec<String> = root
            .read(format!("{API_DIR}/bootstrap-tokens.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if !known.contains(token) {
            return Reply::text(401, "Unauthorized");
        }
    }
    match std::fs::read(root.path(format!("{API_DIR}/{ns}/{name}.json"))) {
        Ok(body) => Reply::json(200, body),
        Err(_) => not_found(),
    }
}

const SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

#[allow(unsafe_code)]
fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks SIGTERM and SIGINT in this thread (and the threads it spawns after) so that
/// `wait_signal` receives them.
#[allow(unsafe_code)]
fn block_signals() -> Result<()> {
    let set = signal_set();
    // SAFETY: `set` is a valid sigset_t; the old mask is not requested.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        bail!("block SIGTERM: {}", std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for SIGTERM or SIGINT; returns its number.
#[allow(unsafe_code)]
fn wait_signal() -> libc::c_int {
    let set = signal_set();
    let mut sig: libc::c_int = 0;
    loop {
        // SAFETY: `set` is a valid sigset_t and `sig` a writable int for the duration.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            return sig;
        }
    }
}
