//! Child-process plumbing: test VMs and the KVM probe run in their own process group
//! and teardown kills the whole group; `kiln dev` detaches its QEMUs and hub into their
//! own sessions ([`detach`]) and finds them again by pid ([`alive`], [`cmdline`]).

use std::path::Path;
use std::process::{Child, Command, ExitStatus};

/// Puts the command in a new process group led by the child itself, so
/// [`kill_group`] reaches anything QEMU spawns.
pub fn own_group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

/// Starts the command in a new session (`setsid`): no controlling terminal, its own
/// process group, so neither Ctrl-C nor closing the terminal reaches it.
#[allow(unsafe_code)]
pub fn detach(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2),
    // which is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// The argv of process `pid` from /proc (empty for a zombie, `None` if it is gone).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Whether `pid` runs a program whose argv satisfies `is_ours` (a zombie or a recycled
/// pid running something else does not count).
pub fn alive(pid: u32, is_ours: impl Fn(&[String]) -> bool) -> bool {
    cmdline(pid).is_some_and(|argv| !argv.is_empty() && is_ours(&argv))
}

/// Sends `signal` to the single process `pid` (not a group); false if it is gone.
#[allow(unsafe_code)]
pub fn signal(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; callers check
    // with [`alive`] first that the pid still runs their program.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// SIGKILLs the child's process group and reaps the child.
///
/// The group is signalled only while the leader is unreaped (alive or a
/// zombie): that keeps its id from being recycled, which is what makes
/// signalling the group safe. If QEMU already exited and was reaped, stray
/// group members (QEMU starts none in our configurations) are left alone.
pub fn kill_group(child: &mut Child) -> std::io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    signal_group(child.id(), libc::SIGKILL);
    child.wait()
}

/// Sends `signal` to the process group `pgid`; errors (group already gone) are
/// irrelevant to callers, who reap the leader next.
#[allow(unsafe_code)]
fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the
    // negative pid targets the group led by our child, which `kill_group` has
    // just seen unreaped, so the id cannot belong to an unrelated group.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Escapes a path for a QEMU option value (`-drive file=`, `-chardev path=`):
/// commas are doubled.
pub fn qemu_path(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}
