//! Per-VM artifact directories: `<target>/qemu-tests/<name>-<unix-ms>/` holds the
//! serial log, the event file, QEMU's stderr, the firmware variable store and
//! the QMP socket.
//!
//! Kept (and its path printed) when the test panics, the VM reported an error,
//! or `KILN_KEEP_ARTIFACTS=1`; removed otherwise. Owns nothing outside its dir.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

const ENV_KEEP: &str = "KILN_KEEP_ARTIFACTS";

/// A VM's artifact directory, cleaned up on drop unless something failed.
#[derive(Debug)]
pub struct ArtifactDir {
    path: PathBuf,
    failed: bool,
}

impl ArtifactDir {
    /// Creates a fresh directory for a VM called `name` (non `[A-Za-z0-9_-]`
    /// characters become `_`), adding `-1`, `-2`, ... on collisions.
    pub fn create(name: &str) -> Result<ArtifactDir> {
        let base = target_dir().join("qemu-tests");
        fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let stem = format!("{}-{ms}", sanitize(name));
        for n in 0..1000 {
            let leaf = if n == 0 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let path = base.join(leaf);
            match fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(ArtifactDir {
                        path,
                        failed: false,
                    })
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
            }
        }
        anyhow::bail!("no free artifact dir for {stem} in {}", base.display())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Marks the run as failed so the directory is kept.
    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    /// Whether drop will keep the directory (failure, panic or env override).
    pub fn will_keep(&self) -> bool {
        self.failed || std::thread::panicking() || keep_requested()
    }
}

impl Drop for ArtifactDir {
    fn drop(&mut self) {
        if self.will_keep() {
            eprintln!("kiln qemu-tests: artifacts kept in {}", self.path.display());
        } else if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("kiln qemu-tests: remove {}: {e}", self.path.display());
        }
    }
}

fn keep_requested() -> bool {
    std::env::var(ENV_KEEP).is_ok_and(|v| v == "1")
}

/// Cargo's target dir: `CARGO_TARGET_DIR` (relative to the workspace root) or
/// `<workspace>/target`, the workspace being this crate's parent directory.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

fn sanitize(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    if clean.is_empty() {
        "vm".to_string()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize("boot/x86 64"), "boot_x86_64");
        assert_eq!(sanitize(""), "vm");
    }

    #[test]
    fn dirs_are_unique_and_removed() {
        let a = ArtifactDir::create("unit-artifacts").unwrap();
        let b = ArtifactDir::create("unit-artifacts").unwrap();
        assert_ne!(a.path(), b.path());
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        assert!(pa.is_dir() && pb.is_dir());
        drop((a, b));
        if !keep_requested() {
            assert!(!pa.exists() && !pb.exists());
        }
    }
}
