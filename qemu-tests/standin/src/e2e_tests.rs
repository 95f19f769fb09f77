//! End to end: the built `kube-standin` binary run through symlinks named kubeadm, kubelet
//! and kubectl, with `KUBE_STANDIN_ROOT` pointing at temporary node roots. A kubelet that
//! fails before init, `kubeadm init` while the kubelet is started as a supervisor would,
//! kubectl against the stand-in API server, worker joins that succeed and fail, SIGTERM.
//!
//! Needs `target/<profile>/kube-standin` (built by `cargo test` of this package, or by
//! `cargo build -p qemu-tests --bin kube-standin`); without it the test says it is skipped,
//! and fails under CI=true.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::e2e_harness::{
    binary, calls, control_plane_root, free_port, worker_root, write, Running, Tools,
};
use super::https::{self, Trust};
use super::pki::{self, testing::new_ca};
use super::schema_tests::{fill, JOIN};
use super::Root;

const KUBELET_ARGS: [&str; 3] = [
    "--config=/var/lib/kubelet/config.yaml",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
];

#[test]
fn kubeadm_init_kubelet_kubectl_and_joins_end_to_end() {
    let Some(bin) = binary() else {
        let why = "target/<profile>/kube-standin is not built \
                   (cargo build -p qemu-tests --bin kube-standin)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must not skip: {why}"
        );
        println!("skipped: {why}");
        return;
    };
    let tools = Tools::new(&bin);
    let (port, healthz) = (free_port(), free_port());
    let (_cp_dir, cp, ca_pem) = control_plane_root(port, healthz);

    // Before init the kubelet has no config: it exits 1 (the supervisor restarts it).
    let (ok, _, err) = tools.run("kubelet", &cp, &KUBELET_ARGS);
    assert!(
        !ok && err.contains("failed to load kubelet config file"),
        "{err}"
    );
    let (ok, _, err) = tools.run("kubeadm", &cp, &["init", "--config", "/kubeadm.yaml", "-x"]);
    assert!(
        !ok && err.contains("unknown shorthand flag: 'x' in -x"),
        "{err}"
    );

    let mut kubelet = init_with_kubelet(&tools, &cp);
    check_api_server(&cp, &ca_pem, port);
    check_calls(&cp, port);
    let (ok, _, err) = tools.run("kubeadm", &cp, &["init", "--config", "/kubeadm.yaml"]);
    assert!(
        !ok && err.contains("[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]"),
        "a second init must fail preflight: {err}"
    );
    check_kubectl(&tools, &cp);
    check_joins(&tools, &ca_pem, port, healthz);
    let (ok, out, _) = tools.run("kubeadm", &cp, &["version", "-o", "short"]);
    assert!(ok && out.trim() == "v1.34.2-standin", "{out}");

    // SIGTERM stops the kubelet with exit 0.
    let pid = kubelet.0.id().to_string();
    let Ok(status) = Command::new("kill").args(["-TERM", &pid]).status() else {
        panic!("kill");
    };
    assert!(status.success());
    let Ok(exit) = kubelet.0.wait() else {
        panic!("wait for the kubelet");
    };
    assert!(exit.success(), "kubelet exit {exit:?}");
}

/// Runs `kubeadm init`; starts the kubelet with kubeadm-flags.env once init wrote it, as a
/// supervisor restarting the kubelet would.
fn init_with_kubelet(tools: &Tools, cp: &Root) -> Running {
    let args = [
        "init",
        "--config=/kubeadm.yaml",
        "--upload-certs",
        "-v",
        "5",
    ];
    let Ok(init) = tools
        .command("kubeadm", cp, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        panic!("spawn kubeadm init");
    };
    let start = Instant::now();
    while !cp.exists("/var/lib/kubelet/config.yaml") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "init wrote no kubelet config"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = cp
        .read("/var/lib/kubelet/kubeadm-flags.env")
        .unwrap_or_default();
    let flags: Vec<&str> = env
        .trim()
        .trim_start_matches("KUBELET_KUBEADM_ARGS=")
        .trim_matches('"')
        .split(' ')
        .collect();
    for want in [
        "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
        "--node-ip=127.0.0.1",
        "--pod-infra-container-image=registry.k8s.io/pause:3.10.1",
    ] {
        assert!(flags.contains(&want), "{want} not in {env}");
    }
    let args: Vec<&str> = KUBELET_ARGS.iter().copied().chain(flags).collect();
    let Ok(kubelet) = tools
        .command("kubelet", cp, &args)
        .stdout(Stdio::null())
        .spawn()
    else {
        panic!("spawn kubelet");
    };
    let kubelet = Running(kubelet);
    let Ok(out) = init.wait_with_output() else {
        panic!("wait for init");
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "init failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("initialized successfully"), "{stdout}");
    assert!(
        stdout.contains("--discovery-token-ca-cert-hash sha256:"),
        "{stdout}"
    );
    for f in [
        "pki/apiserver.crt",
        "pki/apiserver.key",
        "manifests/kube-apiserver.yaml",
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        assert!(
            cp.exists(format!("/etc/kubernetes/{f}")),
            "{f} missing after init"
        );
    }
    kubelet
}

/// The API server certificate chains to the cluster CA and names the shared endpoint.
fn check_api_server(cp: &Root, ca_pem: &str, port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let name = "apiserver.cluster.local";
    let timeout = Duration::from_secs(5);
    let trusted =
        https::client_config(&Trust::Ca(ca_pem.to_string())).unwrap_or_else(|e| panic!("{e:#}"));
    let r = https::get(addr, name, "/readyz", None, trusted, timeout)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    let stranger =
        https::client_config(&Trust::Ca(new_ca("other").0)).unwrap_or_else(|e| panic!("{e:#}"));
    let Err(e) = https::get(addr, name, "/readyz", None, stranger, timeout) else {
        panic!("a foreign CA verified the API server");
    };
    assert!(
        e.to_string().contains("failed to verify certificate"),
        "{e:#}"
    );
    let manifest = cp
        .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .unwrap_or_default();
    assert!(manifest.contains("NOT Kubernetes"), "{manifest}");
}

/// calls.jsonl: the failed and the serving kubelet, the refused flag, the init config.
fn check_calls(cp: &Root, port: u16) {
    let log = calls(cp);
    let kubelets: Vec<&Value> = log.iter().filter(|c| c["tool"] == "kubelet").collect();
    let first = kubelets[0]["result"].as_str().unwrap_or_default();
    assert!(
        first.starts_with("error: failed to load kubelet config file"),
        "{first}"
    );
    let last = kubelets.last().copied().unwrap_or(&Value::Null);
    assert_eq!(last["result"], "ok");
    assert!(last.get("warnings").is_none(), "{last}");
    assert_eq!(log[1]["result"], "error: unknown shorthand flag: 'x' in -x");
    let init = log.iter().rfind(|c| c["tool"] == "kubeadm");
    let init = init.unwrap_or_else(|| panic!("no kubeadm call"));
    assert_eq!(init["result"], "ok");
    assert_eq!(init["argv"][1], "init");
    let endpoint = format!("apiserver.cluster.local:{port}");
    assert_eq!(init["config"][1]["controlPlaneEndpoint"], endpoint);
}

fn check_kubectl(tools: &Tools, cp: &Root) {
    let kc = "--kubeconfig=/etc/kubernetes/admin.conf";
    let (ok, out, err) = tools.run("kubectl", cp, &[kc, "get", "--raw", "/readyz"]);
    assert!(ok && out.trim() == "ok", "{out}{err}");
    let b = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}"#;
    write(
        cp,
        "/manifests/a.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
    );
    write(cp, "/manifests/b.json", b);
    let args = [kc, "apply", "-f", "/manifests", "--server-side"];
    let (ok, out, err) = tools.run("kubectl", cp, &args);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    assert!(out.contains("configmap/c serverside-applied"), "{out}");
    let last = calls(cp).pop().unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, b.as_bytes());
    let sha: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(last["manifests"][1]["file"], "/manifests/b.json");
    assert_eq!(last["manifests"][1]["sha256"], sha);
    write(cp, "/bad/x.yaml", "metadata: {name: x}\n");
    let (ok, _, err) = tools.run("kubectl", cp, &[kc, "apply", "-f", "/bad"]);
    assert!(
        !ok && err.contains("[apiVersion not set, kind not set]"),
        "{err}"
    );
}

/// A worker joins through discovery (JWS + pinned CA); wrong pins, tokens and a closed
/// port fail with kubeadm's preflight message.
fn check_joins(tools: &Tools, ca_pem: &str, port: u16, healthz: u16) {
    let (spki, _) = pki::cert_spki(ca_pem).unwrap_or_else(|e| panic!("{e:#}"));
    let hash = pki::ca_cert_hash(&spki);
    let join = fill(JOIN, port, 0, &hash);
    let (_w, worker) = worker_root("worker", &join);
    let args = ["join", "--config", "/join.yaml"];
    let (ok, out, err) = tools.run("kubeadm", &worker, &args);
    assert!(
        ok && out.contains("This node has joined the cluster"),
        "{out}\n{err}"
    );
    assert_eq!(
        worker.read("/etc/kubernetes/pki/ca.crt").ok().as_deref(),
        Some(ca_pem)
    );
    let config = worker
        .read("/var/lib/kubelet/config.yaml")
        .unwrap_or_default();
    assert!(
        config.contains(&format!("\"healthzPort\": {healthz}")),
        "{config}"
    );
    let flags = worker
        .read("/var/lib/kubelet/kubeadm-flags.env")
        .unwrap_or_default();
    assert!(flags.contains("--node-ip=127.0.0.2"), "{flags}");
    let kubelet_conf = worker
        .read("/etc/kubernetes/kubelet.conf")
        .unwrap_or_default();
    assert!(
        kubelet_conf.contains("token: abcdef.0123456789abcdef"),
        "{kubelet_conf}"
    );
    let (ok, _, err) = tools.run("kubeadm", &worker, &args);
    assert!(
        !ok && err.contains("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]"),
        "{err}"
    );

    let zero = format!("sha256:{}", "0".repeat(64));
    let endpoint = format!("apiserver.cluster.local:{port}");
    let closed = format!("127.0.0.1:{}", free_port());
    for (name, text, want) in [
        ("pin", join.replace(&hash, &zero), "none of the public keys"),
        (
            "token",
            join.replace("token: abcdef.", "token: zzzzzz."),
            "token id \"zzzzzz\" is invalid",
        ),
        (
            "closed",
            join.replace(&endpoint, &closed),
            "connection refused",
        ),
    ] {
        let (_d, root) = worker_root(name, &text);
        let (ok, _, err) = tools.run("kubeadm", &root, &args);
        assert!(!ok, "{name}: join succeeded");
        let phase =
            "error execution phase preflight: couldn't validate the identity of the API Server: ";
        assert!(err.contains(phase) && err.contains(want), "{name}: {err}");
    }
}
