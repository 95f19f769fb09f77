//! Growing KILN-STATE on an MBR disk (the imager's `mbr` layout, for boards whose boot
//! ROM reads only MBR): read the four primary entries, plan like the GPT case, rewrite the
//! state entry's sector count.
//!
//! Owns the bytes of sector 0 only; the arithmetic shares `plan.rs`'s rules (1 MiB
//! alignment, the partition must be the last one), telling the kernel is `mod.rs`'s job.

use std::io::{self, SeekFrom};

use super::gpt::DiskIo;
use super::plan::{PlanError, StatePlan, ALIGN_BYTES};

/// Offset of the first partition entry in sector 0.
const TABLE: usize = 446;
/// The most sectors a 32-bit MBR entry can count.
const MAX_SECTORS: u64 = u32::MAX as u64;

/// A used primary entry: (number 1–4, first sector, sector count).
pub type Entry = (u32, u64, u64);

/// The used primary entries of `sector0` when it is a plain MBR; None for a GPT's
/// protective MBR or no boot signature.
pub fn entries(sector0: &[u8; 512]) -> Option<Vec<Entry>> {
    if sector0[510..512] != [0x55, 0xAA] {
        return None;
    }
    let mut used = Vec::new();
    for n in 0..4 {
        let e = &sector0[TABLE + 16 * n..TABLE + 16 * (n + 1)];
        if e[4] == 0xEE {
            return None;
        }
        let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
        let count = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        if e[4] != 0 && count != 0 {
            used.push((n as u32 + 1, u64::from(start), u64::from(count)));
        }
    }
    Some(used)
}

/// The disk signature (bytes 440..444) of a plain MBR; None like [`entries`].
pub fn signature(sector0: &[u8; 512]) -> Option<u32> {
    entries(sector0)?;
    let sig = [sector0[440], sector0[441], sector0[442], sector0[443]];
    Some(u32::from_le_bytes(sig))
}

/// Reads sector 0 of `disk`.
pub fn read_sector0(disk: &mut dyn DiskIo) -> io::Result<[u8; 512]> {
    let mut s = [0u8; 512];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut s)?;
    Ok(s)
}

/// Plans growing entry `number` to the end of a disk of `disk_bytes` (at most the 32-bit
/// sector count), ending on a 1 MiB boundary.
pub fn plan(
    disk_bytes: u64,
    sector_size: u64,
    entries: &[Entry],
    number: u32,
) -> Result<StatePlan, PlanError> {
    let ss = sector_size.max(1);
    let sectors = disk_bytes / ss;
    let Some(&(_, start, count)) = entries.iter().find(|e| e.0 == number) else {
        return Err(PlanError::Missing(number));
    };
    if let Some(after) = entries.iter().find(|e| e.1 > start) {
        return Err(PlanError::NotLast {
            number,
            after: after.0,
        });
    }
    let end = start + count - 1;
    if end >= sectors {
        return Err(PlanError::BeyondDisk {
            number,
            end,
            last_usable: sectors.saturating_sub(1),
        });
    }
    let align = (ALIGN_BYTES / ss).max(1);
    let limit = sectors.min(start + MAX_SECTORS);
    let new_end = (limit / align * align).saturating_sub(1).max(end);
    Ok(StatePlan {
        number,
        sector_size: ss,
        start_lba: start,
        grow: (new_end > end).then_some((end, new_end)),
        move_backup: None,
        last_usable_lba: sectors.saturating_sub(1),
        final_bytes: (new_end + 1 - start) * ss,
    })
}

/// Writes the new sector count of `plan`'s entry into sector 0 and syncs.
pub fn apply(disk: &mut dyn DiskIo, plan: &StatePlan) -> io::Result<()> {
    let Some((_, new_end)) = plan.grow else {
        return Ok(());
    };
    let count = u32::try_from(new_end + 1 - plan.start_lba)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many sectors for MBR"))?;
    let at = TABLE as u64 + 16 * u64::from(plan.number - 1) + 12;
    disk.seek(SeekFrom::Start(at))?;
    disk.write_all(&count.to_le_bytes())?;
    disk.sync()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MIB: u64 = 1 << 20;
    const M: u64 = MIB / 512;

    impl DiskIo for std::io::Cursor<Vec<u8>> {
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The imager's mbr layout: FAT 1..9 MiB, A 9..49, B 49..89, STATE 89..153.
    fn sector0() -> [u8; 512] {
        let mut s = [0u8; 512];
        let parts = [(0x0C, 1, 8), (0x83, 9, 40), (0x83, 49, 40), (0x83, 89, 64)];
        for (n, (ty, start, len)) in parts.iter().enumerate() {
            let e = &mut s[TABLE + 16 * n..TABLE + 16 * (n + 1)];
            e[4] = *ty;
            e[8..12].copy_from_slice(&((start * M) as u32).to_le_bytes());
            e[12..16].copy_from_slice(&((len * M) as u32).to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn reads_entries_and_rejects_gpt() {
        let s = sector0();
        let e = entries(&s).unwrap();
        assert_eq!(e[3], (4, 89 * M, 64 * M));
        let mut gpt = [0u8; 512];
        gpt[446 + 4] = 0xEE;
        gpt[510] = 0x55;
        gpt[511] = 0xAA;
        assert_eq!(entries(&gpt), None);
        assert_eq!(signature(&gpt), None);
        let mut signed = s;
        signed[440..444].copy_from_slice(&[0x66, 0xf5, 0x4d, 0x30]);
        assert_eq!(signature(&signed), Some(0x304df566));
        assert_eq!(entries(&[0u8; 512]), None);
    }

    #[test]
    fn plans_and_applies() {
        let e = entries(&sector0()).unwrap();
        // Image-sized disk: nothing to do.
        let same = plan(153 * MIB, 512, &e, 4).unwrap();
        assert_eq!((same.grow, same.final_bytes), (None, 64 * MIB));
        // A 1 GiB + 1000 bytes card: to the last whole MiB.
        let big = plan((1 << 30) + 1000, 512, &e, 4).unwrap();
        assert_eq!(big.grow, Some((153 * M - 1, 1024 * M - 1)));
        assert_eq!(big.final_bytes, (1024 - 89) * MIB);
        // 3 TiB: capped at 2^32 - 1 sectors from the start, aligned down.
        let huge = plan(3 << 40, 512, &e, 4).unwrap();
        assert!(huge.final_bytes / 512 <= MAX_SECTORS, "{huge:?}");
        assert!(huge.final_bytes / 512 > MAX_SECTORS - M);
        assert_eq!(
            plan(1 << 30, 512, &e, 3),
            Err(PlanError::NotLast {
                number: 3,
                after: 4
            })
        );
        assert_eq!(plan(1 << 30, 512, &e, 5), Err(PlanError::Missing(5)));
        assert!(matches!(
            plan(100 * MIB, 512, &e, 4),
            Err(PlanError::BeyondDisk { .. })
        ));

        let mut disk = std::io::Cursor::new(sector0().to_vec());
        apply(&mut disk, &big).unwrap();
        let s: [u8; 512] = disk.into_inner().try_into().unwrap();
        assert_eq!(entries(&s).unwrap()[3], (4, 89 * M, (1024 - 89) * M));
        assert_eq!(entries(&s).unwrap()[..3], e[..3]);
    }
}
