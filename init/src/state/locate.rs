//! Finding KILN-STATE, its partition number and its parent disk through sysfs.
//!
//! Owns reading `/sys/class/block` under a root passed in by the caller (tests use a temp
//! dir with symlinks shaped like the kernel's).

use std::path::{Path, PathBuf};

use super::StateError;

/// Where the state partition is, as the kernel sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Kernel name and device node of the partition (`vda4`, `/dev/vda4`).
    pub part: String,
    pub part_node: PathBuf,
    pub number: u32,
    /// Kernel name and device node of the whole disk (`vda`, `/dev/vda`).
    pub disk: String,
    pub disk_node: PathBuf,
    pub disk_bytes: u64,
    /// Logical block size of the disk: the GPT's sector size.
    pub sector_size: u64,
}

fn read_trimmed(path: &Path) -> Result<String, StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(source) => Err(StateError::Sysfs {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_u64(path: &Path) -> Result<u64, StateError> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| StateError::SysfsValue {
        path: path.to_path_buf(),
        text,
    })
}

/// Size in bytes of block device `name` (sysfs `size` is always in 512-byte units).
pub fn device_bytes(sys_root: &Path, name: &str) -> Result<u64, StateError> {
    let sectors = read_u64(&sys_root.join("class/block").join(name).join("size"))?;
    Ok(sectors.saturating_mul(512))
}

/// Describes partition `part` (kernel name, e.g. `vda4`) and its disk.
pub fn locate(sys_root: &Path, dev_root: &Path, part: &str) -> Result<Located, StateError> {
    let class = sys_root.join("class/block");
    let part_dir = class.join(part);
    let number = read_u64(&part_dir.join("partition"))?;
    let number = u32::try_from(number).map_err(|_| StateError::SysfsValue {
        path: part_dir.join("partition"),
        text: number.to_string(),
    })?;
    let disk = crate::blockdev::parent_disk(sys_root, part).map_err(|source| {
        let path = part_dir.join("..");
        StateError::Sysfs { path, source }
    })?;
    let disk_bytes = device_bytes(sys_root, &disk)?;
    let lbs_path = class.join(&disk).join("queue/logical_block_size");
    let sector_size = if lbs_path.exists() {
        read_u64(&lbs_path)?
    } else {
        512
    };
    Ok(Located {
        part: part.to_string(),
        part_node: dev_root.join(part),
        number,
        disk_node: dev_root.join(&disk),
        disk,
        disk_bytes,
        sector_size,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;

    /// A kernel-shaped sysfs: devices/.../vda/vda4 plus class/block symlinks and uevents.
    pub fn fake_sysfs(tmp: &TempDir, disk_bytes: u64, part_bytes: u64) {
        let dev = "sys/devices/pci0000:00/virtio1/block/vda";
        tmp.write(&format!("{dev}/size"), &format!("{}\n", disk_bytes / 512));
        tmp.write(&format!("{dev}/uevent"), "DEVNAME=vda\nDEVTYPE=disk\n");
        tmp.write(&format!("{dev}/vda4/partition"), "4\n");
        tmp.write(
            &format!("{dev}/vda4/size"),
            &format!("{}\n", part_bytes / 512),
        );
        tmp.write(
            &format!("{dev}/vda4/uevent"),
            "DEVNAME=vda4\nDEVTYPE=partition\nPARTN=4\nPARTNAME=KILN-STATE\n",
        );
        tmp.write("dev/vda", "");
        tmp.write("dev/vda4", "");
        let class = tmp.path().join("sys/class/block");
        std::fs::create_dir_all(&class).unwrap();
        let target = "../../devices/pci0000:00/virtio1/block/vda";
        std::os::unix::fs::symlink(target, class.join("vda")).unwrap();
        std::os::unix::fs::symlink(format!("{target}/vda4"), class.join("vda4")).unwrap();
    }

    #[test]
    fn finds_number_and_disk() {
        let tmp = TempDir::new("state-locate");
        fake_sysfs(&tmp, 300 << 20, 64 << 20);
        let (sys, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
        let got = locate(&sys, &dev, "vda4").unwrap();
        assert_eq!(
            got,
            Located {
                part: "vda4".into(),
                part_node: dev.join("vda4"),
                number: 4,
                disk: "vda".into(),
                disk_node: dev.join("vda"),
                disk_bytes: 300 << 20,
                sector_size: 512,
            }
        );
        assert_eq!(device_bytes(&sys, "vda4").unwrap(), 64 << 20);
    }

    #[test]
    fn bad_sysfs_names_the_file() {
        let tmp = TempDir::new("state-locate-bad");
        fake_sysfs(&tmp, 300 << 20, 64 << 20);
        tmp.write(
            "sys/devices/pci0000:00/virtio1/block/vda/vda4/partition",
            "four\n",
        );
        let got = locate(&tmp.path().join("sys"), &tmp.path().join("dev"), "vda4");
        assert!(
            matches!(&got, Err(StateError::SysfsValue { text, .. }) if text == "four"),
            "{got:?}"
        );
        let got = locate(&tmp.path().join("sys"), &tmp.path().join("dev"), "vdb1");
        assert!(matches!(got, Err(StateError::Sysfs { .. })), "{got:?}");
    }
}
