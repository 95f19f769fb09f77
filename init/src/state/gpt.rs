//! Reading the disk's GPT and applying a `StatePlan` to it: extend the state partition,
//! move the backup header and its entry array to the real end of the disk, wipe the stale
//! backup header.
//!
//! Owns the bytes of the partition table only; telling the kernel is `sys.rs`'s job.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::plan::{GptFacts, StatePlan};

/// A block device or image: what gptman reads and writes.
pub trait DiskIo: Read + Write + Seek {
    /// Makes written bytes durable (fsync on real devices).
    fn sync(&mut self) -> io::Result<()>;
}

impl DiskIo for std::fs::File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_all()
    }
}

/// Errors reading or rewriting the table.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("read GPT")]
    Read(#[source] gptman::Error),
    #[error("recompute GPT header for the disk size")]
    Update(#[source] gptman::Error),
    #[error("gptman puts the backup header at LBA {got}, the plan at {want}")]
    Disagree { got: u64, want: u64 },
    #[error("write GPT")]
    Write(#[source] gptman::Error),
    #[error("wipe stale backup header at LBA {0}")]
    Wipe(u64, #[source] io::Error),
    #[error("sync disk")]
    Sync(#[source] io::Error),
}

/// Reads the primary GPT with `sector_size`-byte sectors.
pub fn read(disk: &mut dyn DiskIo, sector_size: u64) -> Result<gptman::GPT, GptError> {
    gptman::GPT::read_from(disk, sector_size).map_err(GptError::Read)
}

/// Facts of `gpt` for `plan::plan`.
pub fn facts(gpt: &gptman::GPT) -> GptFacts {
    GptFacts::from_gpt(gpt)
}

/// Writes `plan` into `disk` (both copies), then zeroes the old backup header so no tool
/// finds a stale table inside the grown partition. The old backup lies beyond the
/// partition's old end, so no filesystem data is touched.
pub fn apply(
    disk: &mut dyn DiskIo,
    gpt: &mut gptman::GPT,
    plan: &StatePlan,
) -> Result<(), GptError> {
    let old_backup = gpt.header.backup_lba;
    gpt.header
        .update_from(disk, plan.sector_size)
        .map_err(GptError::Update)?;
    if let Some((_, want)) = plan.move_backup {
        if gpt.header.backup_lba != want {
            let got = gpt.header.backup_lba;
            return Err(GptError::Disagree { got, want });
        }
    }
    if let Some((_, new_end)) = plan.grow {
        gpt[plan.number].ending_lba = new_end;
    }
    gpt.write_into(disk).map_err(GptError::Write)?;
    refresh_protective_mbr(disk, plan.sector_size)?;
    if old_backup != gpt.header.backup_lba {
        wipe_sector(disk, old_backup, plan.sector_size)
            .map_err(|e| GptError::Wipe(old_backup, e))?;
    }
    disk.sync().map_err(GptError::Sync)
}

/// A protective MBR records the disk size: rewrite it for the new size, keeping its boot
/// flag. A hybrid MBR (other entries in use) is left alone.
fn refresh_protective_mbr(disk: &mut dyn DiskIo, sector_size: u64) -> Result<(), GptError> {
    let mut mbr = [0u8; 512];
    let io = |e| GptError::Write(gptman::Error::Io(e));
    disk.seek(SeekFrom::Start(0)).map_err(io)?;
    disk.read_exact(&mut mbr).map_err(io)?;
    let protective = mbr[450] == 0xEE && mbr[462..510].iter().all(|b| *b == 0);
    if !protective {
        return Ok(());
    }
    let write = match mbr[446] {
        0x80 => gptman::GPT::write_bootable_protective_mbr_into,
        _ => gptman::GPT::write_protective_mbr_into,
    };
    write(disk, sector_size).map_err(GptError::Write)
}

/// Zeroes one sector if it holds a GPT header signature.
fn wipe_sector(disk: &mut dyn DiskIo, lba: u64, sector_size: u64) -> io::Result<()> {
    let mut sig = [0u8; 8];
    disk.seek(SeekFrom::Start(lba * sector_size))?;
    disk.read_exact(&mut sig)?;
    if &sig != b"EFI PART" {
        return Ok(());
    }
    let size = usize::try_from(sector_size).map_err(|_| io::ErrorKind::InvalidInput)?;
    disk.seek(SeekFrom::Start(lba * sector_size))?;
    disk.write_all(&vec![0u8; size])
}

#[cfg(test)]
#[path = "gpt_tests.rs"]
pub(crate) mod tests;
