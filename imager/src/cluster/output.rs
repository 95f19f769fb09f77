//! Output on disk: a whole folder is built under a temporary sibling and renamed into
//! place at the end (a failure removes it), single files are written to a temporary name
//! and renamed. Everything is private to the user: folders 0700, files 0600 (node seeds
//! carry CA keys and the bootstrap token).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::fat::FatBuilder;

use super::node::NodeFiles;
use super::GenError;

/// Size of a seed volume: the smallest FAT32 (65525 clusters of 512 bytes) fits in 33 MiB.
/// The file is sparse: only a few KiB are allocated.
pub const SEED_BYTES: u64 = 33 * 1024 * 1024;
/// NoCloud's volume label.
pub const SEED_LABEL: &str = "CIDATA";

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// A folder under construction next to its destination.
pub struct Staging {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Staging {
    /// Refuses a destination that exists and is not an empty folder, and a missing parent.
    pub fn new(dest: &Path) -> Result<Self, GenError> {
        match fs::read_dir(dest).map(|mut entries| entries.next().is_none()) {
            Ok(true) => {}
            Ok(false) => return Err(GenError::OutExists(dest.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return Err(GenError::OutExists(dest.to_path_buf())),
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(GenError::NoParent(dest.to_path_buf()));
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| GenError::NoParent(dest.to_path_buf()))?;
        let tmp = parent.join(format!(".{name}.kiln-tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        make_dir(&tmp)?;
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
            done: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Renames the folder into place (over an empty destination folder).
    pub fn finish(mut self) -> Result<(), GenError> {
        fs::rename(&self.tmp, &self.dest).map_err(write_err(&self.dest))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A new folder, mode 0700.
pub fn make_dir(path: &Path) -> Result<(), GenError> {
    DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(write_err(path))
}

/// A new file, mode 0600 (refuses to replace one).
pub fn write_new(path: &Path, data: &[u8]) -> Result<(), GenError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err(path))?;
    f.write_all(data).map_err(write_err(path))?;
    f.sync_all().map_err(write_err(path))
}

/// Writes a node's files into the existing folder `dir`: user-data, meta-data, network-config, kiln.toml
/// and seed.img (a FAT32 NoCloud volume labelled CIDATA with the first three).
pub fn write_node(dir: &Path, files: &NodeFiles) -> Result<(), GenError> {
    let cloud = [
        ("user-data", &files.user_data),
        ("meta-data", &files.meta_data),
        ("network-config", &files.network_config),
    ];
    for (name, text) in cloud {
        write_new(&dir.join(name), text.as_bytes())?;
    }
    write_new(&dir.join("kiln.toml"), files.kiln_toml.as_bytes())?;
    let serial_hex = &files.instance_id[files.instance_id.len().saturating_sub(8)..];
    let serial = u32::from_str_radix(serial_hex, 16).unwrap_or(0);
    let mut fat = FatBuilder::new(SEED_LABEL).with_serial(serial);
    for (name, text) in cloud {
        fat.add_file(name, text.as_bytes().to_vec())
            .map_err(|source| GenError::Seed { source })?;
    }
    let path = dir.join("seed.img");
    let file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err(&path))?;
    fat.write_to(&file, 0, SEED_BYTES)
        .map_err(|source| GenError::Seed { source })?;
    file.sync_all().map_err(write_err(&path))
}
