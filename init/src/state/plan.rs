//! The pure part of growing KILN-STATE: from the disk size and the GPT as read, decide
//! whether the partition must grow and where the backup header belongs.
//!
//! Owns the arithmetic only (sectors, 1 MiB alignment); reading and writing the table is
//! `gpt.rs`'s job.

/// The GPT partition name of the state partition (written by the imager).
pub const STATE_PARTNAME: &str = "KILN-STATE";
/// Partitions end on a 1 MiB boundary, like the imager lays them out.
pub const ALIGN_BYTES: u64 = 1 << 20;

/// Errors deciding the plan; the table is left untouched when any of these occur.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("partition {0} is not in the GPT")]
    Missing(u32),
    #[error("partition {number} is named {found:?}, not {STATE_PARTNAME}")]
    WrongName { number: u32, found: String },
    #[error("partition {number} is not the last one: partition {after} starts after it")]
    NotLast { number: u32, after: u32 },
    #[error("disk of {disk_bytes} bytes is too small for a GPT with {entries_sectors}-sector entry arrays")]
    DiskTooSmall {
        disk_bytes: u64,
        entries_sectors: u64,
    },
    #[error("partition {number} ends at LBA {end}, beyond the last usable LBA {last_usable}")]
    BeyondDisk {
        number: u32,
        end: u64,
        last_usable: u64,
    },
    #[error("GPT header: primary at LBA {0}, expected 1 (read from the backup copy?)")]
    NotPrimary(u64),
}

/// The facts of a read GPT that the plan needs (so tests need no disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptFacts {
    pub sector_size: u64,
    pub primary_lba: u64,
    pub backup_lba: u64,
    pub last_usable_lba: u64,
    /// Sectors taken by one partition entry array.
    pub entries_sectors: u64,
    /// Used partitions: (number, name, first LBA, last LBA).
    pub partitions: Vec<(u32, String, u64, u64)>,
}

impl GptFacts {
    pub fn from_gpt(gpt: &gptman::GPT) -> Self {
        let h = &gpt.header;
        let array = u64::from(h.number_of_partition_entries) * u64::from(h.size_of_partition_entry);
        let partitions = gpt
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(n, p)| {
                let name = p.partition_name.as_str().to_string();
                (n, name, p.starting_lba, p.ending_lba)
            })
            .collect();
        Self {
            sector_size: gpt.sector_size,
            primary_lba: h.primary_lba,
            backup_lba: h.backup_lba,
            last_usable_lba: h.last_usable_lba,
            entries_sectors: array.div_ceil(gpt.sector_size.max(1)),
            partitions,
        }
    }
}

/// What to do to the partition table. Sector numbers are in `sector_size` units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePlan {
    pub number: u32,
    pub sector_size: u64,
    pub start_lba: u64,
    /// `(old_last_lba, new_last_lba)` of the partition when it must grow.
    pub grow: Option<(u64, u64)>,
    /// `(old, new)` backup header LBA when the table must be rewritten.
    pub move_backup: Option<(u64, u64)>,
    pub last_usable_lba: u64,
    /// Partition length in bytes once the plan is applied.
    pub final_bytes: u64,
}

impl StatePlan {
    /// The table must be written (partition grows or the backup header moves).
    pub fn rewrite(&self) -> bool {
        self.grow.is_some() || self.move_backup.is_some()
    }
}

/// Plans growing partition `number` of `gpt` to the end of a disk of `disk_bytes`.
pub fn plan(disk_bytes: u64, gpt: &GptFacts, number: u32) -> Result<StatePlan, PlanError> {
    if gpt.primary_lba != 1 {
        return Err(PlanError::NotPrimary(gpt.primary_lba));
    }
    let ss = gpt.sector_size.max(1);
    let sectors = disk_bytes / ss;
    let too_small = PlanError::DiskTooSmall {
        disk_bytes,
        entries_sectors: gpt.entries_sectors,
    };
    // Backup header in the last sector, its entry array just before it.
    let last_usable = sectors
        .checked_sub(gpt.entries_sectors + 2)
        .ok_or(too_small)?;
    let align = (ALIGN_BYTES / ss).max(1);
    let aligned_end = ((last_usable + 1) / align * align).saturating_sub(1);
    let Some((_, name, start, end)) = gpt.partitions.iter().find(|p| p.0 == number) else {
        return Err(PlanError::Missing(number));
    };
    if name != STATE_PARTNAME {
        let found = name.clone();
        return Err(PlanError::WrongName { number, found });
    }
    if let Some(after) = gpt.partitions.iter().find(|p| p.2 > *start) {
        return Err(PlanError::NotLast {
            number,
            after: after.0,
        });
    }
    if *end > last_usable {
        return Err(PlanError::BeyondDisk {
            number,
            end: *end,
            last_usable,
        });
    }
    let new_end = aligned_end.max(*end);
    let backup = sectors - 1;
    let moved = gpt.backup_lba != backup || gpt.last_usable_lba != last_usable;
    Ok(StatePlan {
        number,
        sector_size: ss,
        start_lba: *start,
        grow: (new_end > *end).then_some((*end, new_end)),
        move_backup: moved.then_some((gpt.backup_lba, backup)),
        last_usable_lba: last_usable,
        final_bytes: (new_end + 1 - start) * ss,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MIB: u64 = 1 << 20;

    /// The imager's layout on a disk of `mib` MiB: EFI 1..9, A 9..49, B 49..89, STATE 64 MiB.
    fn imager_layout(mib: u64) -> GptFacts {
        let sectors = mib * MIB / 512;
        let lba = |m: u64| m * MIB / 512;
        GptFacts {
            sector_size: 512,
            primary_lba: 1,
            backup_lba: sectors - 1,
            last_usable_lba: sectors - 34,
            entries_sectors: 32,
            partitions: vec![
                (1, "EFI".into(), lba(1), lba(9) - 1),
                (2, "KILN-ROOT-A".into(), lba(9), lba(49) - 1),
                (3, "KILN-ROOT-B".into(), lba(49), lba(89) - 1),
                (4, STATE_PARTNAME.into(), lba(89), lba(153) - 1),
            ],
        }
    }

    #[test]
    fn plans() {
        let lba = |m: u64| m * MIB / 512;
        let fresh = imager_layout(154);
        // (disk MiB, extra bytes, want grow, want backup move, final MiB)
        type Lbas = Option<(u64, u64)>;
        let cases: &[(u64, u64, Lbas, Lbas, u64)] = &[
            (154, 0, None, None, 64),
            (
                300,
                0,
                Some((lba(153) - 1, lba(299) - 1)),
                Some((lba(154) - 1, lba(300) - 1)),
                210,
            ),
            // Grew by less than 1 MiB: only the backup header moves.
            (154, 4096, None, Some((lba(154) - 1, lba(154) + 7)), 64),
        ];
        for &(mib, extra, grow, moved, final_mib) in cases {
            let p = plan(mib * MIB + extra, &fresh, 4).unwrap();
            assert_eq!(p.grow, grow, "{mib} MiB + {extra}");
            assert_eq!(p.move_backup, moved, "{mib} MiB + {extra}");
            assert_eq!(p.final_bytes, final_mib * MIB, "{mib} MiB + {extra}");
            assert_eq!(p.start_lba, lba(89));
            assert_eq!(p.rewrite(), grow.is_some() || moved.is_some());
        }
        // After the rewrite the plan is a no-op.
        let mut grown = imager_layout(300);
        grown.partitions[3].3 = lba(299) - 1;
        assert!(!plan(300 * MIB, &grown, 4).unwrap().rewrite());
    }

    #[test]
    fn refuses() {
        let layout = imager_layout(154);
        let mut swapped = layout.clone();
        swapped.partitions[2].2 = 200 * MIB / 512;
        let mut backup_read = layout.clone();
        backup_read.primary_lba = 154 * MIB / 512 - 1;
        let cases: &[(&GptFacts, u64, u32, PlanError)] = &[
            (&layout, 154 * MIB, 5, PlanError::Missing(5)),
            (
                &layout,
                154 * MIB,
                3,
                PlanError::WrongName {
                    number: 3,
                    found: "KILN-ROOT-B".into(),
                },
            ),
            (
                &swapped,
                300 * MIB,
                4,
                PlanError::NotLast {
                    number: 4,
                    after: 3,
                },
            ),
            (
                &layout,
                100 * MIB,
                4,
                PlanError::BeyondDisk {
                    number: 4,
                    end: 153 * MIB / 512 - 1,
                    last_usable: 100 * MIB / 512 - 34,
                },
            ),
            (
                &layout,
                512 * 20,
                4,
                PlanError::DiskTooSmall {
                    disk_bytes: 512 * 20,
                    entries_sectors: 32,
                },
            ),
            (
                &backup_read,
                300 * MIB,
                4,
                PlanError::NotPrimary(154 * MIB / 512 - 1),
            ),
        ];
        for (gpt, bytes, number, want) in cases {
            assert_eq!(&plan(*bytes, gpt, *number).unwrap_err(), want);
        }
    }
}
