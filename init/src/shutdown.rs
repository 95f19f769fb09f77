//! Orderly power-off and reboot: announce, SIGTERM everyone, wait, SIGKILL the rest, sync,
//! unmount what can be, remount / read-only, then reboot(2).
//!
//! Owns that sequence and the unmount order. It does not decide when to shut down
//! (supervise.rs maps signals to actions).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::events;
use crate::mountinfo::MountEntry;
use crate::report::Reporter;
use crate::sys::{self, Reaped};

/// Errors shutting down.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    #[error("reboot(2) for {0}")]
    Reboot(&'static str, #[source] io::Error),
}

/// What to do at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Poweroff,
    Reboot,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Poweroff => "poweroff",
            Action::Reboot => "reboot",
        }
    }

    fn reboot_cmd(self) -> libc::c_int {
        match self {
            Action::Poweroff => libc::RB_POWER_OFF,
            Action::Reboot => libc::RB_AUTOBOOT,
        }
    }
}

/// How long processes get between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
const KILL_GRACE: Duration = Duration::from_secs(1);

/// Mount points to unmount, innermost (most recently mounted) first; `/` and the API
/// filesystems PID 1 still needs are left to the final read-only remount.
pub fn unmount_order(entries: &[MountEntry]) -> Vec<PathBuf> {
    const KEEP: [&str; 4] = ["/", "/proc", "/sys", "/dev"];
    let mut order: Vec<PathBuf> = entries
        .iter()
        .map(|e| e.mount_point.clone())
        .filter(|m| !KEEP.iter().any(|k| m == Path::new(k)))
        .collect();
    order.reverse();
    order.dedup();
    order
}

/// Signals every process but PID 1, then reaps until none are left or `grace` passes.
fn signal_and_reap(sig: libc::c_int, grace: Duration) {
    let _ = sys::kill(-1, sig);
    let deadline = Instant::now() + grace;
    loop {
        match sys::reap_one() {
            Reaped::Child(..) => continue,
            Reaped::NoChildren => return,
            Reaped::NoneExited if Instant::now() >= deadline => return,
            Reaped::NoneExited => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn unmount_all(reporter: &mut Reporter) {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let entries = crate::mountinfo::parse(&text).unwrap_or_default();
    for target in unmount_order(&entries) {
        if let Err(e) = sys::umount(&target, 0) {
            reporter.debug(&format!("unmount {}: {e}", target.display()));
        }
    }
    let ro = libc::MS_REMOUNT | libc::MS_RDONLY;
    if let Err(e) = sys::mount("", Path::new("/"), "", ro, "") {
        reporter.debug(&format!("remount / read-only: {e}"));
    }
}

/// Runs the whole sequence; returns only if reboot(2) fails.
pub fn shutdown(action: Action, reporter: &mut Reporter) -> ShutdownError {
    reporter.event(&events::shutdown(action.as_str()));
    reporter.info(&format!("{}: stopping all processes", action.as_str()));
    signal_and_reap(libc::SIGTERM, TERM_GRACE);
    signal_and_reap(libc::SIGKILL, KILL_GRACE);
    sys::sync();
    unmount_all(reporter);
    sys::sync();
    reporter.info(&format!("{}: now", action.as_str()));
    let err = match sys::reboot(action.reboot_cmd()) {
        Ok(()) => io::Error::other("returned"),
        Err(e) => e,
    };
    ShutdownError::Reboot(action.as_str(), err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn unmounts_innermost_first_and_keeps_api_filesystems() {
        let text = "\
1 0 0:1 / / rw - rootfs rootfs rw
2 1 7:0 / / ro - squashfs /dev/vda2 ro
3 2 0:2 / /proc rw - proc proc rw
4 2 0:3 / /sys rw - sysfs sysfs rw
5 4 0:4 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
6 2 0:5 / /dev rw - devtmpfs devtmpfs rw
7 6 0:6 / /dev/pts rw - devpts devpts rw
8 2 0:7 / /run rw - tmpfs tmpfs rw
9 2 0:8 / /etc rw - overlay overlay rw
10 2 0:9 / /var rw - tmpfs tmpfs rw
";
        let entries = crate::mountinfo::parse(text).unwrap();
        let got: Vec<String> = unmount_order(&entries)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(got, ["/var", "/etc", "/run", "/dev/pts", "/sys/fs/cgroup"]);
    }

    #[test]
    fn actions_map_to_reboot_commands() {
        let cases = [
            (Action::Poweroff, "poweroff", libc::RB_POWER_OFF),
            (Action::Reboot, "reboot", libc::RB_AUTOBOOT),
        ];
        for (action, name, cmd) in cases {
            assert_eq!((action.as_str(), action.reboot_cmd()), (name, cmd));
        }
    }
}
