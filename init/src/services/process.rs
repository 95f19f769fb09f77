//! The real host side of the supervisor: `ProcessSpawner` (std `Command` with a reset
//! child and one output pipe per process), `SysProber` and `BootClock`.
//!
//! Children get a clean start: std's `Command` deliberately *inherits* the parent's
//! signal mask (library/std/src/sys/process/unix/unix.rs, `do_exec`: "Inherit the signal
//! mask from the parent rather than resetting it"), and PID 1 blocks SIGCHLD, SIGTERM,
//! SIGINT and SIGUSR2 for its signalfd, so `pre_exec` empties the mask; it also calls
//! setsid(2) so a service has its own session and process group and no controlling
//! terminal. std resets only SIGPIPE to SIG_DFL itself. Signals go to the main pid only
//! (like systemd's KillMode=process for containerd: shims and containers survive a
//! containerd restart); the final shutdown sweep (`kill(-1)`) handles the rest.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::event;
use super::exec::{Clock, Prober, SpawnError, Spawner};
use super::logs::{self, EventQueue, LogSink, RotatingFile, Rotation};
use super::machine::Pid;
use super::spec::{Readiness, ServiceSpec};

/// The only variable in a service's otherwise empty environment (before `spec.env`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Spawns services with their output piped into per-service log sinks.
pub struct ProcessSpawner {
    queue: EventQueue,
    rotation: Rotation,
    forward: Option<u32>,
    clock: fn() -> Duration,
    /// One sink per service, shared by the reader threads of its successive processes.
    sinks: HashMap<String, Arc<Mutex<LogSink>>>,
}

impl ProcessSpawner {
    /// `forward`: lines per second per service to send as `log` events (None: none).
    pub fn new(queue: EventQueue, rotation: Rotation, forward: Option<u32>) -> Self {
        Self {
            queue,
            rotation,
            forward,
            clock: crate::sys::boottime,
            sinks: HashMap::new(),
        }
    }

    fn sink(&mut self, spec: &ServiceSpec) -> Arc<Mutex<LogSink>> {
        let make = || {
            let file = RotatingFile::new(spec.log.clone(), self.rotation);
            Arc::new(Mutex::new(
                LogSink::new(&spec.name, file, self.queue.clone(), self.forward)
                    .bridging(spec.events),
            ))
        };
        Arc::clone(self.sinks.entry(spec.name.clone()).or_insert_with(make))
    }
}

impl Spawner for ProcessSpawner {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Pid, SpawnError> {
        let Some((program, args)) = spec.command.split_first() else {
            return Err(SpawnError::Spawn(
                "".into(),
                io::ErrorKind::InvalidInput.into(),
            ));
        };
        let (read, write) = pipe().map_err(SpawnError::Pipe)?;
        let write2 = write.try_clone().map_err(SpawnError::Pipe)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2));
        reset_child(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| SpawnError::Spawn(program.into(), e));
        // Our copies of the write end must go, or the reader never sees EOF.
        drop(cmd);
        let child = child?;
        let pid = Pid::try_from(child.id()).map_err(|_| SpawnError::Pid(child.id()))?;
        let sink = self.sink(spec);
        let reader = File::from(read);
        if let Err(e) = logs::spawn_reader(&spec.name, reader, sink, self.queue.clone(), self.clock)
        {
            // The service runs on; without a reader its writes fail with EPIPE.
            let reason = format!("start log reader thread: {e}");
            self.queue.push(event::log_error(&spec.name, &reason));
        }
        Ok(pid)
    }

    fn kill(&mut self, pid: Pid, signal: i32) -> io::Result<()> {
        crate::sys::kill(pid, signal)
    }
}

/// pipe2(O_CLOEXEC): (read end, write end).
#[allow(unsafe_code)]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[allow(unsafe_code)]
fn reset_child(cmd: &mut Command) {
    // SAFETY: `child_setup` runs between fork and exec and only makes async-signal-safe
    // syscalls on stack data; it neither allocates nor takes locks.
    unsafe {
        cmd.pre_exec(child_setup);
    }
}

/// In the child: new session, empty signal mask.
#[allow(unsafe_code)]
fn child_setup() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and touches none of our memory.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    empty_signal_mask()
}

/// In a child between fork and exec: unblock every signal (PID 1 blocks some for its
/// signalfd and std's Command inherits the mask). Async-signal-safe: stack data only.
#[allow(unsafe_code)]
pub(crate) fn empty_signal_mask() -> io::Result<()> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; the old mask is not requested.
    let ret = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut())
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Readiness checks against the real system (each returns within ~200 ms).
#[derive(Debug, Default)]
pub struct SysProber;

impl Prober for SysProber {
    fn probe(&mut self, ready: &Readiness) -> bool {
        match ready {
            Readiness::None => true,
            Readiness::UnixSocket(path) => UnixStream::connect(path).is_ok(),
            Readiness::TcpPort(port) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], *port));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            }
            Readiness::File(path) => path.exists(),
        }
    }
}

/// CLOCK_BOOTTIME, the clock of the `ts` field of every event.
#[derive(Debug, Default)]
pub struct BootClock;

impl Clock for BootClock {
    fn now(&self) -> Duration {
        crate::sys::boottime()
    }
}
