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
//!
//! Submodules: `layout` (geometry, boot sector, FSInfo, FAT) and `names` (path
//! validation, 8.3 and long names, directory entries).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use layout::{boot_sector, fsinfo, Geometry};
use names::{
    exact_short, is_short_char, lfn_checksum, lfn_entries, short_entry, short_names, split_path,
};

const SECTOR: u64 = 512;
const RESERVED: u64 = 32;
const BACKUP_BOOT: u64 = 6;
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
        if !offset.is_multiple_of(SECTOR) || !size.is_multiple_of(SECTOR) {
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
        let boot = boot_sector(&geo, &self.label, self.serial);
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

mod layout;
mod names;
#[cfg(test)]
mod tests;
