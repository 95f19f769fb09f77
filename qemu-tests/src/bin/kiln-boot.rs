//! `kiln-boot IMAGE [QEMU ARGS…]`: boots a Kiln image under QEMU (OVMF; KVM where it works, else TCG)
//! and waits for `ready`. Prints the events and a JSON summary line with `ready_s`, the
//! seconds from QEMU start to `ready`. Used by the README's main job and the benchmarks.
//! `KILN_BOOT_ARCH=aarch64` for aarch64 images.

use std::time::Duration;

use anyhow::{Context, Result};
use qemu_tests::{Vm, VmConfig};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln-boot: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let image = args.next().context("usage: kiln-boot IMAGE [QEMU ARGS…]")?;
    let mut cfg = VmConfig::new("kiln-boot", &image);
    // KILN_BOOT_ARCH=aarch64 boots an aarch64 image (qemu-system-aarch64 -M virt, AAVMF).
    if std::env::var("KILN_BOOT_ARCH").is_ok_and(|a| a == "aarch64") {
        cfg.arch = qemu_tests::Arch::Aarch64;
    }
    // Extra QEMU arguments, e.g. a NoCloud seed: -drive if=virtio,format=raw,file=seed.img
    cfg.extra_args.extend(args);
    let mut vm = Vm::start(cfg)?;
    let ready = vm.wait_event("ready", Duration::from_secs(180))?;
    let ready_s = vm.elapsed().as_secs_f64();
    for e in vm.events() {
        println!("{e}");
    }
    println!(
        "{{\"image\":{image:?},\"accel\":\"{:?}\",\"ready_s\":{ready_s:.2},\"guest_boot_s\":{}}}",
        vm.accel(),
        ready["boot_seconds"]
    );
    Ok(())
}
