//! The kubeadm path on real kernels with a **stand-in** for Kubernetes: real kubeadm,
//! kubelet and control-plane images cannot be downloaded here, so the image carries
//! `kube-standin` (qemu-tests/standin, NOT Kubernetes) as /usr/bin/kubeadm, kubelet and
//! kubectl, baked through the spec's `[kubernetes]` section from a local folder. It
//! rejects any kubeadm config with unknown or missing v1beta4 fields, records every call
//! with its parsed config, serves an API-server stand-in (TLS, cluster CA) once "kubeadm"
//! wrote the control-plane manifest, and does the real token + CA-pin discovery on joins.
//!
//! Seeds from `kiln cluster gen` (2 control planes, 1 worker). The worker boots first and
//! must retry its join while no API server answers; then cp-1 runs `kubeadm init` (etcd
//! under init, external topology), cp-2 joins as a control plane through cp-1, the
//! worker joins through the load balancer's VIP (HTTPS checks against the cluster CA),
//! and the baked manifest is applied once the API answers. Asserted: the exact argv of
//! every kubeadm call on each node, key fields of the config each one received, kubelet
//! started with kubeadm's flags, and the events at every step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use qemu_tests::hub::Hub;
use qemu_tests::image::{self, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm};
use serde_json::Value;

mod common;
use common::{d, exec, wait_for};

const TOOLS: &[&str] = &["qemu-img", "python3", "busybox", "cargo"];
const BOOT: Duration = Duration::from_secs(600);
const NET: &str = "192.168.90";
const CONFIG: &str = "/var/lib/kiln/kubeadm.yaml";

/// Builds kube-standin as a static binary (its own small package) into target/standin.
fn standin() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = image::target_dir().join("standin");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-j2", "--release", "-p", "kube-standin"])
        .args(["--target", "x86_64-unknown-linux-gnu", "--target-dir"])
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()?;
    ensure!(status.success(), "building kube-standin failed: {status}");
    let bin = target.join("x86_64-unknown-linux-gnu/release/kube-standin");
    let file = tool_ok("file", &[d(&bin)])?.stdout;
    ensure!(
        file.contains("statically linked") || file.contains("static-pie"),
        "{file}"
    );
    Ok(bin)
}

/// The test image: the common node (+ etcd) with a `[kubernetes]` section whose
/// binaries are the stand-in and whose one manifest stands for a CNI.
fn build(dir: &Path) -> Result<PathBuf> {
    let bin = standin()?;
    let bins = dir.join("kube-bin");
    std::fs::create_dir_all(&bins)?;
    for tool in ["kubeadm", "kubelet", "kubectl"] {
        std::fs::copy(&bin, bins.join(tool))?;
    }
    let cni = dir.join("cni.yaml");
    std::fs::write(
        &cni,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cni-stand-in\n  namespace: kube-system\ndata:\n  note: stands for a CNI manifest\n",
    )?;
    let spec = common::image_spec(dir, &["etcd-server", "etcd-client"])?;
    let mut text = std::fs::read_to_string(&spec)?;
    text.push_str(&format!(
        "\n[kubernetes]\nversion = \"v1.34.2\"\nbinaries = \"{}\"\nimages = []\nmanifests = [\"{}\"]\n",
        d(&bins),
        d(&cni)
    ));
    std::fs::write(&spec, text)?;
    let report = kiln_imager::pipeline::build(&kiln_imager::pipeline::BuildOptions {
        spec: Some(spec),
        out: dir.join("img"),
        quiet: true,
        ..Default::default()
    })?;
    common::output(&report, "qcow2")
}

fn start(
    dir: &Path,
    base: &Path,
    hub: &Hub,
    port: usize,
    cluster: &Path,
    name: &str,
) -> Result<Vm> {
    let mac = format!("52:54:00:90:00:{port:02x}");
    common::start_cluster_node(
        &format!("kube-{name}"),
        dir,
        base,
        hub,
        port,
        &mac,
        cluster,
        name,
        1024,
    )
}

/// The stand-in's record of calls on `vm`: one JSON object per call.
fn calls(vm: &mut Vm) -> Result<Vec<Value>> {
    let (code, out) = exec(vm, "busybox cat /var/lib/kube-standin/calls.jsonl")?;
    ensure!(code == 0, "no calls.jsonl: {out}");
    out.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("calls.jsonl line {l}")))
        .collect()
}

fn argv(call: &Value) -> Vec<String> {
    call["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The parsed config document of `kind` in a recorded call.
fn doc<'a>(call: &'a Value, kind: &str) -> Option<&'a Value> {
    let docs = call["config"].as_array()?;
    docs.iter().find(|d| d["kind"] == kind)
}

fn kubeadm_calls(all: &[Value]) -> Vec<&Value> {
    all.iter().filter(|c| c["tool"] == "kubeadm").collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kubeadm_init_and_joins_with_the_stand_in() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let dir = image::target_dir().join("qemu-tests").join("kube");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let base = build(&dir)?;
    let cluster = dir.join("cluster");
    let opts = kiln_imager::cluster::GenOptions {
        name: "kubet".into(),
        control_planes: vec![format!("{NET}.11"), format!("{NET}.12")],
        workers: vec![format!("{NET}.21")],
        debug_exec: true,
        ..Default::default()
    };
    kiln_imager::cluster::gen(&opts, &cluster)?;
    let hub = Hub::start(3)?;

    // The worker first: nothing answers on the endpoint, so its join must be retried.
    let mut worker = start(&dir, &base, &hub, 2, &cluster, "worker-1")?;
    let retry = wait_for(&mut worker, 0, BOOT, |e| e["event"] == "kubeadm_retry")?;
    assert_eq!(retry["plan"], "join-worker", "{retry}");
    let mut cp1 = start(&dir, &base, &hub, 0, &cluster, "cp-1")?;
    let mut cp2 = start(&dir, &base, &hub, 1, &cluster, "cp-2")?;

    let done = wait_for(&mut cp1, 0, BOOT, |e| e["event"] == "kubeadm_done")?;
    assert_eq!(done["plan"], "init", "{done}");
    wait_for(&mut cp1, 0, BOOT, |e| e["event"] == "api_ready")?;
    let applied = wait_for(&mut cp1, 0, BOOT, |e| e["event"] == "manifests_applied")?;
    assert_eq!(strings(&applied["manifests"]), ["cni.yaml"], "{applied}");
    let done = wait_for(&mut cp2, 0, BOOT, |e| e["event"] == "kubeadm_done")?;
    assert_eq!(done["plan"], "join-control-plane", "{done}");
    let done = wait_for(&mut worker, 0, BOOT, |e| e["event"] == "kubeadm_done")?;
    assert_eq!(done["plan"], "join-worker", "{done}");
    assert!(
        done["attempt"].as_u64().unwrap_or(0) >= 2,
        "worker joined without retrying: {done}"
    );
    for vm in [&mut cp1, &mut cp2, &mut worker] {
        wait_for(vm, 0, BOOT, |e| e["event"] == "ready")?;
    }

    let ignore_cp = "--ignore-preflight-errors=SystemVerification,NumCPU,Mem";
    // cp-1: exactly one kubeadm call, init with Kiln's config.
    let all = calls(&mut cp1)?;
    let kubeadm = kubeadm_calls(&all);
    assert_eq!(kubeadm.len(), 1, "{kubeadm:?}");
    assert_eq!(
        argv(kubeadm[0]),
        [
            "/usr/bin/kubeadm",
            "init",
            "--config",
            CONFIG,
            "--upload-certs",
            "--skip-token-print",
            "--skip-certificate-key-print",
            ignore_cp,
        ],
        "{:?}",
        kubeadm[0]
    );
    assert_eq!(kubeadm[0]["result"], "ok", "{:?}", kubeadm[0]);
    let cc = doc(kubeadm[0], "ClusterConfiguration").context("no ClusterConfiguration")?;
    assert_eq!(cc["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(cc["controlPlaneEndpoint"], "apiserver.cluster.local:6443");
    assert_eq!(cc["certificateValidityPeriod"], "876000h0m0s");
    assert_eq!(cc["caCertificateValidityPeriod"], "876000h0m0s");
    assert_eq!(
        strings(&cc["etcd"]["external"]["endpoints"]),
        [
            format!("https://{NET}.11:2379"),
            format!("https://{NET}.12:2379")
        ]
    );
    let cm = cc["controllerManager"]["extraArgs"]
        .as_array()
        .context("controllerManager.extraArgs")?;
    assert!(
        cm.iter()
            .any(|a| a["name"] == "cluster-signing-duration" && a["value"] == "876000h"),
        "{cm:?}"
    );
    let proxy = doc(kubeadm[0], "KubeProxyConfiguration").context("no KubeProxyConfiguration")?;
    assert_eq!(proxy["mode"], "ipvs");
    assert_eq!(strings(&proxy["ipvs"]["excludeCIDRs"]), ["10.103.97.2/32"]);
    let kubectl: Vec<&Value> = all.iter().filter(|c| c["tool"] == "kubectl").collect();
    assert!(!kubectl.is_empty(), "manifests never applied: {all:?}");
    assert!(
        argv(kubectl[0]).contains(&"/usr/share/kiln/manifests".to_string()),
        "{:?}",
        kubectl[0]
    );

    // cp-2: joined as a control plane (through cp-1), with the certificate key.
    let all = calls(&mut cp2)?;
    let kubeadm = kubeadm_calls(&all);
    let last = kubeadm.last().context("no kubeadm call on cp-2")?;
    assert_eq!(
        argv(last),
        ["/usr/bin/kubeadm", "join", "--config", CONFIG, ignore_cp],
        "{last:?}"
    );
    assert_eq!(last["result"], "ok", "{last:?}");
    let join = doc(last, "JoinConfiguration").context("no JoinConfiguration")?;
    assert_eq!(
        join["discovery"]["bootstrapToken"]["apiServerEndpoint"],
        "apiserver.cluster.local:6443"
    );
    assert_eq!(
        join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"],
        format!("{NET}.12")
    );
    let (_, hosts) = exec(&mut cp2, "busybox grep apiserver.cluster.local /etc/hosts")?;
    assert!(
        hosts.starts_with(&format!("{NET}.12 ")),
        "cp-2 should reach its own API server now: {hosts}"
    );

    // worker: retried while the endpoint was down, then joined through the VIP.
    let all = calls(&mut worker)?;
    let kubeadm = kubeadm_calls(&all);
    assert!(kubeadm.len() >= 2, "{kubeadm:?}");
    for call in &kubeadm {
        assert_eq!(
            argv(call),
            [
                "/usr/bin/kubeadm", "join", "--config", CONFIG,
                "--ignore-preflight-errors=SystemVerification,FileAvailable--etc-kubernetes-pki-ca.crt",
            ],
            "{call:?}"
        );
    }
    let first = kubeadm[0]["result"].as_str().unwrap_or("");
    assert!(
        first.contains("couldn't validate the identity of the API Server"),
        "{first}"
    );
    assert_eq!(
        kubeadm.last().map(|c| c["result"].clone()),
        Some("ok".into())
    );
    let join = doc(kubeadm[0], "JoinConfiguration").context("no JoinConfiguration")?;
    assert!(
        join.get("controlPlane").is_none_or(Value::is_null),
        "{join}"
    );
    let hashes = strings(&join["discovery"]["bootstrapToken"]["caCertHashes"]);
    assert!(
        hashes.len() == 1 && hashes[0].starts_with("sha256:"),
        "{hashes:?}"
    );
    let (_, hosts) = exec(
        &mut worker,
        "busybox grep apiserver.cluster.local /etc/hosts",
    )?;
    assert!(hosts.starts_with("10.103.97.2 "), "{hosts}");

    // kubelet runs everywhere with kubeadm's flags.
    for vm in [&mut cp1, &mut cp2, &mut worker] {
        let all = calls(vm)?;
        let kubelet = all
            .iter()
            .rfind(|c| c["tool"] == "kubelet")
            .context("kubelet never ran")?;
        let args = argv(kubelet);
        for flag in [
            "--config=/var/lib/kubelet/config.yaml",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
        ] {
            assert!(args.iter().any(|a| a == flag), "{args:?}");
        }
        assert!(
            args.iter().any(|a| a.starts_with("--node-ip=")),
            "kubeadm-flags.env not used: {args:?}"
        );
    }
    Ok(())
}
