//! Loop devices for a network-booted root: a free `/dev/loopN` from `/dev/loop-control`,
//! bound read-only to an open file with `LOOP_CONFIGURE` and auto-cleared when the last
//! user (the squashfs mount) goes away.
//!
//! Owns the ioctls and their structs (linux/loop.h); which file and where it is mounted
//! is the caller's business.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` (232 bytes).
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` (304 bytes).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Errors naming the step and the device.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("open {0} (is the loop module loaded?)")]
    Control(PathBuf, #[source] io::Error),
    #[error("ask {0} for a free loop device")]
    GetFree(PathBuf, #[source] io::Error),
    #[error("open {0}")]
    Open(PathBuf, #[source] io::Error),
    #[error("bind {file} to {device}")]
    Configure {
        file: PathBuf,
        device: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A configured loop device, held open: with auto-clear, closing the last descriptor of
/// an unmounted loop device detaches it, so keep this until the mount is done.
#[derive(Debug)]
pub struct Attached {
    pub device: PathBuf,
    _open: File,
}

/// Binds `file` (opened read-only) to a free loop device under `dev`. The device detaches
/// itself once it is neither open nor mounted.
pub fn attach_read_only(dev: &Path, file: &File, name: &Path) -> Result<Attached, LoopError> {
    let control_path = dev.join("loop-control");
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&control_path)
        .map_err(|e| LoopError::Control(control_path.clone(), e))?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
    #[allow(unsafe_code)]
    let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
    if n < 0 {
        return Err(LoopError::GetFree(control_path, io::Error::last_os_error()));
    }
    let device = dev.join(format!("loop{n}"));
    let loop_file = open_when_present(&device)?;
    let mut info = LoopInfo64 {
        device: 0,
        inode: 0,
        rdevice: 0,
        offset: 0,
        sizelimit: 0,
        number: 0,
        encrypt_type: 0,
        encrypt_key_size: 0,
        flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
        file_name: [0; 64],
        crypt_name: [0; 64],
        encrypt_key: [0; 32],
        init: [0; 2],
    };
    let shown = name.as_os_str().as_encoded_bytes();
    let len = shown.len().min(63);
    info.file_name[..len].copy_from_slice(&shown[..len]);
    let config = LoopConfig {
        fd: u32::try_from(file.as_raw_fd()).unwrap_or(u32::MAX),
        block_size: 0,
        info,
        reserved: [0; 8],
    };
    // SAFETY: `config` is a properly laid out `struct loop_config` that outlives the call;
    // the kernel only reads it.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::ioctl(
            loop_file.as_raw_fd(),
            LOOP_CONFIGURE as _,
            &config as *const LoopConfig,
        )
    };
    if rc < 0 {
        return Err(LoopError::Configure {
            file: name.to_path_buf(),
            device,
            source: io::Error::last_os_error(),
        });
    }
    Ok(Attached {
        device,
        _open: loop_file,
    })
}

/// devtmpfs creates the node right after LOOP_CTL_GET_FREE added the device; give it a
/// moment rather than failing on the race.
fn open_when_present(device: &Path) -> Result<File, LoopError> {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        match OpenOptions::new().read(true).open(device) {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(LoopError::Open(device.to_path_buf(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn missing_control_names_the_module() {
        let Ok(file) = File::open("/proc/self/status") else {
            panic!("open /proc/self/status")
        };
        let got = attach_read_only(Path::new("/nonexistent-dev"), &file, Path::new("x"));
        let Err(e) = got else {
            panic!("attached without a loop-control")
        };
        assert!(e.to_string().contains("loop module"), "{e}");
    }
}
