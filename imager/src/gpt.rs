//! The disk plan (partitions, offsets, GUIDs as plain data) and the GPT writer.
//!
//! Owns the partition layout of ARCHITECTURE.md ("Disk layout") and the Discoverable
//! Partitions Specification type GUIDs. It writes only the partition tables (protective
//! MBR, primary and backup GPT); partition contents are written by their own writers.

use std::fs::File;

use sha2::{Digest, Sha256};

use crate::spec::{Arch, Disk};

pub const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// KILN-STATE is created this small; init grows it to the end of the disk on first boot.
pub const STATE_MIN: u64 = 64 * MIB;
/// First MiB (MBR, GPT) and last MiB (backup GPT, alignment).
pub const OVERHEAD: u64 = 2 * MIB;

pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const ROOT_X86_64_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
pub const ROOT_AARCH64_TYPE: &str = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE";
/// "/var" in the Discoverable Partitions Specification: STATE is mounted there.
pub const VAR_TYPE: &str = "4D21B016-B534-45C2-A9FB-5C16E091FD2D";

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("write partition table")]
    Write(#[source] gptman::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: &'static str,
    pub type_guid: &'static str,
    pub uuid: String,
    /// Byte offset and length; both multiples of 1 MiB.
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPlan {
    pub size: u64,
    pub disk_guid: String,
    pub partitions: Vec<Partition>,
}

impl DiskPlan {
    pub fn partition(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }
}

/// A deterministic version-4-shaped GUID derived from `seed` and `what`.
pub fn derived_guid(seed: &str, what: &str) -> String {
    let h = Sha256::digest(format!("kiln-guid\0{seed}\0{what}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// GPT stores the first three GUID fields little-endian ("mixed endian").
pub fn guid_bytes(s: &str) -> [u8; 16] {
    let hex: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'-')
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let mut b = [0u8; 16];
    b.copy_from_slice(&hex[..16]);
    b[..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

pub fn plan(disk: &Disk, arch: Arch, seed: &str) -> DiskPlan {
    let root_type = match arch {
        Arch::X86_64 => ROOT_X86_64_TYPE,
        Arch::Aarch64 => ROOT_AARCH64_TYPE,
    };
    let layout: [(&'static str, &'static str, u64); 4] = [
        ("EFI", ESP_TYPE, disk.esp_size.0),
        ("KILN-ROOT-A", root_type, disk.root_size.0),
        ("KILN-ROOT-B", root_type, disk.root_size.0),
        ("KILN-STATE", VAR_TYPE, STATE_MIN),
    ];
    let mut offset = MIB;
    let partitions = layout
        .iter()
        .map(|&(name, type_guid, size)| {
            let size = size.div_ceil(MIB) * MIB;
            let p = Partition {
                name,
                type_guid,
                uuid: derived_guid(seed, name),
                offset,
                size,
            };
            offset += size;
            p
        })
        .collect();
    DiskPlan {
        size: disk.size.0,
        disk_guid: derived_guid(seed, "disk"),
        partitions,
    }
}

/// Writes the protective MBR and both GPTs of `plan` into `file` (already `plan.size` long).
pub fn write(plan: &DiskPlan, file: &mut File) -> Result<(), GptError> {
    let mut gpt = gptman::GPT::new_from(file, SECTOR, guid_bytes(&plan.disk_guid))
        .map_err(GptError::Write)?;
    for (i, p) in plan.partitions.iter().enumerate() {
        gpt[i as u32 + 1] = gptman::GPTPartitionEntry {
            partition_type_guid: guid_bytes(p.type_guid),
            unique_partition_guid: guid_bytes(&p.uuid),
            starting_lba: p.offset / SECTOR,
            ending_lba: (p.offset + p.size) / SECTOR - 1,
            attribute_bits: 0,
            partition_name: p.name.into(),
        };
    }
    gpt.write_into(file).map_err(GptError::Write)?;
    gptman::GPT::write_protective_mbr_into(file, SECTOR).map_err(GptError::Write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::size::Size;

    #[test]
    fn plan_layout() {
        let d = Disk {
            size: Size(2 << 30),
            esp_size: Size(128 * MIB),
            root_size: Size(700 * MIB + 1),
            layout: crate::spec::Layout::Gpt,
        };
        let p = plan(&d, Arch::X86_64, "node");
        let got: Vec<_> = p
            .partitions
            .iter()
            .map(|p| (p.name, p.offset / MIB, p.size / MIB))
            .collect();
        assert_eq!(
            got,
            [
                ("EFI", 1, 128),
                ("KILN-ROOT-A", 129, 701),
                ("KILN-ROOT-B", 830, 701),
                ("KILN-STATE", 1531, 64)
            ]
        );
        assert_eq!(p.partitions[1].type_guid, ROOT_X86_64_TYPE);
        assert_eq!(
            plan(&d, Arch::Aarch64, "n").partitions[2].type_guid,
            ROOT_AARCH64_TYPE
        );
        assert_eq!(p, plan(&d, Arch::X86_64, "node"), "deterministic");
        assert_ne!(p.disk_guid, plan(&d, Arch::X86_64, "other").disk_guid);
    }

    #[test]
    fn guid_mixed_endian() {
        let b = guid_bytes(ESP_TYPE);
        assert_eq!(b[..4], [0x28, 0x73, 0x2A, 0xC1]);
        assert_eq!(b[4..8], [0x1F, 0xF8, 0xD2, 0x11]);
        assert_eq!(b[8..], [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);
        let g = derived_guid("a", "b");
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
    }
}
