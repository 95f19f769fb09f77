//! The stage-1 initramfs: `init`, the storage modules it loads (in dependency order) and
//! the few nodes the kernel needs before devtmpfs, as a zstd-compressed newc cpio.
//!
//! Owns the initramfs contract with `init` (marker file, `etc/kiln/modules.load`). Module
//! names per architecture live here as data; resolution is [`crate::modules`]' job.

use crate::cpio::{CpioError, CpioWriter};
use crate::modules::{Kernel, ModuleError};
use crate::spec::Arch;

/// Storage, filesystem, console and (virtio) network modules stage 1 needs to find and mount the root and to
/// reach the event port. Built-ins are skipped; names that are missing are an error.
const COMMON_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "virtio_console",
    "virtio_net",
    "sd_mod",
    "sr_mod",
    "nvme",
    "usb_storage",
    "uas",
    "xhci_pci",
    "squashfs",
    "overlay",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    // vfat's default iocharset in Debian kernels (CONFIG_FAT_DEFAULT_IOCHARSET="ascii").
    "nls_ascii",
    "isofs",
    "ext4",
];
/// `button` + `evdev`: the ACPI power button as an input device init can read.
const X86_64_MODULES: &[&str] = &["ahci", "ehci_pci", "button", "evdev"];
/// `evdev`: the power button (ACPI on UEFI machines, built in; `gpio_keys` on device-tree
/// boards) as an input device init can read.
const AARCH64_MODULES: &[&str] = &["virtio_mmio", "ahci", "evdev", "gpio_keys"];

/// Network boot (`--format pxe`): the loop device for the downloaded root, and the wired
/// NICs of common servers besides virtio (their PHY/PTP helpers come as dependencies).
pub const PXE_MODULES: &[&str] = &[
    "loop", "e1000", "e1000e", "igb", "igc", "ixgbe", "r8169", "tg3",
];

pub fn wanted(arch: Arch) -> Vec<&'static str> {
    let extra = match arch {
        Arch::X86_64 => X86_64_MODULES,
        Arch::Aarch64 => AARCH64_MODULES,
    };
    COMMON_MODULES.iter().chain(extra).copied().collect()
}

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("initramfs modules")]
    Modules(#[from] ModuleError),
    #[error("initramfs archive")]
    Cpio(#[from] CpioError),
    #[error("initramfs compression")]
    Compress(#[source] std::io::Error),
}

pub struct Initramfs {
    pub bytes: Vec<u8>,
    pub modules: Vec<String>,
}

/// Builds the compressed initramfs for `kernel` with `init` as `/init`.
pub fn build(kernel: &Kernel, arch: Arch, init: &[u8]) -> Result<Initramfs, InitramfsError> {
    build_with(kernel, arch, init, &[])
}

/// As `build`, with `extra` modules loaded after the usual ones (see `PXE_MODULES`).
pub fn build_with(
    kernel: &Kernel,
    arch: Arch,
    init: &[u8],
    extra: &[&str],
) -> Result<Initramfs, InitramfsError> {
    let mut names = wanted(arch);
    names.extend_from_slice(extra);
    let mods = kernel.load_order(&names)?;
    let mut w = CpioWriter::new(Vec::new());
    for d in [
        "dev", "etc", "etc/kiln", "newroot", "proc", "run", "sys", "tmp",
    ] {
        w.dir(d, 0o755)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.file("init", 0o755, init)?;
    w.file("etc/kiln/initramfs", 0o644, b"")?;
    let list: String = mods.iter().map(|m| format!("/{}\n", m.path)).collect();
    w.file("etc/kiln/modules.load", 0o644, list.as_bytes())?;
    let mut made = std::collections::BTreeSet::new();
    for m in &mods {
        let mut parent = String::new();
        for part in m
            .path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if made.insert(parent.clone()) {
                w.dir(&parent, 0o755)?;
            }
        }
        w.file(&m.path, 0o644, &m.data)?;
    }
    for (link, target) in [("lib", "usr/lib"), ("sbin", "usr/sbin")] {
        w.symlink(link, target)?;
    }
    let cpio = w.finish()?;
    // Debian's kernels decompress zstd initramfs (CONFIG_RD_ZSTD); checked by kernel-config.
    let bytes = zstd::bulk::compress(&cpio, 9).map_err(InitramfsError::Compress)?;
    Ok(Initramfs {
        bytes,
        modules: mods.into_iter().map(|m| m.name).collect(),
    })
}
