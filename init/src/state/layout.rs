//! Where things live once STATE is mounted, as plain data: the /var mount, the pristine
//! read-only view of the root used as overlay lower layers, and the /etc, /root and /home
//! overlays (upper layers on STATE, or on /run in the tmpfs fallback).
//!
//! Owns paths and mount specs only; `mod.rs` applies them.

use std::path::{Path, PathBuf};

use crate::mounts::MountSpec;

pub const VAR: &str = "/var";
/// A non-recursive bind of `/`: the squashfs alone, without the overlays stacked on it.
pub const ROOTFS_RO: &str = "/run/kiln/rootfs-ro";
/// Directories of the read-only root that become writable overlays.
pub const OVERLAID: [&str; 3] = ["etc", "root", "home"];
/// Overlay upper/work directories on STATE.
pub const STATE_OVERLAY_DIR: &str = "/var/lib/kiln/overlay";
/// Overlay upper/work directories of the tmpfs fallback (same place stage 1 used for /etc).
pub const RUN_OVERLAY_DIR: &str = "/run/kiln/overlay";
/// Directories created on /var after it is mounted.
pub const VAR_DIRS: [&str; 2] = ["/var/lib/kiln", "/var/log/kiln"];

/// ext4 STATE on /var. No nosuid/nodev: container snapshots live under /var.
pub fn var_ext4(device: &str) -> MountSpec {
    MountSpec::new(device, VAR.into(), "ext4", libc::MS_NOATIME, "")
}

/// tmpfs on /var, for a node without STATE.
pub fn var_tmpfs() -> MountSpec {
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    MountSpec::new("tmpfs", VAR.into(), "tmpfs", flags, "mode=0755")
}

/// Bind `/` on `ROOTFS_RO`, then make the bind read-only (MS_RDONLY is ignored when a bind
/// is created, so it takes a remount).
pub fn rootfs_ro() -> [MountSpec; 2] {
    let bind = MountSpec::new("/", ROOTFS_RO.into(), "", libc::MS_BIND, "");
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    [bind, MountSpec::new("", ROOTFS_RO.into(), "", flags, "")]
}

/// Upper and work directories of overlay `dir` under `base`.
pub fn upper_work(base: &str, dir: &str) -> (PathBuf, PathBuf) {
    let d = Path::new(base).join(dir);
    (d.join("upper"), d.join("work"))
}

/// Overlay on `/dir`: lower from `ROOTFS_RO`, upper and work under `base`.
pub fn overlay(base: &str, dir: &str) -> MountSpec {
    let (upper, work) = upper_work(base, dir);
    let lower = Path::new(ROOTFS_RO).join(dir);
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let mut spec = MountSpec::new("overlay", Path::new("/").join(dir), "overlay", 0, &data);
    spec.pre_dirs = vec![upper, work];
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_specs() {
        let etc = overlay(STATE_OVERLAY_DIR, "etc");
        assert_eq!(etc.target, Path::new("/etc"));
        assert_eq!(
            etc.data,
            "lowerdir=/run/kiln/rootfs-ro/etc,upperdir=/var/lib/kiln/overlay/etc/upper,\
             workdir=/var/lib/kiln/overlay/etc/work"
        );
        let home = overlay(RUN_OVERLAY_DIR, "home");
        assert_eq!(
            home.pre_dirs,
            [
                PathBuf::from("/run/kiln/overlay/home/upper"),
                PathBuf::from("/run/kiln/overlay/home/work")
            ]
        );
        assert_eq!(var_ext4("/dev/vda4").flags, libc::MS_NOATIME);
    }
}
