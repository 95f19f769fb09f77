//! Child-process plumbing shared by the VM and the KVM probe: every QEMU runs
//! in its own process group, and teardown kills the whole group.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};

/// Puts the command in a new process group led by the child itself, so
/// [`kill_group`] reaches anything QEMU spawns.
pub fn own_group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
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
