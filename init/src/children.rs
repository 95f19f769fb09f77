//! Short-lived helper processes (nft, debug `exec` requests) run from threads while PID 1's
//! loop reaps every child with `waitpid(-1)`: a process-wide registry hands each helper's
//! exit status to the thread waiting for it, so that no status is stolen.
//!
//! Owns that registry and `run`. Services do not use it (their statuses go to the
//! supervisor); `supervise::reap_all` offers every reaped pid here first.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// pid → raw wait status once reaped.
static REGISTRY: Mutex<BTreeMap<libc::pid_t, Option<libc::c_int>>> = Mutex::new(BTreeMap::new());
static REAPED: Condvar = Condvar::new();
/// Output kept per run (the rest is cut).
pub const MAX_OUTPUT: u64 = 64 * 1024;

/// What a helper did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code, or 128 + signal number like a shell.
    pub code: i32,
    /// stdout and stderr, interleaved, at most `MAX_OUTPUT` bytes (lossy UTF-8).
    pub output: String,
    pub timed_out: bool,
}

/// Called by the reaper for every reaped pid; true when it was a registered helper.
pub fn deliver(pid: libc::pid_t, status: libc::c_int) -> bool {
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    match reg.get_mut(&pid) {
        Some(slot) => {
            *slot = Some(status);
            REAPED.notify_all();
            true
        }
        None => false,
    }
}

/// Runs `cmd` (stdin from /dev/null, stdout and stderr into `scratch`), waits at most
/// `timeout` (then SIGKILL) and returns its outcome. Needs a reaper calling `deliver`
/// (PID 1's loop); in tests without one, the caller's own thread is not PID 1, so the
/// status is collected with a targeted `waitpid` instead.
pub fn run(cmd: &mut Command, scratch: &std::path::Path, timeout: Duration) -> io::Result<Outcome> {
    let out = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(scratch)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out.try_clone()?);
    let pid = {
        // Registered before the reaper can see the exit: it needs this lock to deliver.
        let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        let child = cmd.spawn()?;
        let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
        reg.insert(pid, None);
        pid
    };
    let (status, timed_out) = wait(pid, timeout);
    let mut output = Vec::new();
    let mut out = out;
    out.rewind()?;
    out.take(MAX_OUTPUT).read_to_end(&mut output)?;
    let _ = std::fs::remove_file(scratch);
    Ok(Outcome {
        code: code(status),
        output: String::from_utf8_lossy(&output).into_owned(),
        timed_out,
    })
}

fn wait(pid: libc::pid_t, timeout: Duration) -> (libc::c_int, bool) {
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(Some(status)) = reg.get(&pid).copied() {
            reg.remove(&pid);
            return (status, timed_out);
        }
        if std::process::id() != 1 {
            // No PID 1 reaper in this process (unit tests): collect it ourselves.
            if let Some(status) = crate::sys::try_wait_pid(pid) {
                reg.remove(&pid);
                return (status, timed_out);
            }
        }
        let now = Instant::now();
        if now >= deadline && !timed_out {
            timed_out = true;
            let _ = crate::sys::kill(pid, libc::SIGKILL);
        }
        let step = Duration::from_millis(50).min(
            deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(10)),
        );
        reg = REAPED
            .wait_timeout(reg, step)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

fn code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn runs_and_collects_output_and_code() {
        let tmp = TempDir::new("children");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let got = run(&mut cmd, &tmp.path().join("o"), Duration::from_secs(5)).unwrap();
        assert_eq!(got.code, 3);
        assert_eq!(got.output, "out\nerr\n");
        assert!(!got.timed_out);
        assert!(!tmp.path().join("o").exists(), "scratch removed");
    }

    #[test]
    fn a_hanging_helper_is_killed_at_the_timeout() {
        let tmp = TempDir::new("children-hang");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let start = Instant::now();
        let got = run(&mut cmd, &tmp.path().join("o"), Duration::from_millis(300)).unwrap();
        assert!(got.timed_out);
        assert_eq!(got.code, 128 + libc::SIGKILL);
        assert_eq!(got.output, "started\n");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn unknown_pids_are_not_claimed() {
        assert!(!deliver(999_999, 0));
    }
}
