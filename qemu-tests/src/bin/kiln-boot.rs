//! `kiln-boot IMAGE`: boots a Kiln image under QEMU (OVMF; KVM where it works, else TCG)
//! and waits for `ready`. Prints the events and a JSON summary line with `ready_s`, the
//! seconds from QEMU start to `ready`. Used by the README's main job and the benchmark.

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
    let image = std::env::args().nth(1).context("usage: kiln-boot IMAGE")?;
    let mut vm = Vm::start(VmConfig::new("kiln-boot", &image))?;
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
