//! Checks the packaged kernel's configuration against `kernel-config/` fragments.
//!
//! Owns the fragment format (`CONFIG_X=y` built in; `=m` module or built in). The
//! fragments are compiled into `kiln`; the check reads only the given config text.

use crate::spec::Arch;

const COMMON: &str = include_str!("../../kernel-config/common.config");
const X86_64: &str = include_str!("../../kernel-config/x86_64.config");
const AARCH64: &str = include_str!("../../kernel-config/aarch64.config");

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("kernel {release} lacks required options: {missing}")]
pub struct KconfigError {
    pub release: String,
    pub missing: String,
}

fn requirements(arch: Arch) -> impl Iterator<Item = (&'static str, &'static str)> {
    let own = match arch {
        Arch::X86_64 => X86_64,
        Arch::Aarch64 => AARCH64,
    };
    COMMON
        .lines()
        .chain(own.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
}

/// Fails naming every requirement `config` (a kernel .config) does not meet.
pub fn check(config: &str, arch: Arch, release: &str) -> Result<(), KconfigError> {
    let have: std::collections::BTreeMap<&str, &str> = config
        .lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .collect();
    let missing: Vec<String> = requirements(arch)
        .filter(|(k, want)| {
            let got = have.get(k).copied().unwrap_or("n");
            !(got == *want || (*want == "m" && got == "y"))
        })
        .map(|(k, want)| format!("{k}={want}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(KconfigError {
            release: release.to_string(),
            missing: missing.join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_table() {
        let all: String = requirements(Arch::X86_64)
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        assert_eq!(check(&all, Arch::X86_64, "r"), Ok(()));
        let builtin = all.replace("CONFIG_SQUASHFS=m", "CONFIG_SQUASHFS=y");
        assert_eq!(check(&builtin, Arch::X86_64, "r"), Ok(()));
        let modular = all.replace("CONFIG_DEVTMPFS=y", "CONFIG_DEVTMPFS=m");
        let missing = all.replace("CONFIG_IP_VS=m\n", "# CONFIG_IP_VS is not set\n");
        let cases = [(modular, "CONFIG_DEVTMPFS=y"), (missing, "CONFIG_IP_VS=m")];
        for (cfg, want) in cases {
            let e = check(&cfg, Arch::X86_64, "r").err();
            assert_eq!(
                e,
                Some(KconfigError {
                    release: "r".into(),
                    missing: want.into()
                })
            );
        }
    }
}
