//! QEMU test harness for Kiln images: boots a disk under UEFI firmware, reads
//! PID 1's JSON-line boot events from the `kiln.events` virtio-serial port (and
//! `KILN-EVENT ` console lines as a fallback), and tears everything down.
//!
//! ```no_run
//! use std::time::Duration;
//! use qemu_tests::{require_qemu, Arch, Vm, VmConfig};
//!
//! # fn main() -> anyhow::Result<()> {
//! if !require_qemu(Arch::X86_64) {
//!     return Ok(()); // printed "skipped: <reason>"
//! }
//! let mut vm = Vm::start(VmConfig::new("boot", "target/kiln.img"))?;
//! let ready = vm.wait_event("ready", Duration::from_secs(120))?;
//! assert!(ready["ts"].is_number());
//! vm.powerdown()?;
//! vm.wait_exit(Duration::from_secs(30))?;
//! # Ok(())
//! # }
//! ```
//!
//! Environment: `KILN_QEMU_ACCEL=kvm|tcg` forces the accelerator,
//! `KILN_FIRMWARE_CODE`/`KILN_FIRMWARE_VARS` the firmware,
//! `KILN_KEEP_ARTIFACTS=1` keeps artifact dirs of passing runs, and `CI=true`
//! turns skips into failures.
//!
//! This crate only drives QEMU from the host; it must not build images (that is
//! the imager's job) or know guest internals beyond the event protocol.

mod accel;
mod arch;
mod artifacts;
mod config;
pub mod events;
pub mod hub;
pub mod image;
mod port;
mod process;
mod qmp;
mod vm;

pub use accel::Accel;
pub use arch::{Arch, Firmware};
pub use config::{VmConfig, EVENT_PORT};
pub use vm::Vm;

/// Why QEMU tests for `arch` cannot run on this host (no emulator binary or
/// no UEFI firmware), or `None` if they can.
pub fn skip_reason(arch: Arch) -> Option<String> {
    if let Err(why) = arch.find_qemu() {
        return Some(why);
    }
    arch.firmware().err()
}

/// The skip policy (STYLE rule 12): returns `true` if QEMU tests for `arch`
/// can run. Otherwise prints `skipped: <reason>` and returns `false`, except
/// when `CI=true`, where it panics with the reason because CI must not skip
/// QEMU tests.
pub fn require_qemu(arch: Arch) -> bool {
    let Some(reason) = skip_reason(arch) else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("QEMU tests must run in CI but cannot: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}
