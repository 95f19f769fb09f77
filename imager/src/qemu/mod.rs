//! QEMU on the host, shared by `kiln dev` and the qemu-tests harness: which binary,
//! machine and firmware an architecture uses ([`arch`]), KVM or TCG ([`accel`]), an
//! unprivileged L2 hub for several VMs ([`hub`]) and process-group plumbing ([`process`]).
//!
//! Owns only host-side mechanics; what a VM runs and how its command line is put
//! together belongs to the callers (`dev::launch`, qemu-tests' `config.rs`).

pub mod accel;
pub mod arch;
pub mod hub;
pub mod process;

pub use accel::Accel;
pub use arch::{Arch, Firmware};

/// Name of the virtio-serial port PID 1 writes JSON-line events to.
pub const EVENT_PORT: &str = "kiln.events";
