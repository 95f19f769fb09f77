//! The EFI System Partition plan: systemd-boot as the removable-media loader, loader.conf,
//! one Type #1 boot entry per slot with a boot-counting file name, kernel and initramfs
//! under the slot's folder.
//!
//! Owns the ESP file layout and the boot entry text. Bytes are written by [`crate::fat`].

use crate::fat::{FatBuilder, FatError};
use crate::spec::Arch;

/// Boot attempts before systemd-boot stops picking an unconfirmed entry (`+3` in the name).
pub const BOOT_TRIES: u32 = 3;

pub struct EspPlan {
    pub files: Vec<(String, Vec<u8>)>,
}

pub fn loader_path(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => (
            "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
            "EFI/BOOT/BOOTX64.EFI",
        ),
        Arch::Aarch64 => (
            "usr/lib/systemd/boot/efi/systemd-bootaa64.efi",
            "EFI/BOOT/BOOTAA64.EFI",
        ),
    }
}

pub fn console(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "console=tty0 console=ttyS0,115200",
        Arch::Aarch64 => "console=tty0 console=ttyAMA0,115200",
    }
}

/// The kernel command line of a slot: Kiln's own keys (`disk_key` names an MBR disk, see
/// [`crate::mbr::cmdline_key`]), the console, then the spec's extra.
pub fn cmdline(arch: Arch, slot: char, disk_key: Option<&str>, extra: &str) -> String {
    let mut c = format!("kiln.slot={slot} ");
    if let Some(k) = disk_key {
        c.push_str(k);
        c.push(' ');
    }
    c.push_str(console(arch));
    c.push_str(" panic=10");
    if !extra.trim().is_empty() {
        c.push(' ');
        c.push_str(extra.trim());
    }
    c
}

pub fn entry(name: &str, release: &str, cmdline: &str, slot: char) -> String {
    format!(
        "title {name} (slot {up})\nversion {release}\nsort-key kiln\nlinux /kiln/{slot}/vmlinuz\ninitrd /kiln/{slot}/initrd.img\noptions {cmdline}\n",
        up = slot.to_ascii_uppercase()
    )
}

pub const LOADER_CONF: &str =
    "timeout 0\ndefault kiln-*\neditor no\nauto-entries no\nauto-firmware no\n";

/// Lays out the ESP for slot A.
pub fn plan(
    loader: Vec<u8>,
    arch: Arch,
    entry_text: String,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
) -> EspPlan {
    let files = vec![
        (loader_path(arch).1.to_string(), loader),
        ("loader/loader.conf".into(), LOADER_CONF.as_bytes().to_vec()),
        (
            format!("loader/entries/kiln-a+{BOOT_TRIES}.conf"),
            entry_text.into_bytes(),
        ),
        ("kiln/a/vmlinuz".into(), kernel),
        ("kiln/a/initrd.img".into(), initrd),
    ];
    EspPlan { files }
}

impl EspPlan {
    pub fn builder(self) -> Result<FatBuilder, FatError> {
        let mut b = FatBuilder::new("EFI");
        b.add_dir("kiln/b")?;
        for (p, d) in self.files {
            b.add_file(&p, d)?;
        }
        Ok(b)
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, d)| d.len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_text() {
        let c = cmdline(Arch::X86_64, 'a', None, " quiet ");
        assert_eq!(
            c,
            "kiln.slot=a console=tty0 console=ttyS0,115200 panic=10 quiet"
        );
        assert_eq!(
            cmdline(Arch::Aarch64, 'a', Some("kiln.mbr=0a0b0c0d"), ""),
            "kiln.slot=a kiln.mbr=0a0b0c0d console=tty0 console=ttyAMA0,115200 panic=10"
        );
        let e = entry("kiln-node", "6.12.0", &c, 'a');
        assert!(e.contains("linux /kiln/a/vmlinuz\ninitrd /kiln/a/initrd.img\n"));
        assert!(e.starts_with("title kiln-node (slot A)\n"));
        let p = plan(vec![1], Arch::X86_64, e, vec![2], vec![3]);
        let names: Vec<_> = p.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[2], "loader/entries/kiln-a+3.conf");
        assert_eq!(names[0], "EFI/BOOT/BOOTX64.EFI");
    }
}
