//! Leaving the initramfs, like busybox `switch_root`: free the initramfs files (without
//! crossing into other mounts), move the new root onto `/`, chroot into it and exec its
//! init.
//!
//! Owns only that sequence. It refuses to delete anything unless `/` is the initramfs
//! (ramfs or tmpfs) and the new root is a different filesystem.

use std::convert::Infallible;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors switching root.
#[derive(Debug, thiserror::Error)]
pub enum SwitchRootError {
    #[error("stat {0}")]
    Stat(PathBuf, #[source] io::Error),
    #[error("statfs /")]
    Statfs(#[source] io::Error),
    #[error("/ is not an initramfs (filesystem magic {0:#x})")]
    NotInitramfs(i64),
    #[error("{0} is not a mount point")]
    NotMountPoint(PathBuf),
    #[error("chdir {0}")]
    Chdir(PathBuf, #[source] io::Error),
    #[error("move {0} onto /")]
    Move(PathBuf, #[source] io::Error),
    #[error("chroot {0}")]
    Chroot(PathBuf, #[source] io::Error),
    #[error("exec {0}")]
    Exec(PathBuf, #[source] io::Error),
}

const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Removes everything under `dir` that lives on device `dev`; subdirectories on another
/// device (mount points) are left alone. Best effort: returns how many removals failed.
pub fn remove_contents(dir: &Path, dev: u64) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 1;
    };
    let mut failures = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            failures += 1;
            continue;
        };
        let removed = if meta.is_dir() {
            if meta.dev() != dev {
                continue;
            }
            failures += remove_contents(&path, dev);
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        failures += usize::from(removed.is_err());
    }
    failures
}

/// Switches to `new_root` and execs `init` there; returns only on failure.
pub fn switch_root(new_root: &Path, init: &Path) -> Result<Infallible, SwitchRootError> {
    let stat =
        |p: &Path| std::fs::metadata(p).map_err(|e| SwitchRootError::Stat(p.to_path_buf(), e));
    let root_dev = stat(Path::new("/"))?.dev();
    if stat(new_root)?.dev() == root_dev {
        return Err(SwitchRootError::NotMountPoint(new_root.to_path_buf()));
    }
    let magic = crate::sys::fs_magic(Path::new("/")).map_err(SwitchRootError::Statfs)?;
    if magic != RAMFS_MAGIC && magic != TMPFS_MAGIC {
        return Err(SwitchRootError::NotInitramfs(magic));
    }
    std::env::set_current_dir(new_root)
        .map_err(|e| SwitchRootError::Chdir(new_root.to_path_buf(), e))?;
    // The initramfs stays in RAM forever unless its files are removed now.
    remove_contents(Path::new("/"), root_dev);
    crate::sys::mount(".", Path::new("/"), "", libc::MS_MOVE, "")
        .map_err(|e| SwitchRootError::Move(new_root.to_path_buf(), e))?;
    std::os::unix::fs::chroot(".").map_err(|e| SwitchRootError::Chroot(new_root.into(), e))?;
    std::env::set_current_dir("/").map_err(|e| SwitchRootError::Chdir("/".into(), e))?;
    // `exec` resets the signal mask and SIGPIPE, so stage 2 starts clean.
    let err = Command::new(init).exec();
    Err(SwitchRootError::Exec(init.to_path_buf(), err))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;

    fn fake_initramfs() -> TempDir {
        let tmp = TempDir::new("initramfs");
        tmp.write("init", "binary");
        tmp.write("etc/kiln/initramfs", "");
        tmp.write("etc/kiln/modules.load", "/lib/modules/k/a.ko\n");
        tmp.write("lib/modules/k/a.ko", "ko");
        std::fs::create_dir_all(tmp.path().join("newroot")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", tmp.path().join("dangling")).unwrap();
        tmp
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn removes_everything_on_the_same_device() {
        let tmp = fake_initramfs();
        let dev = std::fs::metadata(tmp.path()).unwrap().dev();
        assert_eq!(remove_contents(tmp.path(), dev), 0);
        assert!(listing(tmp.path()).is_empty());
    }

    #[test]
    fn does_not_descend_into_other_devices() {
        let tmp = fake_initramfs();
        let other_dev = std::fs::metadata(tmp.path()).unwrap().dev() + 1;
        assert_eq!(remove_contents(tmp.path(), other_dev), 0);
        assert_eq!(listing(tmp.path()), ["etc", "lib", "newroot"]);
        assert_eq!(
            listing(&tmp.path().join("etc/kiln")),
            ["initramfs", "modules.load"]
        );
    }

    #[test]
    fn refuses_when_new_root_is_not_a_mount_point() {
        let tmp = TempDir::new("switch-refuse");
        let got = switch_root(Path::new("/"), &tmp.path().join("init"));
        assert!(
            matches!(got, Err(SwitchRootError::NotMountPoint(_))),
            "{got:?}"
        );
    }
}
