//! Accelerator choice (KVM when it works, else TCG): moved to `kiln_imager::qemu::accel`.
//! Re-exported so `qemu_tests::…` and `crate::accel::…` paths keep working.

pub use kiln_imager::qemu::accel::*;
