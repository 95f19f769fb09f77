//! `kiln`: bakes bootable Kiln node images from Debian packages, in-process and rootless.
//!
//! The pipeline is plan-then-effect: [`spec`] is parsed and validated, [`debian`] resolves
//! and fetches packages, [`rootfs`] assembles an in-memory [`tree`], and the writers
//! ([`squashfs`], [`cpio`], [`fat`], [`gpt`], [`qcow2`]) turn plans into bytes.

pub mod artifacts;
pub mod cluster;
pub mod cpio;
pub mod debian;
pub mod dev;
pub mod digest;
pub mod disk;
pub mod embedded;
pub mod esp;
pub mod fat;
pub mod gpt;
pub mod initramfs;
pub mod kconfig;
pub mod kubernetes;
pub mod lock;
pub mod mbr;
pub mod modules;
pub mod pipeline;
pub mod progress;
pub mod pxe;
pub mod qcow2;
pub mod qemu;
pub mod rootfs;
pub mod size;
pub mod spec;
pub mod squashfs;
pub mod stage2_modules;
pub mod tree;
