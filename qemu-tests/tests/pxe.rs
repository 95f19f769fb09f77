//! Network boot end to end: `kiln build --format pxe` → one `kiln pxe serve` → three
//! diskless VMs booting side by side through QEMU's SeaBIOS and the NIC's iPXE option ROM.
//! QEMU's user networking hands out the boot file over its built-in TFTP (`tftp=`,
//! `bootfile=`): a two-line script that sets `kiln-base` and chains the bundle's
//! boot.ipxe over HTTP. Each node downloads kernel, initrd and root.squashfs, checks the
//! root's sha256 in stage 1, fetches its NoCloud seed by MAC and must come up `ready`
//! with its own hostname. A fourth VM boots a bundle whose root.squashfs was corrupted
//! and must stop in stage 1 with the digest error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use kiln_imager::pipeline::{self, BuildOptions};
use kiln_imager::spec::Format;
use qemu_tests::{require_qemu, Arch, Vm, VmConfig};

mod common;
use common::pxe::{check_bundle, check_node, check_server_log, serve, tftp_dir, write_seed};
use common::{d, events_named};

const BOOT: Duration = Duration::from_secs(420);
const MACS: [&str; 3] = [
    "52:54:00:a0:00:01",
    "52:54:00:a0:00:02",
    "52:54:00:a0:00:03",
];
const BAD_MAC: &str = "52:54:00:a0:00:09";
/// The script iPXE gets as DHCP boot file.
const CHAIN: &str = "chain.ipxe";

fn start_vm(name: &str, mac: &str, tftp: &Path) -> Result<Vm> {
    let mut cfg = VmConfig::firmware_only(name);
    cfg.bios = true;
    cfg.memory_mib = 1536;
    cfg.nic = Some(format!(
        "user,model=virtio-net-pci,mac={mac},tftp={},bootfile={CHAIN}",
        d(tftp)
    ));
    cfg.extra_args = vec!["-boot".into(), "n".into()];
    Vm::start(cfg)
}

/// Polls `vms` until each has sent `ready` (or a `fatal`, an error); returns the host
/// seconds from each QEMU's start to the moment its `ready` was seen (±0.1 s).
fn ready_times(vms: &mut [Vm]) -> Result<Vec<f64>> {
    let mut times: Vec<Option<f64>> = vec![None; vms.len()];
    let end = Instant::now() + BOOT;
    while times.iter().any(Option::is_none) {
        for (vm, t) in vms.iter_mut().zip(times.iter_mut()) {
            if t.is_none() && !events_named(&vm.events(), "ready").is_empty() {
                *t = Some(vm.elapsed().as_secs_f64());
            }
            if t.is_none()
                && (Instant::now() > end || !events_named(&vm.events(), "fatal").is_empty())
            {
                vm.wait_event("ready", Duration::ZERO)?; // fails with console and events
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(times.into_iter().flatten().collect())
}

/// Benchmark (run by imager/benches/pxe.sh, not by CI): the bundle in $PXE_BENCH_BUNDLE
/// served by one server, 1 then 3 diskless VMs booted at once; host seconds from QEMU start
/// to `ready` per node and the stage-1 root download, as JSON into $PXE_BENCH_OUT.
#[test]
#[ignore = "benchmark: run by imager/benches/pxe.sh"]
fn pxe_bench() -> Result<()> {
    if !require_qemu(Arch::X86_64) {
        return Ok(());
    }
    let bundle = PathBuf::from(std::env::var("PXE_BENCH_BUNDLE")?);
    let out = PathBuf::from(std::env::var("PXE_BENCH_OUT")?);
    let work = qemu_tests::image::target_dir().join("qemu-tests/pxe-bench");
    let _ = std::fs::remove_dir_all(&work);
    let server = serve(&bundle, None, Arc::new(Mutex::new(Vec::new())))?;
    let tftp = tftp_dir(&work.join("tftp"), server.local_addr().port(), CHAIN, false)?;
    let mut runs = Vec::new();
    let mut accel = String::new();
    for n in [1usize, 3] {
        let mut vms = (0..n)
            .map(|i| {
                start_vm(
                    &format!("pxe-bench-{n}-{i}"),
                    &format!("52:54:00:b0:{n:02x}:{i:02x}"),
                    &tftp,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let ready = ready_times(&mut vms)?;
        let fetch: Vec<f64> = vms
            .iter()
            .map(|vm| {
                events_named(&vm.events(), "root_fetched")
                    .first()
                    .and_then(|e| e["seconds"].as_f64())
                    .unwrap_or(f64::NAN)
            })
            .collect();
        accel = format!("{:?}", vms[0].accel());
        eprintln!("{n} node(s): ready {ready:?} s, root download {fetch:?} s");
        runs.push(serde_json::json!({"nodes": n, "ready_s": ready, "root_fetch_s": fetch}));
        for vm in &mut vms {
            vm.kill()?;
        }
    }
    server.stop();
    let result = serde_json::json!({"accel": accel, "runs": runs});
    std::fs::write(&out, serde_json::to_vec_pretty(&result)?)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn pxe_boots_three_nodes_from_one_server() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !qemu_tests::image::require_tools(&["python3", "sha256sum"]) {
        return Ok(());
    }
    let work = qemu_tests::image::target_dir().join("qemu-tests/pxe-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let spec = common::image_spec(&work, &[])?;
    let t = Instant::now();
    let bundle = work.join("bundle");
    let report = pipeline::build(&BuildOptions {
        spec: Some(spec),
        out: bundle.clone(),
        quiet: true,
        formats: Some(vec![Format::Pxe]),
        ..BuildOptions::default()
    })?;
    eprintln!("pxe bundle built in {:.1}s", t.elapsed().as_secs_f64());
    let names: Vec<String> = report
        .outputs
        .iter()
        .map(|o| o.0.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    ensure!(
        names
            == [
                "vmlinuz",
                "initrd",
                "root.squashfs",
                "boot.ipxe",
                "SHA256SUMS"
            ],
        "bundle files {names:?}"
    );
    ensure!(
        !bundle.join("kiln.raw").exists() && !bundle.join("kiln.qcow2").exists(),
        "--format pxe wrote a disk image"
    );
    let root_sha = check_bundle(&bundle)?;

    // A second bundle, identical but for one flipped byte in the middle of the root.
    let bad = work.join("bad-bundle");
    std::fs::create_dir_all(&bad)?;
    for f in ["vmlinuz", "initrd", "boot.ipxe"] {
        std::fs::copy(bundle.join(f), bad.join(f))?;
    }
    let mut root = std::fs::read(bundle.join("root.squashfs"))?;
    let mid = root.len() / 2;
    root[mid] ^= 0x5a;
    std::fs::write(bad.join("root.squashfs"), root)?;

    let seeds = work.join("seeds");
    for (i, mac) in MACS.iter().enumerate() {
        write_seed(&seeds, mac, &format!("pxe-{}", i + 1))?;
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = serve(&bundle, Some(&seeds), log.clone())?;
    let bad_log = Arc::new(Mutex::new(Vec::new()));
    let bad_server = serve(&bad, None, bad_log.clone())?;
    let tftp = tftp_dir(&work.join("tftp"), server.local_addr().port(), CHAIN, false)?;
    let bad_tftp = tftp_dir(
        &work.join("bad-tftp"),
        bad_server.local_addr().port(),
        CHAIN,
        false,
    )?;

    let mut vms = Vec::new();
    for (i, mac) in MACS.iter().enumerate() {
        vms.push(start_vm(&format!("pxe-{}", i + 1), mac, &tftp)?);
    }
    let mut corrupt = start_vm("pxe-corrupt", BAD_MAC, &bad_tftp)?;

    // The corrupted root: a fatal stage-1 event naming the digest mismatch, no stage 2.
    let fatal = corrupt.wait_event("fatal", BOOT)?;
    let err = fatal["error"].as_str().unwrap_or_default();
    ensure!(fatal["stage"] == 1, "{fatal}");
    ensure!(
        err.contains("sha256") && err.contains(&root_sha) && err.contains("refusing it"),
        "fatal error does not name the digest mismatch: {err}"
    );
    ensure!(
        events_named(&corrupt.events(), "stage2").is_empty(),
        "corrupt root reached stage 2"
    );
    eprintln!(
        "corrupt root refused after {:.1}s: {err}",
        corrupt.elapsed().as_secs_f64()
    );
    corrupt.kill()?;

    let ready_at = ready_times(&mut vms)?;
    for (i, vm) in vms.iter_mut().enumerate() {
        let host = format!("pxe-{}", i + 1);
        vm.wait_console(&format!("kiln-pxe-host={host}"), Duration::from_secs(120))?;
        let fetched = check_node(&vm.events(), MACS[i], &root_sha)?;
        eprintln!(
            "{host}: ready {:.1}s after QEMU start, root {} MiB in {}s",
            ready_at[i],
            fetched["bytes"].as_u64().unwrap_or(0) >> 20,
            fetched["seconds"]
        );
    }
    for vm in &mut vms {
        vm.powerdown()?;
    }
    for vm in &mut vms {
        vm.wait_exit(Duration::from_secs(120))?;
    }
    server.stop();
    bad_server.stop();
    check_server_log(&log.lock().unwrap(), MACS.len(), &MACS)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
