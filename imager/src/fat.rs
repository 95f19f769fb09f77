//! Write-once FAT32 image builder for the EFI System Partition.
//!
//! Owns the FAT32 on-disk layout: boot sector and backup (sector 6), FSInfo and backup
//! (sector 7), two FATs, directories with VFAT long names and generated `NAME~1.EXT`
//! short names, and file data. Everything is laid out once, contiguously, in sorted
//! (case-insensitive) pre-order: all directories first starting with the root at cluster 2,
//! then all files. Timestamps are fixed at 2000-01-01 00:00; the volume serial is the
//! FNV-1a hash of the 11-byte padded label unless [`FatBuilder::with_serial`] sets one.
//! It writes only inside `[offset, offset + size)` of the given file, and never writes
//! all-zero regions, so that range must already read as zeros (a fresh sparse file).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;

const SECTOR: u64 = 512;
const RESERVED: u64 = 32;
const BACKUP_BOOT: u64 = 6;
const MIN_CLUSTERS: u64 = 65_525;
const MAX_CLUSTERS: u64 = 0x0FFF_FFF4;
const END_OF_CHAIN: u32 = 0x0FFF_FFFF;
/// 2000-01-01 in FAT date encoding (years since 1980, month, day).
const DATE: u16 = (20 << 9) | (1 << 5) | 1;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_LFN: u8 = 0x0F;
const MAX_DIR_ENTRIES: usize = 65_536;
const MAX_NAME_UNITS: usize = 255;
/// Granularity at which all-zero file data is skipped.
const ZERO_CHUNK: usize = 64 * 1024;
/// UTF-16 unit offsets inside an LFN entry.
const LFN_SLOTS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// Errors from building or writing a FAT32 image.
#[derive(Debug, thiserror::Error)]
pub enum FatError {
    #[error("empty component in FAT path {0:?}")]
    EmptyComponent(String),
    #[error("character {ch:?} not allowed in FAT path {path:?}")]
    InvalidChar { path: String, ch: char },
    #[error("name not allowed in FAT path {0:?} ('.', '..' or trailing dot or space)")]
    InvalidName(String),
    #[error("a name in FAT path {0:?} is over 255 UTF-16 units")]
    NameTooLong(String),
    #[error("FAT path {0:?} already exists")]
    Duplicate(String),
    #[error("FAT path {0:?} conflicts with an existing file or directory")]
    Conflict(String),
    #[error("file {path:?} is {size} bytes, over the FAT32 limit of 4 GiB - 1")]
    FileTooLarge { path: String, size: u64 },
    #[error("FAT directory {0:?} needs more than 65536 entries")]
    DirectoryFull(String),
    #[error("{size} bytes is too small for FAT32 (needs 65525 clusters)")]
    TooSmall { size: u64 },
    #[error("{size} bytes is too large for FAT32 with 512-byte sectors")]
    VolumeTooLarge { size: u64 },
    #[error("content needs {needed} clusters but the volume has {available}")]
    TooLarge { needed: u64, available: u64 },
    #[error("FAT32 offset {offset} or size {size} is not a multiple of 512")]
    Unaligned { offset: u64, size: u64 },
    #[error("writing FAT32 image at byte {offset}")]
    Write {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

enum Kind {
    File(Vec<u8>),
    /// Children keyed by upper-cased name (FAT names are case-insensitive).
    Dir(BTreeMap<String, usize>),
}

struct Node {
    name: String,
    parent: usize,
    kind: Kind,
}

/// A directory tree that is laid out once into a FAT32 volume.
pub struct FatBuilder {
    label: [u8; 11],
    serial: u32,
    /// Arena; index 0 is the root directory.
    nodes: Vec<Node>,
}

/// Volume geometry derived from the size.
struct Geometry {
    total_sectors: u64,
    spc: u64,
    fat_sectors: u64,
    clusters: u64,
    hidden: u64,
}

/// Where every node lives: first cluster (0 for empty files) and cluster count.
struct Plan {
    first: Vec<u32>,
    count: Vec<u32>,
    dirs: Vec<usize>,
    files: Vec<usize>,
    used: u64,
}

impl FatBuilder {
    /// Starts an empty volume. The label is upper-cased, characters FAT does not allow
    /// become `_`, and it is cut or space-padded to 11 bytes; an empty label means no
    /// label entry ("NO NAME" in the boot sector).
    pub fn new(volume_label: &str) -> Self {
        let mut label = [b' '; 11];
        let chars = volume_label.chars().map(|c| match c.to_ascii_uppercase() {
            c if c == ' ' || is_short_char(c) => c as u8,
            _ => b'_',
        });
        label.iter_mut().zip(chars).for_each(|(slot, c)| *slot = c);
        let root = Node {
            name: String::new(),
            parent: 0,
            kind: Kind::Dir(BTreeMap::new()),
        };
        Self {
            label,
            serial: fnv1a(&label),
            nodes: vec![root],
        }
    }

    /// Overrides the volume serial number (default: FNV-1a of the padded label).
    pub fn with_serial(mut self, serial: u32) -> Self {
        self.serial = serial;
        self
    }

    /// Adds a file at a relative `/`-separated path such as `EFI/BOOT/BOOTX64.EFI`;
    /// missing parent directories are created.
    pub fn add_file(&mut self, path: &str, data: Vec<u8>) -> Result<(), FatError> {
        let parts = split_path(path)?;
        let (name, dirs) = parts
            .split_last()
            .ok_or(FatError::EmptyComponent(path.into()))?;
        if u32::try_from(data.len()).is_err() {
            let size = data.len() as u64;
            return Err(FatError::FileTooLarge {
                path: path.into(),
                size,
            });
        }
        let parent = self.mkdirs(path, dirs)?;
        match self.child(parent, name) {
            Some(id) if matches!(self.nodes[id].kind, Kind::File(_)) => {
                Err(FatError::Duplicate(path.into()))
            }
            Some(_) => Err(FatError::Conflict(path.into())),
            None => {
                self.insert(parent, name, Kind::File(data));
                Ok(())
            }
        }
    }

    /// Adds a directory and its missing parents; adding an existing directory is a no-op.
    pub fn add_dir(&mut self, path: &str) -> Result<(), FatError> {
        let parts = split_path(path)?;
        self.mkdirs(path, &parts).map(|_| ())
    }

    /// Writes a complete FAT32 filesystem of exactly `size` bytes at byte `offset` of
    /// `file` with positional writes, extending the file if it is shorter. All-zero
    /// regions are not written. `offset / 512` is recorded as the hidden-sector count,
    /// so pass the partition's real start when `file` is a whole disk image.
    pub fn write_to(&self, file: &File, offset: u64, size: u64) -> Result<(), FatError> {
        if offset % SECTOR != 0 || size % SECTOR != 0 {
            return Err(FatError::Unaligned { offset, size });
        }
        let geo = Geometry::new(size, offset / SECTOR)?;
        let plan = self.plan(&geo)?;
        let io = |offset| move |source| FatError::Write { offset, source };
        let len = file.metadata().map_err(io(offset))?.len();
        if len < offset + size {
            file.set_len(offset + size).map_err(io(offset + size))?;
        }
        let put = |at: u64, bytes: &[u8]| {
            file.write_all_at(bytes, offset + at)
                .map_err(io(offset + at))
        };
        let boot = self.boot_sector(&geo);
        let info = fsinfo(&geo, plan.used);
        for base in [0, BACKUP_BOOT * SECTOR] {
            put(base, &boot)?;
            put(base + SECTOR, &info)?;
        }
        let fat = plan.fat_bytes();
        put(RESERVED * SECTOR, &fat)?;
        put((RESERVED + geo.fat_sectors) * SECTOR, &fat)?;
        for &id in &plan.dirs {
            put(
                geo.cluster_at(plan.first[id]),
                &self.dir_bytes(id, &plan, &geo)?,
            )?;
        }
        for &id in &plan.files {
            let Kind::File(data) = &self.nodes[id].kind else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            let at = geo.cluster_at(plan.first[id]);
            for (i, chunk) in data.chunks(ZERO_CHUNK).enumerate() {
                if !is_zero(chunk) {
                    put(at + (i * ZERO_CHUNK) as u64, chunk)?;
                }
            }
        }
        Ok(())
    }

    fn child(&self, dir: usize, name: &str) -> Option<usize> {
        match &self.nodes[dir].kind {
            Kind::Dir(children) => children.get(&name.to_uppercase()).copied(),
            Kind::File(_) => None,
        }
    }

    fn insert(&mut self, parent: usize, name: &str, kind: Kind) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            name: name.to_owned(),
            parent,
            kind,
        });
        if let Kind::Dir(children) = &mut self.nodes[parent].kind {
            children.insert(name.to_uppercase(), id);
        }
        id
    }

    fn mkdirs(&mut self, path: &str, dirs: &[&str]) -> Result<usize, FatError> {
        let mut cur = 0;
        for name in dirs {
            cur = match self.child(cur, name) {
                Some(id) if matches!(self.nodes[id].kind, Kind::Dir(_)) => id,
                Some(_) => return Err(FatError::Conflict(path.into())),
                None => self.insert(cur, name, Kind::Dir(BTreeMap::new())),
            };
        }
        Ok(cur)
    }

    fn children(&self, id: usize) -> Vec<usize> {
        match &self.nodes[id].kind {
            Kind::Dir(children) => children.values().copied().collect(),
            Kind::File(_) => Vec::new(),
        }
    }

    fn preorder(&self, id: usize, out: &mut Vec<usize>) {
        out.push(id);
        self.children(id)
            .into_iter()
            .for_each(|c| self.preorder(c, out));
    }

    fn path_of(&self, mut id: usize) -> String {
        let mut parts = Vec::new();
        while id != 0 {
            parts.push(self.nodes[id].name.as_str());
            id = self.nodes[id].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Number of 32-byte entries the directory `id` holds.
    fn dir_entries(&self, id: usize) -> usize {
        let fixed = match id {
            0 => usize::from(self.label != [b' '; 11]),
            _ => 2,
        };
        let named = self.children(id).into_iter().map(|c| {
            let name = &self.nodes[c].name;
            1 + exact_short(name).map_or(name.encode_utf16().count().div_ceil(13), |_| 0)
        });
        fixed + named.sum::<usize>()
    }

    fn plan(&self, geo: &Geometry) -> Result<Plan, FatError> {
        let mut order = Vec::new();
        self.preorder(0, &mut order);
        let (dirs, files): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&id| matches!(self.nodes[id].kind, Kind::Dir(_)));
        let cluster = geo.spc * SECTOR;
        let mut count = vec![0u32; self.nodes.len()];
        for &id in &dirs {
            let entries = self.dir_entries(id);
            if entries > MAX_DIR_ENTRIES {
                return Err(FatError::DirectoryFull(self.path_of(id)));
            }
            count[id] = (entries as u64 * 32).div_ceil(cluster).max(1) as u32;
        }
        for &id in &files {
            if let Kind::File(data) = &self.nodes[id].kind {
                count[id] = (data.len() as u64).div_ceil(cluster) as u32;
            }
        }
        let used: u64 = count.iter().map(|&c| u64::from(c)).sum();
        if used > geo.clusters {
            return Err(FatError::TooLarge {
                needed: used,
                available: geo.clusters,
            });
        }
        let mut first = vec![0u32; self.nodes.len()];
        let mut next = 2u32;
        for &id in dirs.iter().chain(&files) {
            if count[id] > 0 {
                first[id] = next;
                next += count[id];
            }
        }
        Ok(Plan {
            first,
            count,
            dirs,
            files,
            used,
        })
    }

    fn dir_bytes(&self, id: usize, plan: &Plan, geo: &Geometry) -> Result<Vec<u8>, FatError> {
        let mut out = Vec::new();
        if id == 0 {
            if self.label != [b' '; 11] {
                out.extend(short_entry(&self.label, ATTR_VOLUME, 0, 0));
            }
        } else {
            let parent = self.nodes[id].parent;
            out.extend(short_entry(b".          ", ATTR_DIR, plan.first[id], 0));
            // `..` of a first-level directory points at cluster 0, not the root's cluster.
            let up = if parent == 0 { 0 } else { plan.first[parent] };
            out.extend(short_entry(b"..         ", ATTR_DIR, up, 0));
        }
        let children = self.children(id);
        let names: Vec<&str> = children
            .iter()
            .map(|&c| self.nodes[c].name.as_str())
            .collect();
        let shorts =
            short_names(&names).ok_or_else(|| FatError::DirectoryFull(self.path_of(id)))?;
        for ((&child, name), short) in children.iter().zip(&names).zip(&shorts) {
            if exact_short(name).is_none() {
                lfn_entries(name, lfn_checksum(short))
                    .iter()
                    .for_each(|e| out.extend(e));
            }
            let (attr, size) = match &self.nodes[child].kind {
                Kind::Dir(_) => (ATTR_DIR, 0),
                Kind::File(data) => (ATTR_ARCHIVE, data.len() as u32),
            };
            out.extend(short_entry(short, attr, plan.first[child], size));
        }
        out.resize((u64::from(plan.count[id]) * geo.spc * SECTOR) as usize, 0);
        Ok(out)
    }

    fn boot_sector(&self, geo: &Geometry) -> [u8; 512] {
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
        put(67, &self.serial.to_le_bytes());
        let no_label = self.label == [b' '; 11];
        put(
            71,
            if no_label {
                b"NO NAME    "
            } else {
                &self.label
            },
        );
        put(82, b"FAT32   ");
        put(90, &[0xCD, 0x18, 0xEB, 0xFE]); // not BIOS-bootable: int 18h, then hang
        put(510, &[0x55, 0xAA]);
        b
    }
}

impl Geometry {
    /// Picks the largest cluster size (up to 4 KiB, larger only for huge volumes) that
    /// still gives at least 65525 clusters, as FAT32 requires.
    fn new(size: u64, hidden: u64) -> Result<Self, FatError> {
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
    fn cluster_at(&self, cluster: u32) -> u64 {
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
    fn fat_bytes(&self) -> Vec<u8> {
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

fn fsinfo(geo: &Geometry, used: u64) -> [u8; 512] {
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

fn short_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    for at in [16, 18, 24] {
        e[at..at + 2].copy_from_slice(&DATE.to_le_bytes()); // created, accessed, written
    }
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// LFN entries for `name`, in on-disk order (highest sequence number first).
fn lfn_entries(name: &str, checksum: u8) -> Vec<[u8; 32]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let n = units.len().div_ceil(13);
    (1..=n)
        .rev()
        .map(|seq| {
            let mut e = [0u8; 32];
            e[0] = seq as u8 | if seq == n { 0x40 } else { 0 };
            e[11] = ATTR_LFN;
            e[13] = checksum;
            for (i, at) in LFN_SLOTS.iter().enumerate() {
                let idx = (seq - 1) * 13 + i;
                let unit =
                    units
                        .get(idx)
                        .copied()
                        .unwrap_or(if idx == units.len() { 0 } else { 0xFFFF });
                e[*at..at + 2].copy_from_slice(&unit.to_le_bytes());
            }
            e
        })
        .collect()
}

fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

fn is_short_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || "!#$%&'()-@^_`{}~".contains(c)
}

/// The 8.3 entry name when `name` already is a valid upper-case 8.3 name.
fn exact_short(name: &str) -> Option<[u8; 11]> {
    let (base, ext) = name.split_once('.').unwrap_or((name, ""));
    let ok = |s: &str, max| s.len() <= max && s.chars().all(is_short_char);
    let dot_ok = !name.contains('.') || !ext.is_empty();
    (!base.is_empty() && ok(base, 8) && ok(ext, 3) && dot_ok)
        .then(|| pack(base.as_bytes(), ext.as_bytes()))
}

fn pack(base: &[u8], ext: &[u8]) -> [u8; 11] {
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    out
}

/// Unique short names for one directory's children: exact 8.3 names are kept, others get
/// a basis name (upper-cased, invalid characters → `_`), with a `~N` tail unless the
/// only difference was case. `None` if the tails run out.
fn short_names(names: &[&str]) -> Option<Vec<[u8; 11]>> {
    let mut used: BTreeSet<[u8; 11]> = names.iter().filter_map(|n| exact_short(n)).collect();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(exact) = exact_short(name) {
            out.push(exact);
            continue;
        }
        if let Some(upper) = exact_short(&name.to_ascii_uppercase()) {
            if used.insert(upper) {
                out.push(upper);
                continue;
            }
        }
        let (base, ext) = basis(name);
        let short = (1..1_000_000).find_map(|n| {
            let tail = format!("~{n}");
            let keep = base.len().min(8 - tail.len());
            let candidate = pack(&[&base[..keep], tail.as_bytes()].concat(), &ext);
            used.insert(candidate).then_some(candidate)
        })?;
        out.push(short);
    }
    Some(out)
}

fn basis(name: &str) -> (Vec<u8>, Vec<u8>) {
    let (base, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    let clean = |s: &str, max: usize| -> Vec<u8> {
        let kept = s.chars().filter(|&c| c != ' ' && c != '.');
        let mapped =
            kept.map(|c| c.to_ascii_uppercase())
                .map(|c| if is_short_char(c) { c as u8 } else { b'_' });
        mapped.take(max).collect()
    };
    let base = clean(base, 8);
    (
        if base.is_empty() { b"_".to_vec() } else { base },
        clean(ext, 3),
    )
}

fn split_path(path: &str) -> Result<Vec<&str>, FatError> {
    let parts: Vec<&str> = path.split('/').collect();
    for name in &parts {
        if name.is_empty() {
            return Err(FatError::EmptyComponent(path.into()));
        }
        if let Some(ch) = name
            .chars()
            .find(|&c| c < ' ' || c == '\x7f' || "\"*:<>?\\|".contains(c))
        {
            return Err(FatError::InvalidChar {
                path: path.into(),
                ch,
            });
        }
        if *name == "." || *name == ".." || name.ends_with('.') || name.ends_with(' ') {
            return Err(FatError::InvalidName(path.into()));
        }
        if name.encode_utf16().count() > MAX_NAME_UNITS {
            return Err(FatError::NameTooLong(path.into()));
        }
    }
    Ok(parts)
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811C_9DC5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn is_zero(bytes: &[u8]) -> bool {
    static ZERO: [u8; ZERO_CHUNK] = [0; ZERO_CHUNK];
    bytes == &ZERO[..bytes.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    const MIB: u64 = 1 << 20;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-fat-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// An ESP-like tree; returns the builder and every file with its contents.
    fn esp() -> (FatBuilder, Vec<(String, Vec<u8>)>) {
        let mut kernel = pattern(5 * MIB as usize + 123, 7);
        kernel[MIB as usize..2 * MIB as usize].fill(0); // exercises zero skipping
        let mut files = vec![
            ("EFI/BOOT/BOOTX64.EFI".to_owned(), pattern(300_000, 1)),
            (
                "EFI/systemd/systemd-bootx64.efi".to_owned(),
                pattern(90_000, 2),
            ),
            ("loader/loader.conf".to_owned(), b"timeout 0\n".to_vec()),
            (
                "loader/entries/kiln+3.conf".to_owned(),
                b"title Kiln\n".to_vec(),
            ),
            ("vmlinuz".to_owned(), kernel),
            ("empty".to_owned(), Vec::new()),
            ("ünïcødé name.txt".to_owned(), b"utf16".to_vec()),
            ("longfilename1.txt".to_owned(), b"1".to_vec()),
            ("longfilename2.txt".to_owned(), b"2".to_vec()),
        ];
        for i in 0..300 {
            files.push((
                format!("many/a rather long file name {i:03}.data"),
                vec![i as u8; i],
            ));
        }
        let mut b = FatBuilder::new("EFI");
        for (path, data) in &files {
            b.add_file(path, data.clone()).unwrap();
        }
        b.add_dir("EFI/Linux").unwrap();
        b.add_dir("EFI/BOOT").unwrap();
        (b, files)
    }

    /// Runs `tool args image`; `None` when the tool is not installed.
    fn run(tool: &str, args: &[&str], image: &std::path::Path) -> Option<String> {
        let out = Command::new(tool).args(args).arg(image).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
        Some(text)
    }

    /// `fsck.fat -n` must be silent, `fsck.fat -v -n -l` must list every file (long
    /// names) and `fatlabel` must print the label.
    fn assert_fsck_clean(image: &std::path::Path, label: &str, files: &[(String, Vec<u8>)]) {
        let Some(plain) = run("fsck.fat", &["-n"], image) else {
            println!("skipped: fsck.fat not installed");
            return;
        };
        for line in plain.lines() {
            let expected = line.starts_with("fsck.fat ") || line.contains(" files, ");
            assert!(expected, "unexpected fsck.fat output: {line:?}\n{plain}");
        }
        let verbose = run("fsck.fat", &["-v", "-n", "-l"], image).unwrap_or_default();
        assert!(
            verbose.contains("Checking free cluster summary"),
            "{verbose}"
        );
        for (path, _) in files {
            let line = format!("Checking file /{path}");
            let listed = verbose
                .lines()
                .any(|l| l == line || l.starts_with(&format!("{line} (")));
            assert!(listed, "{path} not listed:\n{verbose}");
        }
        match run("fatlabel", &[], image) {
            Some(text) => assert_eq!(text.trim_end(), label),
            None => println!("skipped: fatlabel not installed"),
        }
    }

    /// Tiny independent reader used to check contents.
    struct Reader {
        img: Vec<u8>,
        cluster: usize,
        fat_at: usize,
        data_at: usize,
    }

    impl Reader {
        fn new(img: Vec<u8>) -> Self {
            let le16 = |at: usize| u16::from_le_bytes([img[at], img[at + 1]]) as usize;
            let fat_size = u32::from_le_bytes(img[36..40].try_into().unwrap()) as usize;
            let (rsvd, cluster) = (le16(14), img[13] as usize * 512);
            Self {
                cluster,
                fat_at: rsvd * 512,
                data_at: (rsvd + 2 * fat_size) * 512,
                img,
            }
        }

        fn chain(&self, mut c: u32) -> Vec<u8> {
            let mut out = Vec::new();
            while (2..0x0FFF_FFF8).contains(&c) {
                let at = self.data_at + (c as usize - 2) * self.cluster;
                out.extend_from_slice(&self.img[at..at + self.cluster]);
                let e = self.fat_at + 4 * c as usize;
                c = u32::from_le_bytes(self.img[e..e + 4].try_into().unwrap()) & 0x0FFF_FFFF;
            }
            out
        }

        /// (name, attr, first cluster, size) of a directory's entries, LFN preferred.
        fn list(&self, cluster: u32) -> Vec<(String, u8, u32, usize)> {
            let (mut out, mut lfn) = (Vec::new(), Vec::<(u8, u8, Vec<u16>)>::new());
            for e in self.chain(cluster).chunks(32) {
                if e[0] == 0 {
                    break;
                }
                if e[11] == ATTR_LFN {
                    let units = LFN_SLOTS
                        .iter()
                        .map(|&a| u16::from_le_bytes([e[a], e[a + 1]]));
                    lfn.push((e[0] & 0x1F, e[13], units.collect()));
                    continue;
                }
                let short: [u8; 11] = e[..11].try_into().unwrap();
                let mut name = String::from_utf8_lossy(&short[..8]).trim_end().to_owned();
                if short[8] != b' ' {
                    name = format!("{name}.{}", String::from_utf8_lossy(&short[8..]).trim_end());
                }
                if !lfn.is_empty() {
                    assert!(lfn.iter().all(|l| l.1 == lfn_checksum(&short)), "checksum");
                    lfn.sort_by_key(|l| l.0);
                    let units: Vec<u16> = lfn.iter().flat_map(|l| l.2.clone()).collect();
                    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
                    name = String::from_utf16(&units[..end]).unwrap();
                    lfn.clear();
                }
                let first = u32::from(u16::from_le_bytes([e[20], e[21]])) << 16
                    | u32::from(u16::from_le_bytes([e[26], e[27]]));
                let size = u32::from_le_bytes(e[28..32].try_into().unwrap()) as usize;
                out.push((name, e[11], first, size));
            }
            out
        }

        fn read(&self, path: &str) -> Vec<u8> {
            let mut cluster = 2;
            let parts: Vec<&str> = path.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let entries = self.list(cluster);
                let (_, attr, first, size) = entries
                    .into_iter()
                    .find(|e| e.0 == *part && e.1 != ATTR_VOLUME)
                    .unwrap();
                if i + 1 == parts.len() {
                    assert_eq!(attr, ATTR_ARCHIVE, "{path}");
                    return self.chain(first)[..size].to_vec();
                }
                assert_eq!(attr, ATTR_DIR, "{path}");
                cluster = first;
            }
            unreachable!()
        }
    }

    #[test]
    fn esp_images_pass_fsck_and_read_back() {
        let dir = scratch("esp");
        let (builder, files) = esp();
        for (size, offset, spc) in [(128 * MIB, 0, 2u8), (256 * MIB, MIB, 4), (40 * MIB, 0, 1)] {
            let path = dir.join(format!("disk-{size}"));
            let file = File::create(&path).unwrap();
            builder.write_to(&file, offset, size).unwrap();
            assert_eq!(file.metadata().unwrap().len(), offset + size);
            let mut img = std::fs::read(&path).unwrap();
            img.drain(..offset as usize);
            let esp_path = dir.join(format!("esp-{size}"));
            std::fs::write(&esp_path, &img).unwrap();
            assert_fsck_clean(&esp_path, "EFI", &files);
            assert_eq!(img[13], spc, "sectors per cluster for {size}");
            assert_eq!(
                u32::from_le_bytes(img[28..32].try_into().unwrap()),
                (offset / 512) as u32
            );
            let reader = Reader::new(img);
            for (path, data) in &files {
                assert!(reader.read(path) == *data, "{path} differs");
            }
            let root: Vec<String> = reader.list(2).into_iter().map(|e| e.0).collect();
            let want = [
                "EFI",
                "EFI",
                "empty",
                "loader",
                "longfilename1.txt",
                "longfilename2.txt",
            ];
            assert_eq!(&root[..6], want, "root listing (label first)");
            let esp1 = reader.list(reader.list(2)[1].2);
            assert_eq!(
                (esp1[0].0.as_str(), esp1[1].0.as_str(), esp1[1].2),
                (".", "..", 0)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_is_deterministic() {
        let dir = scratch("det");
        let images: Vec<Vec<u8>> = (0..2)
            .map(|i| {
                let path = dir.join(format!("{i}"));
                esp()
                    .0
                    .write_to(&File::create(&path).unwrap(), 0, 64 * MIB)
                    .unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect();
        assert!(images[0] == images[1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn short_names_table() {
        let names = [
            "BOOTX64.EFI",
            "vmlinuz",
            "loader.conf",
            "kiln+3.efi",
            ".bashrc",
            "a.b.c",
            "EFI",
            "longfilename1.txt",
            "longfilename2.txt",
            "LONGFI~1.TXT",
        ];
        let want = [
            "BOOTX64 EFI",
            "VMLINUZ    ",
            "LOADER~1CON",
            "KILN_3~1EFI",
            "BASHRC~1   ",
            "AB~1    C  ",
            "EFI        ",
            "LONGFI~2TXT",
            "LONGFI~3TXT",
            "LONGFI~1TXT",
        ];
        let got = short_names(&names).unwrap();
        let got: Vec<String> = got
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_paths_are_rejected() {
        type Case = (&'static str, fn(&FatError) -> bool);
        let cases: [Case; 11] = [
            ("", |e| matches!(e, FatError::EmptyComponent(_))),
            ("/EFI/x", |e| matches!(e, FatError::EmptyComponent(_))),
            ("EFI//x", |e| matches!(e, FatError::EmptyComponent(_))),
            ("EFI/a:b", |e| {
                matches!(e, FatError::InvalidChar { ch: ':', .. })
            }),
            ("a\u{1}", |e| {
                matches!(e, FatError::InvalidChar { ch: '\u{1}', .. })
            }),
            ("EFI/..", |e| matches!(e, FatError::InvalidName(_))),
            ("trailing.", |e| matches!(e, FatError::InvalidName(_))),
            (
                "file",
                |e| matches!(e, FatError::Duplicate(p) if p == "file"),
            ),
            ("FILE", |e| matches!(e, FatError::Duplicate(_))),
            ("file/x", |e| matches!(e, FatError::Conflict(_))),
            ("efi", |e| matches!(e, FatError::Conflict(_))),
        ];
        for (path, check) in cases {
            let mut b = FatBuilder::new("EFI");
            b.add_file("file", vec![1]).unwrap();
            b.add_dir("EFI").unwrap();
            let err = b.add_file(path, vec![2]).unwrap_err();
            assert!(check(&err), "{path:?}: {err:?}");
        }
        let mut b = FatBuilder::new("EFI");
        b.add_file("file", vec![1]).unwrap();
        assert!(matches!(b.add_dir("file"), Err(FatError::Conflict(_))));
        let long = "x".repeat(256);
        assert!(matches!(b.add_dir(&long), Err(FatError::NameTooLong(_))));
    }

    #[test]
    fn size_errors() {
        let dir = scratch("size");
        let file = File::create(dir.join("img")).unwrap();
        let b = FatBuilder::new("EFI");
        let err = b.write_to(&file, 0, 16 * MIB).unwrap_err();
        assert!(matches!(err, FatError::TooSmall { size } if size == 16 * MIB));
        let err = b.write_to(&file, 100, 64 * MIB).unwrap_err();
        assert!(matches!(err, FatError::Unaligned { offset: 100, .. }));
        let mut big = FatBuilder::new("EFI");
        big.add_file("big", vec![1; 40 * MIB as usize]).unwrap();
        let err = big.write_to(&file, 0, 40 * MIB).unwrap_err();
        assert!(matches!(err, FatError::TooLarge { needed, available } if needed > available));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
