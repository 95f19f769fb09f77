//! kube-standin (NOT Kubernetes): a strict stand-in for `kubeadm`, `kubelet` and `kubectl`
//! in QEMU test images, where real Kubernetes binaries cannot be had. One multi-call
//! binary (`src/bin/kube-standin.rs`) picks the tool from `argv[0]`'s basename.
//!
//! Strict on purpose: the kubeadm v1beta4 config is parsed into structs mirroring the
//! official reference with `deny_unknown_fields` (see [`v1beta4`]), KubeletConfiguration
//! and KubeProxyConfiguration against a documented subset ([`components`]), flags like
//! pflag ([`flags`]); a wrong config fails the call with a message naming the field.
//!
//! What it emulates: `kubeadm init` (preflight, apiserver certificate signed by the
//! cluster CA, kubeconfigs, kubelet files, a marker static Pod, waits for the kubelet and
//! the API server), `kubeadm join` (token discovery through the cluster-info ConfigMap
//! with JWS and CA pinning, kubelet files; control-plane joins also the API server), a
//! `kubelet` that "runs" the marker static Pod as an HTTPS server answering `/readyz`, and
//! `kubectl apply` / `get --raw` against it. Nothing is scheduled, nothing is stored in
//! etcd. What it does not emulate is listed in each tool's module docs.
//!
//! Every call appends one JSON line to `/var/lib/kube-standin/calls.jsonl`:
//! `{"tool", "argv", "config", "result"}` (+ `"manifests"` for `kubectl apply`, +
//! `"warnings"` for the kubelet). `KUBE_STANDIN_ROOT` (default `/`) prefixes every path
//! it reads or writes, for tests on the host.
//!
//! This module must not touch anything outside that root except the network.

pub mod checks;
pub mod components;
pub mod config;
mod cpfiles;
pub mod duration;
pub mod flags;
pub mod formats;
mod https;
mod join;
mod kubeadm;
pub mod kubeconfig;
mod kubectl;
mod kubelet;
mod pki;
mod preflight;
mod probe;
pub mod v1beta4;

#[cfg(test)]
mod e2e_harness;
#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod schema_tests;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

/// What every log line and help text starts with.
pub const BANNER: &str = "kube-standin (NOT Kubernetes)";
/// The version `kubeadm version -o short` prints.
pub const VERSION: &str = "v1.34.2-standin";
/// Where calls are recorded, under the root.
pub const CALLS: &str = "/var/lib/kube-standin/calls.jsonl";
/// The stand-in's "API server storage": ConfigMaps as JSON files, under the root.
pub const API_DIR: &str = "/var/lib/kube-standin/api";

/// Which tool a call is, from `argv[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Kubeadm,
    Kubelet,
    Kubectl,
}

impl Tool {
    pub fn from_argv0(argv0: &str) -> Option<Tool> {
        match Path::new(argv0).file_name()?.to_str()? {
            "kubeadm" => Some(Tool::Kubeadm),
            "kubelet" => Some(Tool::Kubelet),
            "kubectl" => Some(Tool::Kubectl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tool::Kubeadm => "kubeadm",
            Tool::Kubelet => "kubelet",
            Tool::Kubectl => "kubectl",
        }
    }
}

/// The directory every absolute path is taken relative to (`KUBE_STANDIN_ROOT`).
#[derive(Debug, Clone)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root(dir.into())
    }

    pub fn from_env() -> Root {
        Root::new(std::env::var_os("KUBE_STANDIN_ROOT").unwrap_or_else(|| "/".into()))
    }

    /// `abs` (an absolute path as the node sees it) under the root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.0.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    pub fn exists(&self, abs: impl AsRef<Path>) -> bool {
        self.path(abs).exists()
    }

    pub fn read(&self, abs: impl AsRef<Path>) -> Result<String> {
        let abs = abs.as_ref();
        fs::read_to_string(self.path(abs)).with_context(|| format!("open {}", abs.display()))
    }

    /// Writes `abs` through a temporary file and a rename, creating parent directories.
    pub fn write(&self, abs: impl AsRef<Path>, bytes: &[u8], mode: u32) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let abs = abs.as_ref();
        let path = self.path(abs);
        let dir = path.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let tmp = path.with_extension("standin-tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("write {}", abs.display()))
    }
}

/// One invocation, recorded once when it ends (the kubelet records when it starts serving).
#[derive(Debug)]
pub struct Call {
    pub tool: Tool,
    pub argv: Vec<String>,
    /// The parsed config documents (JSON) once known.
    pub config: Option<Value>,
    /// `kubectl apply`: files and their sha256.
    pub manifests: Option<Value>,
    pub warnings: Vec<String>,
    recorded: bool,
}

impl Call {
    pub fn new(tool: Tool, argv: Vec<String>) -> Call {
        Call {
            tool,
            argv,
            config: None,
            manifests: None,
            warnings: Vec::new(),
            recorded: false,
        }
    }

    pub fn warn(&mut self, message: String) {
        println!("{BANNER} {}: WARNING: {message}", self.tool.name());
        self.warnings.push(message);
    }

    /// Appends the call's JSON line to calls.jsonl (append + fsync); once per call.
    pub fn record(&mut self, root: &Root, result: &Result<()>) -> Result<()> {
        if self.recorded {
            return Ok(());
        }
        self.recorded = true;
        let mut line = json!({
            "tool": self.tool.name(),
            "argv": self.argv,
            "config": self.config,
            "result": match result {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("error: {e:#}"),
            },
        });
        if let Some(m) = &self.manifests {
            line["manifests"] = m.clone();
        }
        if !self.warnings.is_empty() {
            line["warnings"] = json!(self.warnings);
        }
        let path = root.path(CALLS);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("open {CALLS}"))?;
        f.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("append to {CALLS}"))
    }
}

/// Runs the tool `argv[0]` names with `argv[1..]`; returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let argv0 = argv.first().cloned().unwrap_or_default();
    let Some(tool) = Tool::from_argv0(&argv0) else {
        eprintln!(
            "{BANNER}: called as {argv0:?}; install it as kubeadm, kubelet or kubectl \
             (a symlink or copy with that name)"
        );
        return 1;
    };
    let root = Root::from_env();
    let args = argv.get(1..).unwrap_or_default().to_vec();
    let mut call = Call::new(tool, argv);
    let result = match tool {
        Tool::Kubeadm => kubeadm::run(&root, &args, &mut call),
        Tool::Kubelet => kubelet::run(&root, &args, &mut call),
        Tool::Kubectl => kubectl::run(&root, &args, &mut call),
    };
    if let Err(e) = call.record(&root, &result) {
        eprintln!("{BANNER}: record the call: {e:#}");
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e:#}");
            if tool == Tool::Kubeadm {
                eprintln!("To see the stack trace of this error execute with --v=5 or higher");
            }
            1
        }
    }
}

#[cfg(test)]
pub(crate) mod testdir {
    //! A directory under the system temp dir, removed on drop.
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static NEXT: AtomicUsize = AtomicUsize::new(0);

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> TempDir {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("kube-standin-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            TempDir(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
