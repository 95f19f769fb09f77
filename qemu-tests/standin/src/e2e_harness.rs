//! The end-to-end test's harness: the built binary behind symlinks named after the tools,
//! temporary node roots with a CA (rcgen) and the files kubeadm expects, calls.jsonl.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::Value;

use super::pki::testing::new_ca;
use super::schema_tests::{fill, INIT};
use super::testdir::TempDir;
use super::Root;

/// `target/<profile>/kube-standin`, next to the test binary's `deps/`.
pub fn binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("kube-standin");
    bin.exists().then_some(bin)
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

pub struct Tools {
    dir: TempDir,
}

impl Tools {
    pub fn new(binary: &Path) -> Tools {
        let dir = TempDir::new("bin");
        for name in ["kubeadm", "kubelet", "kubectl"] {
            std::os::unix::fs::symlink(binary, dir.path().join(name))
                .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
        }
        Tools { dir }
    }

    pub fn command(&self, tool: &str, root: &Root, args: &[&str]) -> Command {
        let mut c = Command::new(self.dir.path().join(tool));
        c.args(args).env("KUBE_STANDIN_ROOT", root.path("/"));
        c
    }

    pub fn run(&self, tool: &str, root: &Root, args: &[&str]) -> (bool, String, String) {
        let Ok(Output {
            status,
            stdout,
            stderr,
        }) = self.command(tool, root, args).output()
        else {
            panic!("run {tool}");
        };
        let (out, err) = (
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        );
        (status.success(), out, err)
    }
}

/// Kills the child if the test panics before stopping it.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn write(root: &Root, path: &str, text: &str) {
    root.write(path, text.as_bytes(), 0o600)
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// A control-plane node root: CAs, service-account key, etcd client files, hosts, config.
pub fn control_plane_root(port: u16, healthz: u16) -> (TempDir, Root, String) {
    let dir = TempDir::new("cp");
    let root = Root::new(dir.path());
    let (ca, ca_key) = new_ca("kubernetes");
    let (fp, fp_key) = new_ca("front-proxy-ca");
    let Ok(sa) = rcgen::KeyPair::generate() else {
        panic!("sa key")
    };
    for (path, text) in [
        ("ca.crt", ca.as_str()),
        ("ca.key", ca_key.as_str()),
        ("front-proxy-ca.crt", fp.as_str()),
        ("front-proxy-ca.key", fp_key.as_str()),
        ("sa.key", sa.serialize_pem().as_str()),
        ("sa.pub", sa.public_key_pem().as_str()),
        ("etcd/ca.crt", "x"),
        ("apiserver-etcd-client.crt", "x"),
        ("apiserver-etcd-client.key", "x"),
    ] {
        write(&root, &format!("/etc/kubernetes/pki/{path}"), text);
    }
    write(
        &root,
        "/etc/hosts",
        "127.0.0.1 localhost\n127.0.0.1 apiserver.cluster.local # kiln\n",
    );
    write(&root, "/kubeadm.yaml", &fill(INIT, port, healthz, ""));
    (dir, root, ca)
}

pub fn worker_root(name: &str, join: &str) -> (TempDir, Root) {
    let dir = TempDir::new(name);
    let root = Root::new(dir.path());
    write(&root, "/etc/hosts", "127.0.0.1 apiserver.cluster.local\n");
    write(&root, "/join.yaml", join);
    (dir, root)
}

pub fn calls(root: &Root) -> Vec<Value> {
    let text = root.read(super::CALLS).unwrap_or_else(|e| panic!("{e:#}"));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
