//! Guest architectures and firmware lookup: moved to `kiln_imager::qemu::arch`.
//! Re-exported so `qemu_tests::…` and `crate::arch::…` paths keep working.

pub use kiln_imager::qemu::arch::*;
