//! Mount tables (early API filesystems, the writable paths of the read-only root, stage 2
//! extras) and their idempotent application: a target that is already a mount point in
//! /proc/self/mountinfo is skipped.
//!
//! Owns the tables and the `Mounter` host boundary. It does not find or mount the root
//! device and does not switch root (stage1 and switch_root do).

use std::io;
use std::path::{Path, PathBuf};

use crate::mountinfo::{self, MountinfoError};

/// Errors applying a mount table.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("read mountinfo")]
    ReadMountinfo(#[source] io::Error),
    #[error("parse mountinfo")]
    ParseMountinfo(#[source] MountinfoError),
    #[error("create directory {0}")]
    Mkdir(PathBuf, #[source] io::Error),
    #[error("mount {source_name} on {target}")]
    Mount {
        source_name: String,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One mount(2) call, plus directories to create first (e.g. overlay upper/work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
    pub flags: libc::c_ulong,
    pub data: String,
    pub pre_dirs: Vec<PathBuf>,
}

impl MountSpec {
    pub fn new(
        source: &str,
        target: PathBuf,
        fstype: &str,
        flags: libc::c_ulong,
        data: &str,
    ) -> Self {
        Self {
            source: source.to_string(),
            target,
            fstype: fstype.to_string(),
            flags,
            data: data.to_string(),
            pre_dirs: Vec::new(),
        }
    }
}

/// Host boundary for mounting; fakes record calls and inject failures.
pub trait Mounter {
    /// Contents of /proc/self/mountinfo, or `None` while /proc is not mounted.
    fn mountinfo(&self) -> io::Result<Option<String>>;
    fn mkdir_all(&mut self, path: &Path) -> io::Result<()>;
    fn mount(&mut self, spec: &MountSpec) -> io::Result<()>;
}

/// The real mounter.
#[derive(Debug, Default)]
pub struct SysMounter;

impl Mounter for SysMounter {
    fn mountinfo(&self) -> io::Result<Option<String>> {
        match std::fs::read_to_string("/proc/self/mountinfo") {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn mkdir_all(&mut self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn mount(&mut self, spec: &MountSpec) -> io::Result<()> {
        let data = spec.data.as_str();
        crate::sys::mount(&spec.source, &spec.target, &spec.fstype, spec.flags, data)
    }
}

const NOSUID_NODEV: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;
const NOSUID_NODEV_NOEXEC: libc::c_ulong = NOSUID_NODEV | libc::MS_NOEXEC;

/// Where the /etc overlay keeps its upper and work directories (on the /run tmpfs).
pub const ETC_OVERLAY_DIR: &str = "/run/kiln/overlay/etc";

/// API filesystems both stages need: /proc first, so later entries can be checked.
pub fn early_mounts() -> Vec<MountSpec> {
    vec![
        MountSpec::new("proc", "/proc".into(), "proc", NOSUID_NODEV_NOEXEC, ""),
        MountSpec::new("sysfs", "/sys".into(), "sysfs", NOSUID_NODEV_NOEXEC, ""),
        MountSpec::new(
            "devtmpfs",
            "/dev".into(),
            "devtmpfs",
            libc::MS_NOSUID,
            "mode=0755",
        ),
        MountSpec::new("tmpfs", "/run".into(), "tmpfs", NOSUID_NODEV, "mode=0755"),
    ]
}

/// Writable paths of the read-only root mounted at `root`: /tmp and /var on tmpfs, /etc
/// as an overlay whose upper layer lives under `ETC_OVERLAY_DIR`.
pub fn writable_mounts(root: &Path) -> Vec<MountSpec> {
    let upper = format!("{ETC_OVERLAY_DIR}/upper");
    let work = format!("{ETC_OVERLAY_DIR}/work");
    let etc = root.join("etc");
    let overlay_data = format!("lowerdir={},upperdir={upper},workdir={work}", etc.display());
    let mut overlay = MountSpec::new("overlay", etc, "overlay", 0, &overlay_data);
    overlay.pre_dirs = vec![upper.into(), work.into()];
    vec![
        MountSpec::new(
            "tmpfs",
            root.join("tmp"),
            "tmpfs",
            NOSUID_NODEV,
            "mode=1777",
        ),
        MountSpec::new(
            "tmpfs",
            root.join("var"),
            "tmpfs",
            NOSUID_NODEV,
            "mode=0755",
        ),
        overlay,
    ]
}

/// What stage 2 adds to the early mounts and writable paths.
pub fn stage2_mounts() -> Vec<MountSpec> {
    vec![
        MountSpec::new(
            "cgroup2",
            "/sys/fs/cgroup".into(),
            "cgroup2",
            NOSUID_NODEV_NOEXEC,
            "nsdelegate,memory_recursiveprot",
        ),
        MountSpec::new(
            "devpts",
            "/dev/pts".into(),
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "mode=0620,gid=5",
        ),
        MountSpec::new(
            "tmpfs",
            "/dev/shm".into(),
            "tmpfs",
            NOSUID_NODEV,
            "mode=1777",
        ),
    ]
}

/// What happened to one table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Mounted(PathBuf),
    AlreadyMounted(PathBuf),
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Applied::Mounted(t) => write!(f, "mounted {}", t.display()),
            Applied::AlreadyMounted(t) => write!(f, "{} already mounted", t.display()),
        }
    }
}

fn is_mounted(mounter: &dyn Mounter, target: &Path) -> Result<bool, MountError> {
    let Some(text) = mounter.mountinfo().map_err(MountError::ReadMountinfo)? else {
        return Ok(false);
    };
    let entries = mountinfo::parse(&text).map_err(MountError::ParseMountinfo)?;
    Ok(entries.iter().any(|e| e.mount_point == target))
}

/// Mounts each entry in order, skipping targets that are already mount points.
/// mountinfo is re-read per entry because the table itself mounts /proc.
pub fn apply(mounter: &mut dyn Mounter, table: &[MountSpec]) -> Result<Vec<Applied>, MountError> {
    let mut applied = Vec::with_capacity(table.len());
    for spec in table {
        if is_mounted(mounter, &spec.target)? {
            applied.push(Applied::AlreadyMounted(spec.target.clone()));
            continue;
        }
        for dir in spec.pre_dirs.iter().chain(std::iter::once(&spec.target)) {
            mounter
                .mkdir_all(dir)
                .map_err(|e| MountError::Mkdir(dir.clone(), e))?;
        }
        mounter.mount(spec).map_err(|source| MountError::Mount {
            source_name: spec.source.clone(),
            target: spec.target.clone(),
            source,
        })?;
        applied.push(Applied::Mounted(spec.target.clone()));
    }
    Ok(applied)
}

/// A bind-less move of an existing mount point (MS_MOVE).
pub fn move_spec(from: &str, to: PathBuf) -> MountSpec {
    MountSpec::new(from, to, "", libc::MS_MOVE, "")
}

#[cfg(test)]
#[path = "mounts_tests.rs"]
mod tests;
