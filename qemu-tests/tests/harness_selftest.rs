//! Self-test of the QEMU harness itself: boots OVMF with an empty disk (no Kiln
//! image involved) and checks process, QMP, console, failure reporting and
//! artifact handling.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qemu_tests::{require_qemu, Arch, Vm, VmConfig};

/// The error of `result`, which must have failed.
fn expect_err<T>(result: anyhow::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn keep_artifacts() -> bool {
    std::env::var("KILN_KEEP_ARTIFACTS").is_ok_and(|v| v == "1")
}

fn scratch_disk(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("{name}-{}.img", std::process::id()));
    std::fs::write(&path, vec![0u8; 1 << 20])?;
    Ok(path)
}

#[test]
fn firmware_boots_and_drop_kills_the_group() -> anyhow::Result<()> {
    if !require_qemu(Arch::X86_64) {
        return Ok(());
    }
    let disk = scratch_disk("kiln-selftest-ok")?;
    let mut cfg = VmConfig::new("selftest-ok", &disk);
    cfg.memory_mib = 256;
    cfg.cpus = 1;
    cfg.nic = None;
    let mut vm = Vm::start(cfg)?;
    let status = vm.qmp("query-status", None)?;
    assert_eq!(status["status"], "running", "{status}");
    // OVMF's boot manager logs every boot attempt on the serial console.
    vm.wait_console("BdsDxe", Duration::from_secs(15))?;
    assert!(!vm.console().is_empty());
    assert!(vm.events().is_empty(), "{:?}", vm.events());
    vm.powerdown()?;
    assert!(vm.elapsed() > Duration::ZERO);
    let (pid, dir) = (vm.pid(), vm.artifact_dir().to_path_buf());
    assert!(dir.join("serial.log").is_file() && dir.join("vars.fd").is_file());
    drop(vm);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} survived drop"
    );
    assert_eq!(dir.exists(), keep_artifacts(), "{}", dir.display());
    assert!(
        std::fs::read(&disk)?.iter().all(|&b| b == 0),
        "base disk modified"
    );
    std::fs::remove_file(&disk)?;
    Ok(())
}

#[test]
fn failures_report_context_and_keep_artifacts() -> anyhow::Result<()> {
    if !require_qemu(Arch::X86_64) {
        return Ok(());
    }
    let mut cfg = VmConfig::firmware_only("selftest-fail");
    cfg.memory_mib = 128;
    cfg.cpus = 1;
    let mut vm = Vm::start(cfg)?;
    let msg = expect_err(vm.wait_event("ready", Duration::from_millis(300)));
    assert!(
        msg.contains("no event ready within") && msg.contains("console lines"),
        "{msg}"
    );
    vm.qmp("quit", None)?;
    assert!(vm.wait_exit(Duration::from_secs(10))?.success());
    let err = expect_err(vm.wait_event("ready", Duration::from_secs(5)));
    assert!(err.contains("QEMU exited"), "{err}");
    let dir = vm.artifact_dir().to_path_buf();
    drop(vm);
    assert!(
        dir.join("qemu.log").is_file(),
        "failed run must keep {}",
        dir.display()
    );
    std::fs::remove_dir_all(&dir)?;

    let mut bad = VmConfig::firmware_only("selftest-badarg");
    bad.extra_args = vec!["-no-such-option".into()];
    let err = expect_err(Vm::start(bad));
    assert!(err.contains("QEMU exited at startup"), "{err}");
    if let Some(dir) = err.split(['(', ')']).nth(1) {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}
