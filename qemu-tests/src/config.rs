//! What a test asks for ([`VmConfig`]) and the pure translation of it into a
//! QEMU command line. Starting and watching the process is `vm.rs`'s job.

use std::path::{Path, PathBuf};

use crate::accel::Accel;
use crate::arch::Arch;
use crate::process::qemu_path;

/// Name of the virtio-serial port PID 1 writes JSON-line events to.
pub const EVENT_PORT: &str = "kiln.events";

/// One VM to boot. Build with [`VmConfig::new`] or [`VmConfig::firmware_only`]
/// and adjust the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Names the artifact directory (`<target>/qemu-tests/<name>-<unix-ms>/`).
    pub name: String,
    /// Guest architecture (`Aarch64`: `-M virt -cpu cortex-a57` with AAVMF).
    pub arch: Arch,
    /// Boot disk (GPT image), attached as virtio-blk; `None` boots firmware only.
    pub disk: Option<PathBuf>,
    /// QEMU format of `disk`: `"raw"` or `"qcow2"`.
    pub disk_format: &'static str,
    /// Discard all guest writes to `disk` (`snapshot=on`), so the base image is
    /// never modified. On by default.
    pub snapshot: bool,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub cpus: u32,
    /// Value of `-nic`; default `user,model=virtio-net-pci`; `None` = no NIC.
    pub nic: Option<String>,
    /// x86_64 only: boot with QEMU's SeaBIOS instead of UEFI (no pflash), e.g. for
    /// network boot through the NIC's iPXE option ROM.
    pub bios: bool,
    /// Appended verbatim after everything else.
    pub extra_args: Vec<String>,
}

impl VmConfig {
    /// x86_64, 1024 MiB, 2 vCPUs, user networking, snapshot on; the format is
    /// `qcow2` if the file name ends in `.qcow2`, else `raw`.
    pub fn new(name: &str, disk: impl Into<PathBuf>) -> VmConfig {
        let disk = disk.into();
        let qcow2 = disk.extension().is_some_and(|ext| ext == "qcow2");
        VmConfig {
            disk: Some(disk),
            disk_format: if qcow2 { "qcow2" } else { "raw" },
            nic: Some("user,model=virtio-net-pci".to_string()),
            ..VmConfig::firmware_only(name)
        }
    }

    /// Like [`VmConfig::new`] but with no disk and no NIC: the firmware boots
    /// into its shell. For harness self-tests.
    pub fn firmware_only(name: &str) -> VmConfig {
        VmConfig {
            name: name.to_string(),
            arch: Arch::X86_64,
            disk: None,
            disk_format: "raw",
            snapshot: true,
            memory_mib: 1024,
            cpus: 2,
            nic: None,
            bios: false,
            extra_args: Vec::new(),
        }
    }
}

/// Host files a VM's command line refers to.
#[derive(Debug, Clone)]
pub struct VmPaths {
    /// Read-only firmware code.
    pub firmware_code: PathBuf,
    /// This VM's writable copy of the variable store.
    pub firmware_vars: PathBuf,
    /// Serial console log.
    pub serial: PathBuf,
    /// Where the harness copies what the `kiln.events` port writes.
    pub events: PathBuf,
    /// The unix socket QEMU serves the `kiln.events` port on (requests go in here).
    pub events_socket: PathBuf,
    /// QMP unix socket.
    pub qmp: PathBuf,
}

/// The full QEMU argument list (without the binary) for `cfg`.
pub fn qemu_args(cfg: &VmConfig, accel: Accel, paths: &VmPaths) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-display", "none", "-no-reboot"]);
    push(&["-M", cfg.arch.machine()]);
    let memory = cfg.memory_mib.to_string();
    let cpus = cfg.cpus.to_string();
    push(&["-m", &memory, "-smp", &cpus]);
    let code = format!(
        "if=pflash,format=raw,readonly=on,file={}",
        qemu_path(&paths.firmware_code)
    );
    let vars = format!(
        "if=pflash,format=raw,file={}",
        qemu_path(&paths.firmware_vars)
    );
    if !cfg.bios {
        push(&["-drive", &code, "-drive", &vars]);
    }
    let serial = format!("file,id=con,path={}", qemu_path(&paths.serial));
    push(&["-chardev", &serial, "-serial", "chardev:con"]);
    let events = format!(
        "socket,id=ev,path={},server=on,wait=off",
        qemu_path(&paths.events_socket)
    );
    let port = format!("virtserialport,bus=vser0.0,chardev=ev,name={EVENT_PORT}");
    push(&["-device", "virtio-serial-pci,id=vser0", "-chardev", &events]);
    push(&["-device", &port]);
    if let Some(disk) = &cfg.disk {
        push(&["-drive", &disk_arg(disk, cfg.disk_format, cfg.snapshot)]);
    }
    if let Some(nic) = &cfg.nic {
        push(&["-nic", nic]);
    }
    let qmp = format!("unix:{},server=on,wait=off", qemu_path(&paths.qmp));
    push(&["-qmp", &qmp]);
    args.extend(accel.args(cfg.arch));
    args.extend(cfg.extra_args.iter().cloned());
    args
}

fn disk_arg(disk: &Path, format: &str, snapshot: bool) -> String {
    let snap = if snapshot { ",snapshot=on" } else { "" };
    format!("if=virtio,format={format},file={}{snap}", qemu_path(disk))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn paths() -> VmPaths {
        VmPaths {
            firmware_code: "/fw/CODE.fd".into(),
            firmware_vars: "/a/vars.fd".into(),
            serial: "/a/serial.log".into(),
            events: "/a/events.jsonl".into(),
            events_socket: "/a/events.sock".into(),
            qmp: "/a/qmp.sock".into(),
        }
    }

    fn has_pair(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn defaults() {
        let cfg = VmConfig::new("t", "/img/kiln.qcow2");
        assert_eq!(cfg.disk_format, "qcow2");
        assert!(cfg.snapshot);
        assert_eq!(VmConfig::new("t", "/img/kiln.img").disk_format, "raw");
        assert_eq!(VmConfig::firmware_only("t").nic, None);
    }

    #[test]
    fn command_line() {
        let mut cfg = VmConfig::new("t", "/img/a,b.img");
        cfg.extra_args = vec!["-s".into()];
        let args = qemu_args(&cfg, Accel::Tcg, &paths());
        let expect_disk = "if=virtio,format=raw,file=/img/a,,b.img,snapshot=on";
        assert!(has_pair(&args, "-drive", expect_disk), "{args:?}");
        assert!(has_pair(&args, "-nic", "user,model=virtio-net-pci"));
        assert!(has_pair(&args, "-accel", "tcg,thread=single"));
        assert!(has_pair(&args, "-cpu", "max"));
        assert!(has_pair(&args, "-M", "q35"));
        assert!(has_pair(
            &args,
            "-device",
            "virtserialport,bus=vser0.0,chardev=ev,name=kiln.events"
        ));
        assert!(has_pair(
            &args,
            "-chardev",
            "socket,id=ev,path=/a/events.sock,server=on,wait=off"
        ));
        assert!(has_pair(
            &args,
            "-qmp",
            "unix:/a/qmp.sock,server=on,wait=off"
        ));
        assert_eq!(args.last().map(String::as_str), Some("-s"));
    }

    #[test]
    fn aarch64_and_no_snapshot() {
        let mut cfg = VmConfig::new("t", "/img/k.img");
        cfg.arch = Arch::Aarch64;
        cfg.snapshot = false;
        cfg.nic = None;
        let args = qemu_args(&cfg, Accel::Tcg, &paths());
        assert!(has_pair(&args, "-M", "virt"));
        assert!(has_pair(&args, "-cpu", "cortex-a57"));
        assert!(has_pair(
            &args,
            "-drive",
            "if=virtio,format=raw,file=/img/k.img"
        ));
        assert!(!args.iter().any(|a| a == "-nic"));
    }

    #[test]
    fn bios_boot_has_no_pflash() {
        let mut cfg = VmConfig::firmware_only("t");
        assert!(qemu_args(&cfg, Accel::Tcg, &paths())
            .iter()
            .any(|a| a.contains("if=pflash")));
        cfg.bios = true;
        let args = qemu_args(&cfg, Accel::Tcg, &paths());
        assert!(!args.iter().any(|a| a.contains("if=pflash")), "{args:?}");
    }
}
