//! Guest architectures: which QEMU binary, machine, CPU and UEFI firmware each
//! one uses, and where to find them on the host.
//!
//! Only looks files up; never starts processes (see `accel.rs` for the KVM probe).

use std::path::{Path, PathBuf};

/// Guest architecture of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `qemu-system-x86_64 -M q35` with OVMF.
    X86_64,
    /// `qemu-system-aarch64 -M virt -cpu cortex-a57` with AAVMF.
    Aarch64,
}

/// A UEFI firmware pair: read-only code and the template for the writable
/// variable store (each VM gets its own copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    /// The firmware code, mapped read-only as pflash unit 0.
    pub code: PathBuf,
    /// Pristine variable store; copied, never written.
    pub vars: PathBuf,
}

/// Env overrides for the firmware (both must be set).
const ENV_CODE: &str = "KILN_FIRMWARE_CODE";
const ENV_VARS: &str = "KILN_FIRMWARE_VARS";

impl Arch {
    /// The architecture of the machine running the tests.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// Name of the QEMU system emulator.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// `-M` value.
    pub fn machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "q35",
            Arch::Aarch64 => "virt",
        }
    }

    /// `-cpu` value under TCG (KVM always uses `host`). `max` enables every
    /// feature TCG emulates, so x86-64-v2+ userspace runs.
    pub fn tcg_cpu(self) -> &'static str {
        match self {
            Arch::X86_64 => "max",
            Arch::Aarch64 => "cortex-a57",
        }
    }

    /// Known firmware locations, best first (Debian 4M OVMF first, then the
    /// 2M build, then Fedora/Arch paths).
    fn firmware_candidates(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Arch::X86_64 => &[
                (
                    "/usr/share/OVMF/OVMF_CODE_4M.fd",
                    "/usr/share/OVMF/OVMF_VARS_4M.fd",
                ),
                (
                    "/usr/share/OVMF/OVMF_CODE.fd",
                    "/usr/share/OVMF/OVMF_VARS.fd",
                ),
                (
                    "/usr/share/edk2/ovmf/OVMF_CODE.fd",
                    "/usr/share/edk2/ovmf/OVMF_VARS.fd",
                ),
                (
                    "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
                    "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
                ),
            ],
            Arch::Aarch64 => &[
                (
                    "/usr/share/AAVMF/AAVMF_CODE.fd",
                    "/usr/share/AAVMF/AAVMF_VARS.fd",
                ),
                (
                    "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
                    "/usr/share/edk2/aarch64/vars-template-pflash.raw",
                ),
            ],
        }
    }

    /// The firmware to boot, from `KILN_FIRMWARE_CODE`/`KILN_FIRMWARE_VARS` if
    /// both are set, else the first known pair present on this host.
    pub fn firmware(self) -> Result<Firmware, String> {
        if let (Some(code), Some(vars)) = (std::env::var_os(ENV_CODE), std::env::var_os(ENV_VARS)) {
            let fw = Firmware {
                code: code.into(),
                vars: vars.into(),
            };
            return match (fw.code.is_file(), fw.vars.is_file()) {
                (true, true) => Ok(fw),
                _ => Err(format!(
                    "{ENV_CODE}={} / {ENV_VARS}={} do not both exist",
                    fw.code.display(),
                    fw.vars.display()
                )),
            };
        }
        let candidates = self.firmware_candidates();
        let found = candidates
            .iter()
            .find(|(code, vars)| Path::new(code).is_file() && Path::new(vars).is_file());
        match found {
            Some((code, vars)) => Ok(Firmware {
                code: code.into(),
                vars: vars.into(),
            }),
            None => {
                let tried: Vec<&str> = candidates.iter().map(|(code, _)| *code).collect();
                Err(format!(
                    "no UEFI firmware for {self:?} (tried {}; set {ENV_CODE} and {ENV_VARS})",
                    tried.join(", ")
                ))
            }
        }
    }

    /// Full path of the QEMU binary found in `PATH`.
    pub fn find_qemu(self) -> Result<PathBuf, String> {
        let name = self.qemu_binary();
        find_in_path(name).ok_or_else(|| format!("{name} not found in PATH"))
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn machine_settings() {
        assert_eq!(Arch::Aarch64.machine(), "virt");
        assert_eq!(Arch::Aarch64.tcg_cpu(), "cortex-a57");
        assert_eq!(Arch::X86_64.qemu_binary(), "qemu-system-x86_64");
    }

    #[test]
    fn missing_binary_is_reported() {
        assert_eq!(find_in_path("kiln-no-such-binary-xyz"), None);
    }
}
