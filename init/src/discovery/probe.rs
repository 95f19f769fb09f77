//! Filesystem type and label of a block device from its own bytes, without blkid or udev:
//! the iso9660 Primary Volume Descriptor and the FAT boot sector / root directory.
//!
//! Owns only the decoding of on-disk structures; opening devices is `host`'s job. Reads
//! go through `ReadAt` so tests probe image files made by mkfs.fat and genisoimage.

use std::os::unix::fs::FileExt;

/// Filesystems a seed volume may carry (what cloud-init accepts for NoCloud/config-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Vfat,
    Iso9660,
}

impl FsKind {
    /// The type name for mount(2).
    pub fn mount_type(self) -> &'static str {
        match self {
            FsKind::Vfat => "vfat",
            FsKind::Iso9660 => "iso9660",
        }
    }
}

/// A probed filesystem; `label` is empty when the volume has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fs {
    pub kind: FsKind,
    pub label: String,
}

/// Positional reads; a short or missing result means "past the end" or "unreadable".
pub trait ReadAt {
    fn read_at(&self, offset: u64, len: usize) -> Option<Vec<u8>>;
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.saturating_add(len).min(self.len());
        self.get(start..end).map(<[u8]>::to_vec)
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0; len];
        let mut done = 0;
        while done < len {
            match FileExt::read_at(self, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        buf.truncate(done);
        Some(buf)
    }
}

/// iso9660 first (hybrid images carry an MBR at byte 0), then FAT.
pub fn probe<R: ReadAt + ?Sized>(dev: &R) -> Option<Fs> {
    iso9660(dev).or_else(|| vfat(dev))
}

const ISO_FIRST_DESCRIPTOR: u64 = 16 * 2048;

/// Walks the volume descriptor set (El Torito puts a boot record first) to the Primary
/// Volume Descriptor; its volume identifier is bytes 40..72, space-padded. The Joliet
/// (supplementary) label is not read: cloud-localds and genisoimage set both alike.
fn iso9660<R: ReadAt + ?Sized>(dev: &R) -> Option<Fs> {
    for i in 0..32u64 {
        let d = dev.read_at(ISO_FIRST_DESCRIPTOR + i * 2048, 2048)?;
        if d.len() < 72 || &d[1..6] != b"CD001" {
            return None;
        }
        match d[0] {
            1 => {
                return Some(Fs {
                    kind: FsKind::Iso9660,
                    label: text(&d[40..72]),
                })
            }
            255 => return None,
            _ => {}
        }
    }
    None
}

fn u16le(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32le(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

/// A FAT boot sector: jump, sane BPB and the "FAT" type string mkfs.fat and Windows
/// write (at 0x36 for FAT12/16, 0x52 for FAT32). The label is the root directory's
/// volume-label entry when present (what blkid reports), else BS_VolLab (0x2B / 0x47).
fn vfat<R: ReadAt + ?Sized>(dev: &R) -> Option<Fs> {
    let b = dev.read_at(0, 512)?;
    if b.len() < 512 || !matches!(b[0], 0xEB | 0xE9) {
        return None;
    }
    let bps = u16le(&b, 11);
    let spc = u64::from(b[13]);
    let reserved = u16le(&b, 14);
    let fats = u64::from(b[16]);
    let fat16_size = u16le(&b, 22);
    let sane = matches!(bps, 512 | 1024 | 2048 | 4096)
        && spc.is_power_of_two()
        && reserved > 0
        && fats > 0;
    let fat32 = fat16_size == 0;
    let (sig, label_at, type_at) = if fat32 {
        (0x42, 0x47, 0x52)
    } else {
        (0x26, 0x2B, 0x36)
    };
    if !sane || &b[type_at..type_at + 3] != b"FAT" {
        return None;
    }
    let boot_label = if b[sig] == 0x29 {
        text(&b[label_at..label_at + 11])
    } else {
        String::new()
    };
    let root = if fat32 {
        let first = reserved + fats * u32le(&b, 36);
        let cluster = u32le(&b, 44).checked_sub(2)?;
        (first + cluster * spc) * bps..(first + cluster * spc + spc) * bps
    } else {
        let start = (reserved + fats * fat16_size) * bps;
        start..start + u16le(&b, 17) * 32
    };
    let len = usize::try_from((root.end - root.start).min(64 * 1024)).ok()?;
    let root_label = dev
        .read_at(root.start, len)
        .and_then(|dir| root_dir_label(&dir));
    let label = root_label.unwrap_or(boot_label);
    Some(Fs {
        kind: FsKind::Vfat,
        label: if label == "NO NAME" {
            String::new()
        } else {
            label
        },
    })
}

const ATTR_VOLUME: u8 = 0x08;
const ATTR_LFN: u8 = 0x0F;

/// The first live volume-label entry of a root directory (not a long-name entry).
fn root_dir_label(dir: &[u8]) -> Option<String> {
    for e in dir.chunks_exact(32) {
        match e[0] {
            0 => return None,
            0xE5 => continue,
            _ => {}
        }
        let attr = e[11];
        if attr & ATTR_LFN != ATTR_LFN && attr & ATTR_VOLUME != 0 {
            return Some(text(&e[..11]));
        }
    }
    None
}

/// Space/NUL-padded on-disk text.
fn text(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .rposition(|&c| c != b' ' && c != 0)
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
