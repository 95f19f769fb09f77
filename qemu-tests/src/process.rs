//! Process-group plumbing for QEMU children: moved to `kiln_imager::qemu::process`.
//! Re-exported so `qemu_tests::…` and `crate::process::…` paths keep working.

pub use kiln_imager::qemu::process::*;
