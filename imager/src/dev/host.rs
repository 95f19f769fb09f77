//! Host effects of `kiln dev`: checking the base image, overlays (`qemu-img`), starting
//! detached processes, telling our QEMUs and hub from recycled pids, and QMP powerdown.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::qemu::process::{alive, detach};

const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";

/// Refuses a base image that is missing or not qcow2; returns its absolute path.
pub fn check_image(image: &Path) -> Result<PathBuf> {
    let abs = image.canonicalize().with_context(|| {
        format!(
            "image {} not found (build it with `kiln build`)",
            image.display()
        )
    })?;
    let mut magic = [0u8; 4];
    File::open(&abs)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("read image {}", abs.display()))?;
    if &magic != QCOW2_MAGIC {
        bail!(
            "image {} is not qcow2 (use the .qcow2 that `kiln build` writes)",
            abs.display()
        );
    }
    Ok(abs)
}

/// A qcow2 overlay at `disk` backed by `base` (guest writes land in the overlay only).
pub fn overlay(base: &Path, disk: &Path) -> Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(disk)
        .stdin(Stdio::null())
        .output()
        .context("run qemu-img (install qemu-utils)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("qemu-img create {}: {}", disk.display(), err.trim());
    }
    Ok(())
}

/// Starts `program args` in its own session with stdin closed and stdout+stderr appended
/// to `log`; returns its pid. The child is not waited for: it outlives this process.
pub fn spawn_detached(program: &Path, args: &[String], log: &Path) -> Result<u32> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("open {}", log.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    let child = detach(&mut cmd)
        .spawn()
        .with_context(|| format!("start {}", program.display()))?;
    Ok(child.id())
}

/// Whether `pid` is still one of our QEMUs (its argv names `pidfile`).
pub fn qemu_alive(pid: u32, pidfile: &Path) -> bool {
    let needle = crate::qemu::process::qemu_path(pidfile);
    alive(pid, |argv| argv.contains(&needle))
}

/// Whether `pid` is still the hub of cluster `name` (`kiln dev hub --name <name>`).
pub fn hub_alive(pid: u32, name: &str) -> bool {
    alive(pid, |argv| {
        argv.windows(2).any(|w| w[0] == "dev" && w[1] == "hub")
            && argv.windows(2).any(|w| w[0] == "--name" && w[1] == name)
    })
}

/// Waits until `gone()` holds or `timeout` passes; true if it held.
pub fn wait_until(timeout: Duration, gone: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if gone() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asks the guest to power off (ACPI power button) through QEMU's QMP socket.
pub fn qmp_powerdown(socket: &Path) -> Result<()> {
    let stream =
        UnixStream::connect(socket).with_context(|| format!("connect QMP {}", socket.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .context("set QMP timeout")?;
    let mut writer = stream.try_clone().context("clone QMP socket")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).context("read QMP greeting")?;
    for command in ["qmp_capabilities", "system_powerdown"] {
        writeln!(writer, "{{\"execute\":\"{command}\"}}")
            .with_context(|| format!("send QMP {command}"))?;
        // Skip asynchronous events until the reply.
        loop {
            line.clear();
            if reader.read_line(&mut line).context("read QMP reply")? == 0 {
                bail!("QMP closed before replying to {command}");
            }
            if line.contains("\"return\"") {
                break;
            }
            if line.contains("\"error\"") {
                bail!("QMP {command}: {}", line.trim());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_checks() {
        let dir = std::env::temp_dir().join(format!("kiln-dev-host-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.join("none.qcow2");
        let Err(e) = check_image(&missing) else {
            panic!("missing image accepted")
        };
        assert!(e.to_string().contains("not found"), "{e}");
        let raw = dir.join("node.img");
        fs::write(&raw, [0u8; 512]).unwrap_or_else(|e| panic!("{e}"));
        let Err(e) = check_image(&raw) else {
            panic!("raw image accepted")
        };
        assert!(e.to_string().contains("is not qcow2"), "{e}");
        let q = dir.join("node.qcow2");
        fs::write(&q, b"QFI\xfb\0\0\0\x03").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_image(&q).ok(), q.canonicalize().ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn liveness_needs_our_argv() {
        let me = std::process::id();
        assert!(!qemu_alive(me, Path::new("/no/such/qemu.pid")));
        assert!(!hub_alive(me, "dev"));
        assert!(!qemu_alive(u32::MAX - 1, Path::new("/x")));
        assert!(wait_until(Duration::from_secs(1), || true));
        assert!(!wait_until(Duration::from_millis(150), || false));
    }
}
