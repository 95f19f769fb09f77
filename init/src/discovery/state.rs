//! The config copy kept on the STATE partition: `persist` writes what discovery found,
//! `State` reads it back on later boots when no higher source is present.
//!
//! Layout: `<dir>` is a symlink to a sibling `.<name>.<n>` directory holding the seed
//! files plus `origin`. Replacing it is atomic: write and fsync a new directory, then
//! rename a new symlink over `<dir>` (rename(2) cannot swap non-empty directories).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::Sources;

use super::layout::Slot;
use super::{DiscoveryError, Env, Found, Provider};

/// Where stage 2 keeps the copy (STATE is mounted on /var).
pub const STATE_DIR: &str = "/var/lib/kiln/config";

/// The marker written last into a copy: where the config originally came from.
const ORIGIN: &str = "origin";

/// File names on STATE: NoCloud's, kiln.toml, and ConfigDrive's JSON.
const FILES: [(&str, Slot); 6] = [
    ("user-data", Slot::UserData),
    ("meta-data", Slot::MetaData),
    ("network-config", Slot::NetworkConfig),
    ("kiln.toml", Slot::KilnToml),
    ("meta_data.json", Slot::ConfigDriveMeta),
    ("network_data.json", Slot::ConfigDriveNetwork),
];

/// Provider for the persisted copy in `env.state_dir`; origin `state`.
#[derive(Debug, Clone, Copy)]
pub struct State;

impl Provider for State {
    fn name(&self) -> &'static str {
        "state"
    }

    fn load(&self, env: &Env, notes: &mut Vec<String>) -> Result<Option<Found>, DiscoveryError> {
        let dir = env.state_dir;
        let mut sources = Sources::default();
        let mut any = false;
        for (name, slot) in FILES {
            let bytes = env.files.read(&dir.join(name))?;
            any |= bytes.is_some();
            *slot.get_mut(&mut sources) = bytes;
        }
        let broken = |reason: &str| DiscoveryError::Broken {
            volume: dir.display().to_string(),
            reason: reason.to_string(),
        };
        let origin = match env.files.read(&dir.join(ORIGIN))? {
            None if !any => return Ok(None),
            None => return Err(broken("no origin file")),
            Some(bytes) => String::from_utf8(bytes).map_err(|_| broken("origin is not UTF-8"))?,
        };
        notes.push(format!("config persisted from {}", origin.trim()));
        Ok(Some(Found::new(sources, "state")))
    }
}

/// Replaces the copy at `dir` with `found`'s files (mode 0600, directory 0700: user-data
/// may hold password hashes and tokens). Old copies are removed afterwards.
pub fn persist(found: &Found, dir: &Path) -> Result<(), DiscoveryError> {
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |e| DiscoveryError::Persist(p, e)
    };
    let (parent, name) = match (dir.parent(), dir.file_name()) {
        (Some(p), Some(n)) => (p, n.to_string_lossy().into_owned()),
        _ => return Err(err(dir)(io::ErrorKind::InvalidInput.into())),
    };
    fs::create_dir_all(parent).map_err(err(parent))?;
    let prefix = format!(".{name}.");
    let (new_name, new) = (0u32..)
        .map(|n| format!("{prefix}{n}"))
        .map(|n| (n.clone(), parent.join(n)))
        .find(|(_, p)| fs::symlink_metadata(p).is_err())
        .ok_or_else(|| err(parent)(io::ErrorKind::AlreadyExists.into()))?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&new)
        .map_err(err(&new))?;
    for (file, slot) in FILES {
        if let Some(bytes) = slot.get(&found.sources) {
            write_synced(&new.join(file), bytes)?;
        }
    }
    write_synced(&new.join(ORIGIN), found.origin.as_bytes())?;
    sync_dir(&new)?;

    let link = parent.join(format!("{prefix}link"));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&new_name, &link).map_err(err(&link))?;
    if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        // A plain directory (made by hand or an older Kiln): set it aside once.
        fs::rename(dir, parent.join(format!("{prefix}old"))).map_err(err(dir))?;
    }
    fs::rename(&link, dir).map_err(err(dir))?;
    sync_dir(parent)?;
    remove_old(parent, &prefix, &new_name);
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), DiscoveryError> {
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| DiscoveryError::Persist(path.to_path_buf(), e))
}

fn sync_dir(path: &Path) -> Result<(), DiscoveryError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| DiscoveryError::Persist(path.to_path_buf(), e))
}

/// Best effort: a leftover only costs space and is removed by the next persist.
fn remove_old(parent: &Path, prefix: &str, keep: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(prefix) && n != keep && !n.ends_with(".link")
        })
        .map(|e| e.path())
        .collect();
    for path in stale {
        let _ = fs::remove_dir_all(&path);
    }
}
