//! The unprivileged L2 hub for several VMs: moved to `kiln_imager::qemu::hub`.
//! Re-exported so `qemu_tests::…` and `crate::hub::…` paths keep working.

pub use kiln_imager::qemu::hub::*;
