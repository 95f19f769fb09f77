//! Safe wrappers around the few libc calls PID 1 needs that std does not offer.
//!
//! Owns every `unsafe` block of the crate; each wrapper is a thin translation of one
//! syscall into `io::Result`. It holds no policy (what to mount, when to reboot): callers
//! decide. Nothing here may panic.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Converts a path or string for a syscall; interior NULs become `InvalidInput`.
fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// mount(2). Empty `source`, `fstype` or `data` are passed as NULL.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let opt = |s: &str| -> io::Result<Option<CString>> {
        if s.is_empty() {
            Ok(None)
        } else {
            cstring(s.as_bytes()).map(Some)
        }
    };
    let (source, fstype, data) = (opt(source)?, opt(fstype)?, opt(data)?);
    let target = cstring(target.as_os_str().as_bytes())?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    #[allow(unsafe_code)]
    let ret = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    check(ret)
}

/// umount2(2).
pub fn umount(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = cstring(target.as_os_str().as_bytes())?;
    // SAFETY: `target` is a NUL-terminated string that outlives the call.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::umount2(target.as_ptr(), flags) };
    check(ret)
}

/// finit_module(2) with no parameters and no flags.
pub fn finit_module(file: &File) -> io::Result<()> {
    finit_module_flags(file, 0)
}

/// finit_module(2) with no parameters and `flags` (`MODULE_INIT_*`).
pub fn finit_module_flags(file: &File, flags: libc::c_int) -> io::Result<()> {
    let params = c"";
    // SAFETY: the fd is open for the duration of the call and `params` is a static
    // NUL-terminated string; the syscall reads nothing else from our memory.
    #[allow(unsafe_code)]
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            flags,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// reboot(2). Returns only on failure (or for `RB_DISABLE_CAD`).
pub fn reboot(cmd: libc::c_int) -> io::Result<()> {
    // SAFETY: reboot takes a plain integer and touches none of our memory.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::reboot(cmd) };
    check(ret)
}

/// kill(2); `pid == -1` means every process except PID 1.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes plain integers and touches none of our memory.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::kill(pid, sig) };
    check(ret)
}

/// sync(2).
pub fn sync() {
    // SAFETY: sync takes no arguments and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::sync()
    };
}

/// Outcome of one non-blocking wait for any child.
#[derive(Debug, PartialEq, Eq)]
pub enum Reaped {
    /// A child's pid and its raw wait status.
    Child(libc::pid_t, libc::c_int),
    NoneExited,
    NoChildren,
}

/// waitpid(-1, WNOHANG).
pub fn reap_one() -> Reaped {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    #[allow(unsafe_code)]
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        0 => Reaped::NoneExited,
        p if p > 0 => Reaped::Child(p, status),
        _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => Reaped::NoneExited,
        _ => Reaped::NoChildren,
    }
}

/// waitpid(pid, WNOHANG): the raw status once `pid` has exited.
pub fn try_wait_pid(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    #[allow(unsafe_code)]
    let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (got == pid).then_some(status)
}

/// Time since boot including suspend (CLOCK_BOOTTIME); zero if the clock is unreadable.
pub fn boottime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if ret != 0 {
        return Duration::ZERO;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Filesystem magic (`f_type`) of the filesystem holding `path`.
pub fn fs_magic(path: &Path) -> io::Result<i64> {
    let path = cstring(path.as_os_str().as_bytes())?;
    // SAFETY: statfs is plain old data for which all-zero bytes is a valid value.
    #[allow(unsafe_code)]
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `buf` is a valid, writable statfs.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::statfs(path.as_ptr(), &mut buf) };
    check(ret)?;
    #[allow(clippy::useless_conversion)]
    Ok(i64::from(buf.f_type))
}

/// Waits until `fd` is writable; `Ok(false)` on timeout.
pub fn poll_writable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid, writable pollfd, matching the count of 1.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// Makes sure fds 0, 1 and 2 are open (on `console`), so that files we open later never
/// land on them and receive our console output.
pub fn ensure_std_fds(console: &Path) {
    let Ok(path) = cstring(console.as_os_str().as_bytes()) else {
        return;
    };
    for fd in 0..3 {
        // SAFETY: F_GETFD on any integer is harmless; it only reports whether it is open.
        #[allow(unsafe_code)]
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        if open {
            continue;
        }
        // SAFETY: `path` is NUL-terminated; the returned fd is ours to place or close.
        #[allow(unsafe_code)]
        let new = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
        if new >= 0 && new != fd {
            // SAFETY: both are plain fds; `new` was opened above and is not used elsewhere.
            #[allow(unsafe_code)]
            unsafe {
                libc::dup2(new, fd);
                libc::close(new);
            }
        }
    }
}

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset below initialises it properly.
    #[allow(unsafe_code)]
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; invalid signal numbers only fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
    }
    set
}

/// Why [`SignalFd::wait_either`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Signal(libc::c_int),
    /// The other descriptor is readable (or hung up).
    Readable,
    Timeout,
}

/// A signalfd(2) for a set of signals that are blocked for normal delivery.
///
/// Blocked signals are queued even for PID 1 (the kernel drops only default-action
/// signals to init), so they are never lost between blocking and reading.
#[derive(Debug)]
pub struct SignalFd {
    file: File,
}

impl SignalFd {
    /// Blocks `signals` for this thread and opens a signalfd for them.
    pub fn new(signals: &[libc::c_int]) -> io::Result<Self> {
        let set = sigset(signals);
        // SAFETY: `set` is initialised; the old mask is not requested (NULL).
        #[allow(unsafe_code)]
        let ret = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        check(ret)?;
        // SAFETY: `set` is initialised; -1 asks for a new fd.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by signalfd and is owned by nobody else.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            file: File::from(owned),
        })
    }

    /// Waits up to `timeout` (forever with `None`) for a signal; `None` on timeout.
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> io::Result<Option<libc::c_int>> {
        match self.wait_either(timeout, None)? {
            Wake::Signal(sig) => Ok(Some(sig)),
            Wake::Readable | Wake::Timeout => Ok(None),
        }
    }

    /// Waits up to `timeout` for a signal or for `other` to become readable (or hung up).
    pub fn wait_either(
        &mut self,
        timeout: Option<Duration>,
        other: Option<std::os::fd::RawFd>,
    ) -> io::Result<Wake> {
        let ms = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
        });
        let pfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // A negative fd is ignored by poll(2).
        let mut fds = [pfd(self.file.as_raw_fd()), pfd(other.unwrap_or(-1))];
        // SAFETY: `fds` is a valid array of two pollfds that outlives the call.
        #[allow(unsafe_code)]
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        match n {
            0 => Ok(Wake::Timeout),
            n if n > 0 && fds[0].revents != 0 => self.wait().map(Wake::Signal),
            n if n > 0 => Ok(Wake::Readable),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {
                Ok(Wake::Timeout)
            }
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Blocks until one signal arrives and returns its number.
    pub fn wait(&mut self) -> io::Result<libc::c_int> {
        use std::io::Read;
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        loop {
            match self.file.read(&mut buf) {
                Ok(n) if n == buf.len() => {
                    let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    return Ok(libc::c_int::try_from(signo).unwrap_or(0));
                }
                Ok(_) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
