//! Accelerator choice: KVM when it really works, TCG otherwise.
//!
//! Opening `/dev/kvm` is not enough: nested or emulated KVM can accept the
//! ioctls and still fail on the first firmware instruction it cannot handle
//! ("KVM internal error", or QEMU aborting on an MSR). So after the open check,
//! a short probe boots the firmware under KVM once per process and uses KVM
//! only if the firmware reaches its console. `KILN_QEMU_ACCEL=kvm|tcg` skips
//! all of that.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::arch::Arch;
use super::process::{kill_group, own_group, qemu_path};

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (`-accel kvm -cpu host`).
    Kvm,
    /// QEMU's emulator (`-accel tcg -cpu <arch default>`), slow but universal.
    Tcg,
}

const ENV_ACCEL: &str = "KILN_QEMU_ACCEL";
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Accel {
    /// The accelerator for `arch` on this host; prints a one-line notice on
    /// stderr the first time it falls back to TCG. Cached per process.
    pub fn detect(arch: Arch) -> Accel {
        match std::env::var(ENV_ACCEL).as_deref() {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        if arch != Arch::host() {
            return Accel::Tcg;
        }
        static HOST: OnceLock<Accel> = OnceLock::new();
        *HOST.get_or_init(|| match kvm_unusable(arch) {
            None => Accel::Kvm,
            Some(why) => {
                eprintln!("kiln: {why}; using TCG (slow)");
                Accel::Tcg
            }
        })
    }

    /// QEMU arguments selecting this accelerator and a matching CPU model.
    pub fn args(self, arch: Arch) -> Vec<String> {
        let (accel, cpu) = match self {
            Accel::Kvm => ("kvm", "host"),
            // Single-threaded TCG: with multi-threaded TCG (QEMU 7.2), the kernel's live
            // text patching (int3-based static keys) raced across vCPUs and oopsed in
            // early boot on a loaded host ("Oops: int3" in run_timer_softirq).
            Accel::Tcg => ("tcg,thread=single", arch.tcg_cpu()),
        };
        ["-accel", accel, "-cpu", cpu].map(String::from).to_vec()
    }
}

/// Why KVM cannot be used, or `None` if it can.
fn kvm_unusable(arch: Arch) -> Option<String> {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Some(format!("/dev/kvm not usable ({e})"));
    }
    match probe(arch) {
        Ok(()) => None,
        Err(why) => Some(format!("KVM probe failed ({why})")),
    }
}

/// Boots the firmware under KVM with no disk and waits for console output.
fn probe(arch: Arch) -> Result<(), String> {
    let qemu = arch.find_qemu()?;
    let firmware = arch.firmware()?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("kiln-kvm-probe-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let result = run_probe(&qemu, &firmware, arch, &dir);
    // Best effort: a leftover probe dir in /tmp is harmless.
    let _ = fs::remove_dir_all(&dir);
    result
}

fn run_probe(
    qemu: &Path,
    firmware: &super::arch::Firmware,
    arch: Arch,
    dir: &Path,
) -> Result<(), String> {
    let serial = dir.join("serial.log");
    let stderr_path = dir.join("stderr.log");
    let stderr = File::create(&stderr_path).map_err(|e| format!("create stderr log: {e}"))?;
    let mut cmd = Command::new(qemu);
    cmd.args(["-nodefaults", "-display", "none", "-no-reboot", "-m", "128"])
        .args(["-M", arch.machine()])
        .args(Accel::Kvm.args(arch))
        .arg("-drive")
        .arg(pflash(&firmware.code, "readonly=on"))
        .arg("-drive")
        .arg(pflash(&firmware.vars, "snapshot=on"))
        .arg("-chardev")
        .arg(format!("file,id=con,path={}", serial.display()))
        .args(["-serial", "chardev:con"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut child = own_group(&mut cmd)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", qemu.display()))?;
    let start = Instant::now();
    let verdict = loop {
        if fs::metadata(&serial).is_ok_and(|m| m.len() > 0) {
            break Ok(());
        }
        let err_text = fs::read_to_string(&stderr_path).unwrap_or_default();
        if err_text.contains("KVM internal error") {
            break Err("KVM internal error".to_string());
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                let first = err_text
                    .lines()
                    .find(|l| !l.contains("warning"))
                    .unwrap_or("");
                return Err(format!("QEMU exited with {status}: {first}"));
            }
            Ok(None) => {}
            Err(e) => break Err(format!("wait for QEMU: {e}")),
        }
        if start.elapsed() > PROBE_TIMEOUT {
            break Err(format!("no firmware output within {PROBE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The probe guest is disposable; a failed kill only leaves a zombie.
    let _ = kill_group(&mut child);
    verdict
}

fn pflash(file: &Path, extra: &str) -> String {
    format!("if=pflash,format=raw,{extra},file={}", qemu_path(file))
}
