//! The host boundary of `state`: opening block devices, running e2fsprogs, and the three
//! kernel calls (BLKPG resize, BLKRRPART, lazy unmount), as narrow traits and their real
//! implementations. Fakes live in the tests.
//!
//! Owns the only `unsafe` of the module (two ioctls). Holds no policy.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

use super::gpt::DiskIo;

/// Opens block devices (or image files in tests).
pub trait Disks {
    fn open(&mut self, path: &Path, write: bool) -> io::Result<Box<dyn DiskIo>>;
}

/// What a finished command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// The last lines of stderr and stdout, for error messages.
    pub tail: String,
}

/// Runs e2fsprogs to completion.
pub trait Runner {
    fn run(&mut self, program: &str, args: &[String]) -> io::Result<RunOutput>;
}

/// The kernel calls that change what the kernel believes about partitions and mounts,
/// and one chmod.
pub trait Kernel {
    /// BLKPG_RESIZE_PARTITION on `disk`: partition `number` now spans `start..start+len`
    /// bytes.
    fn resize_partition(
        &mut self,
        disk: &Path,
        number: u32,
        start: u64,
        len: u64,
    ) -> io::Result<()>;
    /// BLKRRPART: re-read the whole table (fails with EBUSY while any partition is mounted).
    fn reread_partitions(&mut self, disk: &Path) -> io::Result<()>;
    /// umount2(MNT_DETACH).
    fn detach(&mut self, target: &Path) -> io::Result<()>;
    /// Gives `to` the permission bits of `from` (an overlay's root shows its upper dir's).
    fn copy_mode(&mut self, from: &Path, to: &Path) -> io::Result<()>;
}

/// Real block devices.
#[derive(Debug, Default)]
pub struct SysDisks;

impl Disks for SysDisks {
    fn open(&mut self, path: &Path, write: bool) -> io::Result<Box<dyn DiskIo>> {
        let file = OpenOptions::new().read(true).write(write).open(path)?;
        Ok(Box::new(file))
    }
}

/// std `Command`: only safe before the PID 1 reaper runs (it would steal the status).
#[derive(Debug, Default)]
pub struct SysRunner;

const TAIL_BYTES: usize = 400;

impl Runner for SysRunner {
    fn run(&mut self, program: &str, args: &[String]) -> io::Result<RunOutput> {
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        let text = text.trim();
        let cut = text
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| text.len() - i <= TAIL_BYTES)
            .unwrap_or(text.len());
        Ok(RunOutput {
            code: out.status.code(),
            tail: text[cut..].to_string(),
        })
    }
}

/// `struct blkpg_partition` of <linux/blkpg.h>.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// `struct blkpg_ioctl_arg` of <linux/blkpg.h>.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// _IO(0x12, 105) and _IO(0x12, 95) of <linux/fs.h>.
const BLKPG: libc::Ioctl = 0x1269;
const BLKRRPART: libc::Ioctl = 0x125f;
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;

/// Real kernel calls.
#[derive(Debug, Default)]
pub struct SysKernel;

fn to_i64(v: u64) -> io::Result<i64> {
    i64::try_from(v).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

impl Kernel for SysKernel {
    fn resize_partition(
        &mut self,
        disk: &Path,
        number: u32,
        start: u64,
        len: u64,
    ) -> io::Result<()> {
        let file = OpenOptions::new().read(true).open(disk)?;
        let mut part = BlkpgPartition {
            start: to_i64(start)?,
            length: to_i64(len)?,
            pno: libc::c_int::try_from(number).map_err(|_| io::ErrorKind::InvalidInput)?,
            devname: [0; 64],
            volname: [0; 64],
        };
        let mut arg = BlkpgIoctlArg {
            op: BLKPG_RESIZE_PARTITION,
            flags: 0,
            datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
            data: std::ptr::addr_of_mut!(part).cast(),
        };
        // SAFETY: `arg` and the `part` it points to are valid #[repr(C)] structs matching
        // <linux/blkpg.h> and outlive the call; the fd is open.
        #[allow(unsafe_code)]
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), BLKPG, std::ptr::addr_of_mut!(arg)) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn reread_partitions(&mut self, disk: &Path) -> io::Result<()> {
        let file = OpenOptions::new().read(true).open(disk)?;
        // SAFETY: BLKRRPART takes no argument; the fd is open.
        #[allow(unsafe_code)]
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), BLKRRPART) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn detach(&mut self, target: &Path) -> io::Result<()> {
        crate::sys::umount(target, libc::MNT_DETACH)
    }

    fn copy_mode(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blkpg_structs_match_the_kernel_abi() {
        // x86_64 and aarch64: 8 + 8 + 4 + 64 + 64 = 148, padded to 152; the arg is
        // three ints and a pointer.
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
    }

    #[test]
    fn runner_keeps_exit_code_and_tail() {
        let args: Vec<String> = ["-c", "echo oops >&2; exit 4"].map(String::from).to_vec();
        let out = SysRunner.run("/bin/sh", &args).unwrap();
        assert_eq!(out.code, Some(4));
        assert_eq!(out.tail, "oops");
    }
}
