//! File primitives for `apply`: paths under the root, atomic writes with explicit modes
//! and owners, directories with explicit modes. Nothing here knows about cloud-config.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{fchown, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `abs` (an absolute path on the node) inside `root`.
pub(super) fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// Owner of a file: numeric ids, `None` leaves that id as created (root's for new files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Ids {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Ids {
    pub fn of(uid: u32, gid: u32) -> Self {
        Self {
            uid: Some(uid),
            gid: Some(gid),
        }
    }
}

/// Creates the missing parents of `path` with mode 0755 (owned by the caller: root).
pub(super) fn parents(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => {
            DirBuilder::new().recursive(true).mode(0o755).create(p)
        }
        _ => Ok(()),
    }
}

/// Makes `dir` exist with exactly `mode` and `ids` (parents: 0755 root). Returns whether
/// it was created.
pub(super) fn dir(dir: &Path, mode: u32, ids: Ids) -> io::Result<bool> {
    parents(dir)?;
    let created = match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => false,
        Err(e) => return Err(e),
    };
    std::os::unix::fs::chown(dir, ids.uid, ids.gid)?;
    fs::set_permissions(dir, Permissions::from_mode(mode))?;
    Ok(created)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so readers see the old or the new file, never half of one. chown happens before chmod
/// because chown clears setuid/setgid bits.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], mode: u32, ids: Ids) -> io::Result<()> {
    parents(path)?;
    crate::atomic::write_then(path, bytes, mode, |f| fchown(f, ids.uid, ids.gid))
}

/// Appends `bytes` to `path` (created if missing), then sets `mode` and `ids` as
/// cloud-init does for `append: true`. Not atomic by nature.
pub(super) fn append(path: &Path, bytes: &[u8], mode: u32, ids: Ids) -> io::Result<()> {
    parents(path)?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    fchown(&f, ids.uid, ids.gid)?;
    f.set_permissions(Permissions::from_mode(mode))?;
    f.sync_all()
}

/// Replaces `link` with a symlink to `target`, atomically (symlink at a temp name, rename).
pub(super) fn symlink_atomic(target: &str, link: &Path) -> io::Result<()> {
    parents(link)?;
    let name = link
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let tmp = link.with_file_name(format!(".{}.kiln-tmp", name.to_string_lossy()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Reads `path` as text; a missing file is `None`.
pub(super) fn read_opt(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
