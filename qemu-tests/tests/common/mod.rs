//! Pieces shared by the QEMU test files: the test node image (default spec + busybox +
//! a busybox OCI archive), qcow2 overlays, event filtering and reading the STATE
//! partition from the host with `debugfs`; network-boot helpers in [`pxe`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pxe;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use kiln_imager::pipeline::{self, BuildOptions};
use qemu_tests::image::{self, tool_ok};
use qemu_tests::Vm;
use serde_json::{json, Value};

/// An SSH key shaped like a real one (never used to log in).
pub const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKeyNotARealKey000000000000000000000 ops@test";

pub fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

pub fn d(p: &Path) -> String {
    p.display().to_string()
}

/// The default spec plus busybox-static (sleep, ping, pkill for runcmd) and an OCI
/// archive of busybox built by testdata/make-oci.py, baked under /usr/share/kiln/images.
pub fn image_spec(dir: &Path, extra_packages: &[&str]) -> Result<PathBuf> {
    let oci = dir.join("busybox-oci.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/make-oci.py");
    tool_ok("python3", &[d(&script), "/bin/busybox".into(), d(&oci)])?;
    let digest = image::sha256(&oci)?;
    let extra: String = extra_packages
        .iter()
        .map(|p| format!("\n    \"{p}\","))
        .collect();
    let base = kiln_imager::spec::DEFAULT_SPEC.replace(
        "\"dash\",",
        &format!("\"dash\",\n    \"busybox-static\",{extra}"),
    );
    ensure!(
        base.contains("busybox-static"),
        "default spec changed: no dash entry"
    );
    let text = format!(
        "{base}\n[[artifact]]\ndest = \"/usr/share/kiln/images/busybox.tar\"\npath = \"{}\"\nsha256 = \"{digest}\"\n",
        d(&oci)
    );
    let spec = dir.join("node.toml");
    std::fs::write(&spec, text)?;
    Ok(spec)
}

/// Builds the test node image (plus `extra_packages`) into `dir/img`; returns (qcow2, raw).
pub fn build_node(dir: &Path, extra_packages: &[&str]) -> Result<(PathBuf, PathBuf)> {
    let spec = image_spec(dir, extra_packages)?;
    let report = pipeline::build(&BuildOptions {
        spec: Some(spec),
        out: dir.join("img"),
        quiet: true,
        ..BuildOptions::default()
    })?;
    Ok((output(&report, "qcow2")?, output(&report, "raw")?))
}

/// The output of a build whose file name ends in `.ext`.
pub fn output(report: &pipeline::BuildReport, ext: &str) -> Result<PathBuf> {
    report
        .outputs
        .iter()
        .find(|o| o.0.extension().is_some_and(|e| e == ext))
        .map(|o| o.0.clone())
        .with_context(|| format!("no .{ext} output"))
}

/// A fresh qcow2 overlay at `path` backed by `base` (the base is never written).
pub fn overlay(base: &Path, path: &Path) -> Result<()> {
    let backing = d(&base.canonicalize()?);
    tool_ok(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            &backing,
            "-F",
            "qcow2",
            &d(path),
        ],
    )?;
    Ok(())
}

/// `debugfs -R CMD` on an ext4 image.
pub fn debugfs(state: &Path, cmd: &str) -> Result<String> {
    Ok(tool_ok("debugfs", &["-R", cmd, &d(state)])?.stdout)
}

/// Copies the partition named `name` out of a raw disk image into `out`.
pub fn partition(raw: &Path, name: &str, out: &Path) -> Result<()> {
    let dump = image::parse_sfdisk_dump(&tool_ok("sfdisk", &["-d", &d(raw)])?.stdout)?;
    let p = dump
        .partitions
        .iter()
        .find(|p| p.name == name)
        .with_context(|| format!("no partition {name}"))?;
    image::extract(raw, p.start * 512, p.size * 512, out)
}

/// The KILN-STATE partition of a qcow2 disk, as an ext4 image in `dir`.
pub fn state_partition(disk: &Path, dir: &Path) -> Result<PathBuf> {
    let raw = dir.join("disk.raw");
    tool_ok("qemu-img", &["convert", "-O", "raw", &d(disk), &d(&raw)])?;
    let state = dir.join("state.img");
    partition(&raw, "KILN-STATE", &state)?;
    std::fs::remove_file(&raw)?;
    Ok(state)
}

/// Runs `command` in a guest (`kiln: debug_exec: true`) through an `exec` request; (exit code, output).
pub fn exec(c: &mut Vm, command: &str) -> Result<(i64, String)> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let id = format!(
        "e{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    c.send(&json!({"request": "exec", "id": id, "command": command}))?;
    loop {
        let e = c.wait_event("exec_result", Duration::from_secs(120))?;
        if e["id"] == id.as_str() {
            let code = e["code"].as_i64().context("exec_result without code")?;
            let output = e["output"].as_str().unwrap_or_default().to_string();
            return Ok((code, output));
        }
    }
}

/// Waits for an event matching `pred` among the events from index `since` on (the order
/// between backends is not fixed, so nothing is consumed).
pub fn wait_for(
    c: &mut Vm,
    since: usize,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = c.events();
        let hit = events.iter().skip(since).find(|e| pred(e));
        if let Some(e) = hit {
            return Ok(e.clone());
        }
        if Instant::now() >= deadline {
            // Fails with the console tail and all events.
            c.wait_event("awaited-event-never-came", Duration::ZERO)?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Boots node `name` of a `kiln cluster gen` folder as VM `vm_name`: a fresh qcow2 overlay
/// of `base` in `dir`, one NIC on `hub` port `port` with `mac` (so it is eth0, where the
/// seed puts the static address), and its seed.img as a read-only virtio disk.
#[allow(clippy::too_many_arguments)]
pub fn start_cluster_node(
    vm_name: &str,
    dir: &Path,
    base: &Path,
    hub: &qemu_tests::hub::Hub,
    port: usize,
    mac: &str,
    cluster: &Path,
    name: &str,
    memory_mib: u32,
) -> Result<Vm> {
    let disk = dir.join(format!("{vm_name}-{port}.qcow2"));
    overlay(base, &disk)?;
    let mut cfg = qemu_tests::VmConfig::new(vm_name, &disk);
    cfg.memory_mib = memory_mib;
    cfg.nic = None;
    cfg.snapshot = false;
    let seed = cluster.join("nodes").join(name).join("seed.img");
    ensure!(seed.is_file(), "no seed {}", seed.display());
    cfg.extra_args.extend(hub.nic_args(port, mac));
    cfg.extra_args.extend([
        "-drive".to_string(),
        format!("if=virtio,format=raw,readonly=on,file={}", d(&seed)),
    ]);
    Vm::start(cfg)
}
