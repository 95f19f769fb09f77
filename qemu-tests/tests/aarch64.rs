//! aarch64 end to end: `kiln build --arch aarch64` (Debian arm64 packages, the aarch64 init
//! kiln carries) boots under `qemu-system-aarch64 -M virt -cpu cortex-a57` (TCG) with
//! Debian's AAVMF firmware to `ready`; a NoCloud seed made by `cloud-localds` sets the
//! hostname and a static address; containerd runs an arm64 busybox container from an OCI
//! archive baked into the image (busybox taken from Debian's arm64 busybox-static .deb).
//! The build is repeated and must be byte-identical.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use kiln_imager::pipeline::{self, BuildOptions};
use kiln_imager::spec::{Arch as SpecArch, DEFAULT_SPEC};
use qemu_tests::image::{self, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm, VmConfig};

mod common;
use common::{d, events_named};

const TOOLS: &[&str] = &["cloud-localds", "python3", "dpkg-deb", "file"];
const CONTAINER: &str = "( while [ ! -e /run/kiln/images-imported ]; do busybox sleep 1; done; echo kiln-arch=$(ctr -n k8s.io run --rm docker.io/kiln/busybox:test kiln-a1 /bin/busybox uname -m) ) > /dev/console 2>&1 &";
const HOST: &str = "echo kiln-host=$(busybox cat /proc/sys/kernel/hostname) > /dev/console";
const NETWORK_CONFIG: &str = "version: 2\nethernets:\n  lan:\n    match:\n      macaddress: '52:54:00:12:34:56'\n    addresses: [10.0.2.60/24]\n    gateway4: 10.0.2.2\n";

fn spec_text(extra: &str) -> String {
    let base = DEFAULT_SPEC.replace("\"dash\",", "\"dash\",\n    \"busybox-static\",");
    format!("{base}{extra}")
}

fn build(dir: &Path, spec: &str, out: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{out}.toml"));
    std::fs::write(&path, spec)?;
    let report = pipeline::build(&BuildOptions {
        spec: Some(path),
        out: dir.join(out),
        quiet: true,
        arch: Some(SpecArch::Aarch64),
        ..BuildOptions::default()
    })?;
    common::output(&report, "qcow2")
}

/// Debian's arm64 busybox (from the .deb the first build cached) as an OCI archive.
fn arm64_busybox_oci(dir: &Path, lock: &Path) -> Result<PathBuf> {
    let lock = kiln_imager::lock::parse(&std::fs::read_to_string(lock)?, "lock")?;
    let deb = lock
        .packages
        .iter()
        .find(|p| p.name == "busybox-static")
        .context("busybox-static not in the lock")?;
    ensure!(deb.arch == "arm64", "busybox-static is {}", deb.arch);
    let cache = kiln_imager::debian::fetch::Fetcher::default_cache_dir();
    let blob = cache
        .join("sha256")
        .join(&deb.sha256[..2])
        .join(&deb.sha256);
    let x = dir.join("busybox-deb");
    tool_ok("dpkg-deb", &["-x", &d(&blob), &d(&x)])?;
    let bin = x.join("usr/bin/busybox");
    let kind = tool_ok("file", &[d(&bin)])?.stdout;
    ensure!(kind.contains("ARM aarch64"), "not an arm64 busybox: {kind}");
    let oci = dir.join("busybox-arm64-oci.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/make-oci.py");
    tool_ok("python3", &[d(&script), d(&bin), d(&oci)])?;
    Ok(oci)
}

#[test]
fn aarch64_boots_with_seed_and_runs_an_arm64_container() -> Result<()> {
    if !require_qemu(Arch::Aarch64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let dir = image::target_dir().join("qemu-tests/aarch64-work");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let t = Instant::now();
    build(&dir, &spec_text(""), "first")?;
    let oci = arm64_busybox_oci(&dir, &dir.join("first.lock"))?;
    let digest = image::sha256(&oci)?;
    let artifact = format!(
        "\n[[artifact]]\ndest = \"/usr/share/kiln/images/busybox.tar\"\npath = \"{}\"\nsha256 = \"{digest}\"\n",
        d(&oci)
    );
    let disk = build(&dir, &spec_text(&artifact), "a")?;
    let again = build(&dir, &spec_text(&artifact), "b")?;
    ensure!(
        image::sha256(&disk)? == image::sha256(&again)?,
        "two aarch64 builds differ"
    );
    eprintln!("aarch64 builds (3) in {:.1}s", t.elapsed().as_secs_f64());

    let seed = dir.join("seed.img");
    let (ud, md, nc) = (
        dir.join("user-data"),
        dir.join("meta-data"),
        dir.join("net.yaml"),
    );
    std::fs::write(
        &ud,
        format!("#cloud-config\nruncmd:\n  - {HOST}\n  - {CONTAINER}\n"),
    )?;
    std::fs::write(&md, "instance-id: iid-arm-1\nlocal-hostname: arm-node\n")?;
    std::fs::write(&nc, NETWORK_CONFIG)?;
    tool_ok(
        "cloud-localds",
        &[
            format!("--network-config={}", d(&nc)),
            d(&seed),
            d(&ud),
            d(&md),
        ],
    )?;
    let mut cfg = VmConfig::new("aarch64", &disk);
    cfg.arch = Arch::Aarch64;
    cfg.extra_args.extend([
        "-drive".to_string(),
        format!("if=virtio,format=raw,readonly=on,file={}", d(&seed)),
    ]);
    let mut vm = Vm::start(cfg)?;
    let ready = vm.wait_event("ready", Duration::from_secs(300))?;
    let ready_s = vm.elapsed().as_secs_f64();
    vm.wait_console("kiln-host=arm-node", Duration::from_secs(120))?;
    vm.wait_console("kiln-arch=aarch64", Duration::from_secs(180))?;
    let events = vm.events();
    let stage1 = events_named(&events, "stage1");
    ensure!(
        stage1[0]["kernel"]
            .as_str()
            .unwrap_or_default()
            .ends_with("-arm64"),
        "{}",
        stage1[0]
    );
    let found = events_named(&events, "config_found");
    ensure!(found[0]["instance_id"] == "iid-arm-1", "{}", found[0]);
    let net = events_named(&events, "network_online");
    ensure!(
        net[0]["interfaces"][0]["addresses"][0] == "10.0.2.60/24",
        "{}",
        net[0]
    );
    eprintln!(
        "aarch64: ready {ready_s:.1}s after QEMU start (guest {}s, {:?})",
        ready["boot_seconds"],
        vm.accel()
    );
    vm.powerdown()?;
    vm.wait_exit(Duration::from_secs(120))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
