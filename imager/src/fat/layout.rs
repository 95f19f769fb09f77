//! FAT32 volume geometry and the reserved-region sectors: boot sector, FSInfo and the FAT.
//! Knows nothing about names or directory contents.

use super::{FatError, Plan, BACKUP_BOOT, END_OF_CHAIN, RESERVED, SECTOR};

const MIN_CLUSTERS: u64 = 65_525;
const MAX_CLUSTERS: u64 = 0x0FFF_FFF4;

/// Volume geometry derived from the size.
pub(super) struct Geometry {
    pub(super) total_sectors: u64,
    pub(super) spc: u64,
    pub(super) fat_sectors: u64,
    pub(super) clusters: u64,
    pub(super) hidden: u64,
}

impl Geometry {
    /// Picks the largest cluster size (up to 4 KiB, larger only for huge volumes) that
    /// still gives at least 65525 clusters, as FAT32 requires.
    pub(super) fn new(size: u64, hidden: u64) -> Result<Self, FatError> {
        let total = size / SECTOR;
        if total > u64::from(u32::MAX) || hidden > u64::from(u32::MAX) {
            return Err(FatError::VolumeTooLarge { size });
        }
        for spc in [8, 4, 2, 1, 16, 32, 64] {
            let Some((fat_sectors, clusters)) = fat_sectors(total, spc) else {
                continue;
            };
            if (MIN_CLUSTERS..=MAX_CLUSTERS).contains(&clusters) {
                return Ok(Self {
                    total_sectors: total,
                    spc,
                    fat_sectors,
                    clusters,
                    hidden,
                });
            }
        }
        Err(FatError::TooSmall { size })
    }

    /// Byte offset of `cluster` from the start of the volume.
    pub(super) fn cluster_at(&self, cluster: u32) -> u64 {
        let data_start = RESERVED + 2 * self.fat_sectors;
        (data_start + (u64::from(cluster) - 2) * self.spc) * SECTOR
    }
}

/// Smallest FAT size (sectors) that covers the clusters left beside it, with that count.
fn fat_sectors(total: u64, spc: u64) -> Option<(u64, u64)> {
    let avail = total.checked_sub(RESERVED)?;
    let mut fat = 1;
    loop {
        let clusters = avail.checked_sub(2 * fat)? / spc;
        let need = ((clusters + 2) * 4).div_ceil(SECTOR);
        if need <= fat {
            return Some((fat, clusters));
        }
        fat = need;
    }
}

impl Plan {
    /// FAT entries 0..2+used: media marker, clean-shutdown marker, then the chains.
    pub(super) fn fat_bytes(&self) -> Vec<u8> {
        let mut fat = vec![0u32; 2 + self.used as usize];
        fat[0] = 0x0FFF_FFF8;
        fat[1] = END_OF_CHAIN;
        for (&first, &count) in self.first.iter().zip(&self.count) {
            for c in first..first + count {
                fat[c as usize] = if c + 1 == first + count {
                    END_OF_CHAIN
                } else {
                    c + 1
                };
            }
        }
        fat.iter().flat_map(|e| e.to_le_bytes()).collect()
    }
}

pub(super) fn fsinfo(geo: &Geometry, used: u64) -> [u8; 512] {
    let free = geo.clusters - used;
    let next_free = if free == 0 { u32::MAX } else { 2 + used as u32 };
    let mut s = [0u8; 512];
    s[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    s[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    s[488..492].copy_from_slice(&(free as u32).to_le_bytes());
    s[492..496].copy_from_slice(&next_free.to_le_bytes());
    s[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
    s
}

pub(super) fn boot_sector(geo: &Geometry, label: &[u8; 11], serial: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &[0xEB, 0x58, 0x90]);
    put(3, b"MSWIN4.1");
    put(11, &(SECTOR as u16).to_le_bytes());
    put(13, &[geo.spc as u8]);
    put(14, &(RESERVED as u16).to_le_bytes());
    put(16, &[2, 0, 0, 0, 0, 0xF8, 0, 0]); // 2 FATs, no FAT12/16 root, media 0xF8
    put(24, &63u16.to_le_bytes()); // sectors per track
    put(26, &255u16.to_le_bytes()); // heads
    put(28, &(geo.hidden as u32).to_le_bytes());
    put(32, &(geo.total_sectors as u32).to_le_bytes());
    put(36, &(geo.fat_sectors as u32).to_le_bytes());
    put(44, &2u32.to_le_bytes()); // root directory cluster
    put(48, &1u16.to_le_bytes()); // FSInfo sector
    put(50, &(BACKUP_BOOT as u16).to_le_bytes());
    put(64, &[0x80, 0, 0x29]); // drive number, reserved, extended boot signature
    put(67, &serial.to_le_bytes());
    let no_label = *label == [b' '; 11];
    put(71, if no_label { b"NO NAME    " } else { label });
    put(82, b"FAT32   ");
    put(90, &[0xCD, 0x18, 0xEB, 0xFE]); // not BIOS-bootable: int 18h, then hang
    put(510, &[0x55, 0xAA]);
    b
}
