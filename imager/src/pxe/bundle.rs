//! `kiln build --format pxe`: the network-boot bundle. `vmlinuz`, `initrd` (init plus the
//! network, storage and loop modules stage 1 needs to fetch its root), `root.squashfs`
//! (the same root as the disk image's), `boot.ipxe` and `SHA256SUMS` (`sha256sum -c`).
//!
//! Owns the file names and the iPXE script. The script takes the bundle's URL from the
//! iPXE setting `kiln-base` (set it before chaining), else from `${cwduri}` (iPXE builds
//! since 2024 set it to the script's folder), and passes the root's digest on the kernel
//! command line, so init refuses a root that is not the one built here.

use std::path::{Path, PathBuf};

use crate::digest::sha256_hex;
use crate::spec::Arch;
use anyhow::{Context, Result};

pub const KERNEL: &str = "vmlinuz";
pub const INITRD: &str = "initrd";
pub const ROOT: &str = "root.squashfs";
pub const SCRIPT: &str = "boot.ipxe";
pub const SUMS: &str = "SHA256SUMS";

/// What goes into a bundle.
pub struct Bundle<'a> {
    pub name: &'a str,
    pub release: &'a str,
    pub arch: Arch,
    /// The spec's extra kernel command line.
    pub cmdline: &'a str,
    pub kernel: &'a [u8],
    pub initrd: &'a [u8],
    pub root: &'a [u8],
}

/// The kernel command line after the URLs: console and the spec's extra arguments.
fn tail(arch: Arch, extra: &str) -> String {
    let mut c = format!("{} panic=10", crate::esp::console(arch));
    if !extra.trim().is_empty() {
        c.push(' ');
        c.push_str(extra.trim());
    }
    c
}

/// The iPXE script for a bundle whose root has `root_sha256`.
pub fn boot_script(b: &Bundle, root_sha256: &str) -> String {
    format!(
        "#!ipxe\n\
         # {name}: Kiln network boot, kernel {release}, made by `kiln build --format pxe`.\n\
         # The bundle's URL (ending in /) comes from kiln-base, else from the folder this\n\
         # script was loaded from. Seeds: <base>seeds/<mac>/ (`kiln pxe serve --seeds`).\n\
         isset ${{kiln-base}} || set kiln-base ${{cwduri}}\n\
         isset ${{kiln-base}} || goto no_base\n\
         echo Kiln: booting {name} from ${{kiln-base}}\n\
         kernel ${{kiln-base}}{KERNEL} initrd={INITRD} kiln.root=${{kiln-base}}{ROOT} kiln.root.sha256={root_sha256} ds=nocloud-net;s=${{kiln-base}}seeds/${{mac:hexhyp}}/ {tail}\n\
         initrd ${{kiln-base}}{INITRD}\n\
         boot\n\
         :no_base\n\
         echo Kiln: set kiln-base to the bundle's http:// URL (ending in /) before chaining {SCRIPT}\n\
         exit 1\n",
        name = b.name,
        release = b.release,
        tail = tail(b.arch, b.cmdline),
    )
}

/// `sha256sum` lines for `files` (name, bytes).
pub fn sums(files: &[(&str, &[u8])]) -> String {
    files
        .iter()
        .map(|(name, data)| format!("{}  {name}\n", sha256_hex(data)))
        .collect()
}

/// Writes the bundle into `out`: every file to a temporary name first, then all renamed
/// (SHA256SUMS last). Returns (path, size, sha256) per file.
pub fn write(out: &Path, b: &Bundle) -> Result<Vec<(PathBuf, u64, String)>> {
    let root_sha = sha256_hex(b.root);
    let script = boot_script(b, &root_sha);
    let files: [(&str, &[u8]); 4] = [
        (KERNEL, b.kernel),
        (INITRD, b.initrd),
        (ROOT, b.root),
        (SCRIPT, script.as_bytes()),
    ];
    let sums_text = sums(&files);
    let mut all: Vec<(&str, &[u8])> = files.to_vec();
    all.push((SUMS, sums_text.as_bytes()));
    let mut staged = Vec::new();
    for (name, data) in &all {
        let dest = out.join(name);
        let tmp = crate::pipeline::tmp_path(&dest);
        if let Err(e) = std::fs::write(&tmp, data) {
            for (t, _) in &staged {
                let _ = std::fs::remove_file(t);
            }
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("write {}", tmp.display()));
        }
        staged.push((tmp, dest));
    }
    let mut done = Vec::new();
    for ((tmp, dest), (_, data)) in staged.iter().zip(&all) {
        std::fs::rename(tmp, dest).with_context(|| format!("rename to {}", dest.display()))?;
        done.push((dest.clone(), data.len() as u64, sha256_hex(data)));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn bundle<'a>(cmdline: &'a str) -> Bundle<'a> {
        Bundle {
            name: "node",
            release: "6.12.0-1-amd64",
            arch: Arch::X86_64,
            cmdline,
            kernel: b"K",
            initrd: b"I",
            root: b"abc",
        }
    }

    #[test]
    fn script_passes_root_digest_and_per_mac_seed() {
        let s = boot_script(&bundle(" kiln.debug "), &sha256_hex(b"abc"));
        assert!(s.starts_with("#!ipxe\n"));
        let kernel = s.lines().find(|l| l.starts_with("kernel ")).unwrap();
        assert_eq!(
            kernel,
            "kernel ${kiln-base}vmlinuz initrd=initrd \
             kiln.root=${kiln-base}root.squashfs \
             kiln.root.sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad \
             ds=nocloud-net;s=${kiln-base}seeds/${mac:hexhyp}/ \
             console=tty0 console=ttyS0,115200 panic=10 kiln.debug"
        );
        assert!(s.contains("\ninitrd ${kiln-base}initrd\nboot\n"));
        assert!(s.contains("isset ${kiln-base} || set kiln-base ${cwduri}\n"));
        let aarch = Bundle {
            arch: Arch::Aarch64,
            ..bundle("")
        };
        let s = boot_script(&aarch, "00");
        assert!(s.contains("console=ttyAMA0,115200 panic=10\n"), "{s}");
    }

    #[test]
    fn writes_files_and_checkable_sums() {
        let dir = std::env::temp_dir().join(format!("kiln-bundle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let done = write(&dir, &bundle("")).unwrap();
        let names: Vec<String> = done
            .iter()
            .map(|d| d.0.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "vmlinuz",
                "initrd",
                "root.squashfs",
                "boot.ipxe",
                "SHA256SUMS"
            ]
        );
        assert_eq!(std::fs::read(dir.join("root.squashfs")).unwrap(), b"abc");
        // The independent check: coreutils' sha256sum against the manifest.
        let out = std::process::Command::new("sha256sum")
            .args(["--check", "--strict", SUMS])
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.matches(": OK").count(), 4, "{text}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
