//! The host boundary of discovery and its real implementations: block devices from
//! sysfs probed through /dev, seed volumes mounted read-only under /run/kiln, size-capped
//! file reads, and a monotonic clock.

use std::cell::Cell;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::probe::{probe, Fs};
use super::DiscoveryError;
use crate::blockdev::parse_uevent;

/// Largest seed file read (user-data with gzip/MIME payloads stays far below this).
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// A whole disk or partition; `fs` is `None` when it is neither vfat nor iso9660.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Kernel name (`sr0`, `vdb`, `sda1`); the node is /dev/<name>.
    pub name: String,
    pub size: u64,
    pub partname: Option<String>,
    pub fs: Option<Fs>,
}

/// Lists candidate block devices with their probed filesystem.
pub trait BlockDevices {
    fn list(&self) -> io::Result<Vec<Device>>;
}

/// Reads files (relative paths) from a volume; `None` for a file that is absent.
pub trait Volumes {
    fn read(
        &self,
        device: &Device,
        fs: &Fs,
        paths: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, DiscoveryError>;
}

/// Reads one file of the running system; `None` when it does not exist.
pub trait Files {
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, DiscoveryError>;
}

/// Monotonic time, so tests can wait without sleeping.
pub trait Clock {
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration);
}

/// One listing, replayed to every volume provider of a round.
pub(super) struct Snapshot(Vec<Device>);

impl Snapshot {
    pub(super) fn take(devices: &dyn BlockDevices) -> Result<Self, DiscoveryError> {
        devices
            .list()
            .map(Snapshot)
            .map_err(DiscoveryError::ListDevices)
    }
}

impl BlockDevices for Snapshot {
    fn list(&self) -> io::Result<Vec<Device>> {
        Ok(self.0.clone())
    }
}

/// sysfs + /dev. Skips loop/ram/zram devices, empty ones (a CD drive without a disc)
/// and the boot disk's own `KILN-*` GPT partitions.
#[derive(Debug)]
pub struct SysBlockDevices {
    sys_root: PathBuf,
    dev_root: PathBuf,
}

impl SysBlockDevices {
    pub fn new(sys_root: impl Into<PathBuf>, dev_root: impl Into<PathBuf>) -> Self {
        SysBlockDevices {
            sys_root: sys_root.into(),
            dev_root: dev_root.into(),
        }
    }

    fn device(&self, dir: &Path, name: String) -> Option<Device> {
        if ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p)) {
            return None;
        }
        let uevent = std::fs::read_to_string(dir.join("uevent")).unwrap_or_default();
        let partname = parse_uevent(&uevent).partname;
        if partname.as_deref().is_some_and(|p| p.starts_with("KILN-")) {
            return None;
        }
        let sectors = std::fs::read_to_string(dir.join("size")).ok()?;
        let size = sectors.trim().parse::<u64>().ok()?.saturating_mul(512);
        if size == 0 {
            return None;
        }
        // A device that cannot be opened (no medium, gone) has no filesystem for us.
        let fs = std::fs::File::open(self.dev_root.join(&name))
            .ok()
            .and_then(|f| probe(&f));
        Some(Device {
            name,
            size,
            partname,
            fs,
        })
    }
}

impl BlockDevices for SysBlockDevices {
    fn list(&self) -> io::Result<Vec<Device>> {
        let class = self.sys_root.join("class/block");
        let entries = match std::fs::read_dir(&class) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found: Vec<Device> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                self.device(&e.path(), name)
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

const SEED_FLAGS: libc::c_ulong =
    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Mounts each volume read-only on a fresh `<run_dir>/seed-<n>`, reads, and always
/// unmounts (lazily if a plain unmount fails) before returning.
#[derive(Debug)]
pub struct MountedVolumes {
    dev_root: PathBuf,
    run_dir: PathBuf,
    next: Cell<u32>,
}

impl MountedVolumes {
    pub fn new(dev_root: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        MountedVolumes {
            dev_root: dev_root.into(),
            run_dir: run_dir.into(),
            next: Cell::new(0),
        }
    }
}

impl Volumes for MountedVolumes {
    fn read(
        &self,
        device: &Device,
        fs: &Fs,
        paths: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, DiscoveryError> {
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        let target = self.run_dir.join(format!("seed-{n}"));
        std::fs::create_dir_all(&target).map_err(|e| DiscoveryError::Mkdir(target.clone(), e))?;
        let node = self.dev_root.join(&device.name);
        let node = node.to_string_lossy();
        let kind = fs.kind.mount_type();
        if let Err(source) = crate::sys::mount(&node, &target, kind, SEED_FLAGS, "") {
            let _ = std::fs::remove_dir(&target);
            return Err(DiscoveryError::Mount {
                device: node.into_owned(),
                target,
                source,
            });
        }
        let files: Result<Vec<_>, _> = paths
            .iter()
            .map(|p| read_capped(&target.join(p), MAX_FILE))
            .collect();
        let unmounted = crate::sys::umount(&target, 0)
            .or_else(|_| crate::sys::umount(&target, libc::MNT_DETACH));
        let _ = std::fs::remove_dir(&target);
        let files = files?;
        unmounted.map_err(|e| DiscoveryError::Unmount(target, e))?;
        Ok(files)
    }
}

/// Files of the running system, each capped at `max` bytes.
#[derive(Debug, Clone, Copy)]
pub struct HostFiles {
    pub max: u64,
}

impl Files for HostFiles {
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, DiscoveryError> {
        read_capped(path, self.max)
    }
}

/// Reads a whole file, `None` when absent, `TooLarge` past `max` bytes.
pub fn read_capped(path: &Path, max: u64) -> Result<Option<Vec<u8>>, DiscoveryError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DiscoveryError::Read(path.to_path_buf(), e)),
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| DiscoveryError::Read(path.to_path_buf(), e))?;
    if bytes.len() as u64 > max {
        return Err(DiscoveryError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(Some(bytes))
}

/// `Instant`-based clock and `thread::sleep`.
#[derive(Debug)]
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}
