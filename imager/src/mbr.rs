//! The MBR variant of the disk (`layout = "mbr"`), for boards whose boot ROM reads only an
//! MBR (Raspberry Pi-style): the same four partitions at the same offsets as the GPT plan,
//! the FAT boot partition first and marked active.
//!
//! MBR has no partition names, so the loader entries carry `kiln.mbr=<disk signature>` and
//! init names that disk's partitions by number (1 boot, 2 root A, 3 root B, 4 state). Owns
//! the table bytes only (written with `mbrman`); contents are written by their own writers.

use std::fs::File;

use sha2::{Digest, Sha256};

use crate::gpt::{DiskPlan, SECTOR};

/// FAT32 with LBA addressing: what the Raspberry Pi boot ROM and U-Boot look for.
pub const FAT32_LBA: u8 = 0x0C;
/// Linux native: root slots and state.
pub const LINUX: u8 = 0x83;
/// The end of the last partition must fit 32-bit sector numbers.
pub const MAX_DISK_BYTES: u64 = u32::MAX as u64 * SECTOR;

#[derive(Debug, thiserror::Error)]
pub enum MbrError {
    #[error("partition {0} does not fit an MBR (past 2 TiB or not sector-aligned)")]
    Range(&'static str),
    #[error("write MBR")]
    Write(#[source] mbrman::Error),
}

/// The 32-bit disk signature (bytes 440..444), derived from `seed`; never zero (some
/// tools treat 0 as "none").
pub fn disk_signature(seed: &str) -> u32 {
    let h = Sha256::digest(format!("kiln-mbr\0{seed}").as_bytes());
    let v = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if v == 0 {
        1
    } else {
        v
    }
}

/// The kernel command line key init uses to find this disk: `kiln.mbr=` and the
/// signature in hex as `sfdisk -d` prints it (`label-id: 0x…`).
pub fn cmdline_key(seed: &str) -> String {
    format!("kiln.mbr={:08x}", disk_signature(seed))
}

fn sectors(name: &'static str, bytes: u64) -> Result<u32, MbrError> {
    if !bytes.is_multiple_of(SECTOR) {
        return Err(MbrError::Range(name));
    }
    u32::try_from(bytes / SECTOR).map_err(|_| MbrError::Range(name))
}

/// Writes the MBR of `plan` into `file` (already `plan.size` long): four primary
/// partitions, the first FAT32 LBA and active, the rest Linux.
pub fn write(plan: &DiskPlan, seed: &str, file: &mut File) -> Result<(), MbrError> {
    let sig = disk_signature(seed).to_le_bytes();
    let mut mbr = mbrman::MBR::new_from(file, SECTOR as u32, sig).map_err(MbrError::Write)?;
    for (i, p) in plan.partitions.iter().enumerate() {
        let start = sectors(p.name, p.offset)?;
        let count = sectors(p.name, p.size)?;
        start.checked_add(count).ok_or(MbrError::Range(p.name))?;
        let first = i == 0;
        mbr[i + 1] = mbrman::MBRPartitionEntry {
            boot: if first {
                mbrman::BOOT_ACTIVE
            } else {
                mbrman::BOOT_INACTIVE
            },
            first_chs: mbrman::CHS::empty(),
            sys: if first { FAT32_LBA } else { LINUX },
            last_chs: mbrman::CHS::empty(),
            starting_lba: start,
            sectors: count,
        };
    }
    mbr.write_into(file).map_err(MbrError::Write)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::size::Size;
    use crate::spec::{Arch, Disk, Layout};

    fn disk(size: u64) -> Disk {
        Disk {
            size: Size(size),
            layout: Layout::Mbr,
            ..Disk::default()
        }
    }

    #[test]
    fn table_bytes() {
        let dir = std::env::temp_dir().join(format!("kiln-mbr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.img");
        let mut f = File::create(&path).unwrap();
        f.set_len(2 << 30).unwrap();
        let plan = crate::gpt::plan(&disk(2 << 30), Arch::Aarch64, "n");
        write(&plan, "n", &mut f).unwrap();
        drop(f);
        let b = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&b[510..512], &[0x55, 0xAA]);
        let sig = u32::from_le_bytes(b[440..444].try_into().unwrap());
        assert_eq!(sig, disk_signature("n"));
        assert_eq!(cmdline_key("n"), format!("kiln.mbr={sig:08x}"));
        let entry = |n: usize| &b[446 + 16 * (n - 1)..446 + 16 * n];
        let lba = |e: &[u8], at: usize| u32::from_le_bytes(e[at..at + 4].try_into().unwrap());
        assert_eq!((entry(1)[0], entry(1)[4]), (0x80, 0x0C));
        for (n, p) in plan.partitions.iter().enumerate() {
            let e = entry(n + 1);
            assert_eq!(u64::from(lba(e, 8)) * SECTOR, p.offset, "{}", p.name);
            assert_eq!(u64::from(lba(e, 12)) * SECTOR, p.size, "{}", p.name);
            if n > 0 {
                assert_eq!((e[0], e[4]), (0, LINUX), "{}", p.name);
            }
        }
        assert!(b[446 + 64..510].iter().all(|x| *x == 0));
        // init names an MBR disk's partitions by number: the same order as the plan.
        let names: Vec<&str> = plan.partitions.iter().map(|p| p.name).collect();
        assert_eq!(names, kiln_init::blockdev::MBR_NAMES);
    }

    #[test]
    fn signature_is_stable_and_nonzero() {
        assert_eq!(disk_signature("a"), disk_signature("a"));
        assert_ne!(disk_signature("a"), disk_signature("b"));
        assert_ne!(disk_signature("x"), 0);
    }

    #[test]
    fn too_large_for_mbr() {
        let mut d = disk(3 << 40);
        let e = crate::spec::validate_layout(&d).unwrap_err();
        assert!(e.contains("too large for layout mbr"), "{e}");
        d.layout = Layout::Gpt;
        assert!(crate::spec::validate_layout(&d).is_ok());
    }
}
