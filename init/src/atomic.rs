//! Whole-file writes that readers never see half of: a temporary file beside the target
//! (`.<name>.kiln-tmp`, 0600 while being written), fsync, then a rename over the target.
//! Callers make the parent directory (with the mode they need) first.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` with `mode`.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_then(path, bytes, mode, |_| Ok(()))
}

/// As `write`, running `before_mode` on the written file before its mode is set (chown
/// goes there: it clears setuid/setgid bits, so it must come first).
pub fn write_then(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    before_mode: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let tmp = path.with_file_name(format!(".{}.kiln-tmp", name.to_string_lossy()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        before_mode(&f)?;
        f.set_permissions(Permissions::from_mode(mode))?;
        f.sync_all()
    })();
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_with_the_mode_and_leaves_no_temporary() {
        let dir = crate::testutil::TempDir::new("atomic");
        let path = dir.path().join("f");
        write(&path, b"old", 0o644).unwrap_or_else(|e| panic!("{e}"));
        write(&path, b"new", 0o600).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&path).unwrap_or_default(), b"new");
        let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.unwrap_or(0), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["f"]);
        let failed = write_then(&path, b"x", 0o644, |_| Err(io::ErrorKind::Other.into()));
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap_or_default(), b"new");
        assert_eq!(fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 1);
    }
}
