//! `kiln dev` end to end, through the real `kiln` binary as a user runs it: cluster `a`
//! (one control plane, one worker) comes up ready, its forwarded etcd port answers a TLS
//! handshake on 127.0.0.1, a second `up` of `a` is refused, cluster `b` runs beside it,
//! `down` leaves no QEMU, no hub and no state folder, and the base image is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use qemu_tests::image::{self, require_tools};
use qemu_tests::{require_qemu, Arch};
use serde_json::Value;

mod common;

const TOOLS: &[&str] = &["qemu-img", "python3", "busybox"];

/// The `kiln` binary of this tree, (re)built by cargo so a stale one is never tested
/// (a no-op when `cargo test --workspace` built it already).
fn kiln_binary() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-j2", "-p", "kiln-imager", "--bin", "kiln"])
        .env("CARGO_TARGET_DIR", image::target_dir())
        .status()
        .context("run cargo build for kiln")?;
    ensure!(
        status.success(),
        "cargo build -p kiln-imager --bin kiln: {status}"
    );
    let bin = image::target_dir().join("debug/kiln");
    ensure!(
        bin.is_file(),
        "{} is missing after the build",
        bin.display()
    );
    Ok(bin)
}

struct Kiln {
    bin: PathBuf,
    state_home: PathBuf,
    /// Clusters to take down if the test fails half-way.
    up: Vec<String>,
}

impl Kiln {
    /// `kiln dev <args>`; stderr (progress) goes to the test's stderr.
    fn dev(&self, args: &[&str]) -> Result<Output> {
        eprintln!("$ kiln dev {}", args.join(" "));
        let out = Command::new(&self.bin)
            .arg("dev")
            .args(args)
            .env("XDG_STATE_HOME", &self.state_home)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("run kiln")?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        Ok(out)
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.dev(args)?;
        ensure!(out.status.success(), "kiln dev {args:?}: {}", out.status);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn state(&self, name: &str) -> Result<Value> {
        let path = self.cluster_dir(name).join("state.json");
        Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?)
    }

    fn cluster_dir(&self, name: &str) -> PathBuf {
        self.state_home.join("kiln/dev").join(name)
    }
}

impl Drop for Kiln {
    fn drop(&mut self) {
        for name in std::mem::take(&mut self.up) {
            let _ = self.dev(&["down", "--name", &name, "--timeout", "5"]);
        }
    }
}

/// Every pid of a cluster: its QEMUs and its hub.
fn pids(state: &Value) -> Vec<u64> {
    let nodes = state["nodes"].as_array().cloned().unwrap_or_default();
    nodes
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .chain(state["hub_pid"].as_u64())
        .collect()
}

fn running(pid: u64) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// A TLS 1.2 ClientHello (ECDHE with AES-128-GCM; P-256/X25519; ECDSA and RSA).
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([0x4b; 32]); // random
    body.push(0); // no session id
    body.extend([0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // cipher suites
    body.extend([0x01, 0x00]); // null compression
    let ext: &[u8] = &[
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x17, 0x00, 0x1d, // groups
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // point formats
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, // sigalgs
    ];
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![0x01, 0];
    hs.extend((body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

/// etcd on the guest answers a ClientHello through the host port with a ServerHello (a
/// forward that reaches nothing is accepted by QEMU and then closed: no bytes).
fn tls_server_hello(port: u64) -> Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port as u16))
        .with_context(|| format!("connect 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(&client_hello())?;
    let mut head = [0u8; 6];
    s.read_exact(&mut head)
        .with_context(|| format!("no TLS answer on 127.0.0.1:{port}"))?;
    ensure!(
        head[0] == 0x16 && head[5] == 0x02,
        "not a ServerHello: {head:02x?}"
    );
    Ok(())
}

fn forward(state: &Value, node: usize, guest: u64) -> Result<u64> {
    let forwards = state["nodes"][node]["forwards"]
        .as_array()
        .context("forwards")?;
    forwards
        .iter()
        .find(|f| f[1].as_u64() == Some(guest))
        .and_then(|f| f[0].as_u64())
        .with_context(|| format!("no forward of {guest} in {state}"))
}

fn assert_ready(status: &str, nodes: &[&str]) -> Result<()> {
    for node in nodes {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{node} ")))
            .with_context(|| format!("{node} missing from:\n{status}"))?;
        ensure!(line.contains("ready"), "{node} is not ready: {line}");
    }
    Ok(())
}

fn fingerprint(base: &Path) -> Result<(String, std::time::SystemTime)> {
    Ok((image::sha256(base)?, std::fs::metadata(base)?.modified()?))
}

#[test]
fn dev_clusters_side_by_side() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !require_tools(TOOLS) {
        return Ok(());
    }
    let bin = kiln_binary()?;
    let dir = image::target_dir().join("qemu-tests").join("dev");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let t0 = Instant::now();
    let (base, _) = common::build_node(&dir, &["etcd-server", "etcd-client"])?;
    let built = t0.elapsed();
    let before = fingerprint(&base)?;
    let mut k = Kiln {
        bin,
        state_home: dir.join("state"),
        up: Vec::new(),
    };
    let base_arg = common::d(&base);

    let t1 = Instant::now();
    k.up.push("a".into());
    let table = k.ok(&[
        "up",
        "--name",
        "a",
        "--control-planes",
        "1",
        "--workers",
        "1",
        "--image",
        &base_arg,
        "--memory",
        "1024",
    ])?;
    let up_a = t1.elapsed();
    assert_ready(&table, &["cp-1", "worker-1"])?;
    ensure!(
        table.contains("no kubeconfig"),
        "an image without Kubernetes gets no kubeconfig:\n{table}"
    );
    assert_ready(&k.ok(&["status", "--name", "a"])?, &["cp-1", "worker-1"])?;
    let a = k.state("a")?;
    tls_server_hello(forward(&a, 0, 2379)?)?;
    let console = std::fs::read(k.cluster_dir("a").join("cp-1/console.log"))?;
    ensure!(
        !console.is_empty(),
        "console.log stays empty without a client"
    );
    let events = k.ok(&["logs", "--name", "a", "--events", "worker-1"])?;
    ensure!(events.contains("\"event\":\"ready\""), "{events}");

    let again = k.dev(&["up", "--name", "a", "--image", &base_arg])?;
    ensure!(
        again.status.code() == Some(1),
        "second up of a: {}",
        again.status
    );

    let t2 = Instant::now();
    k.up.push("b".into());
    k.ok(&[
        "up",
        "--name",
        "b",
        "--control-planes",
        "1",
        "--workers",
        "0",
        "--image",
        &base_arg,
        "--memory",
        "1024",
    ])?;
    let up_b = t2.elapsed();
    assert_ready(&k.ok(&["status", "--name", "b"])?, &["cp-1"])?;
    assert_ready(&k.ok(&["status", "--name", "a"])?, &["cp-1", "worker-1"])?;
    let b = k.state("b")?;
    ensure!(
        forward(&a, 0, 2379)? != forward(&b, 0, 2379)?,
        "ports shared"
    );
    tls_server_hello(forward(&b, 0, 2379)?)?;

    // A QEMU that dies under the cluster: status names it crashed, down still cleans up.
    let b_qemu = b["nodes"][0]["pid"]
        .as_u64()
        .context("b's cp-1 has no pid")?;
    let killed = Command::new("kill")
        .args(["-KILL", &b_qemu.to_string()])
        .status()?;
    ensure!(killed.success(), "kill -KILL {b_qemu}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(b_qemu) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let crashed = k.ok(&["status", "--name", "b"])?;
    let row = crashed
        .lines()
        .find(|l| l.contains("cp-1"))
        .with_context(|| format!("cp-1 missing from:\n{crashed}"))?;
    ensure!(
        row.contains("crashed"),
        "a killed QEMU is not reported: {row}"
    );

    let t3 = Instant::now();
    for (name, state) in [("a", &a), ("b", &b)] {
        k.ok(&["down", "--name", name])?;
        k.up.retain(|n| n != name);
        let left: Vec<u64> = pids(state).into_iter().filter(|p| running(*p)).collect();
        ensure!(left.is_empty(), "{name}: processes left: {left:?}");
        ensure!(!k.cluster_dir(name).exists(), "{name}: state folder left");
    }
    let down = t3.elapsed();
    let gone = k.dev(&["status", "--name", "a"])?;
    ensure!(gone.status.code() == Some(1), "status of a removed cluster");
    ensure!(fingerprint(&base)? == before, "the base image changed");
    eprintln!(
        "dev timings: image {:.1}s, up a (2 nodes) {:.1}s, up b (1 node) {:.1}s, down both {:.1}s",
        built.as_secs_f64(),
        up_a.as_secs_f64(),
        up_b.as_secs_f64(),
        down.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
