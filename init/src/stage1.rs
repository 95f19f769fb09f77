//! Stage 1, PID 1 inside the initramfs: early mounts, storage modules, find and mount the
//! squashfs root of the booted slot (or download it: `kiln.root=http://…`), prepare its
//! writable paths, switch root and exec /sbin/init (stage 2). When the root or the NoCloud
//! seed come over HTTP, DHCP runs here and its leases are released before switching root.
//!
//! Owns the order of those steps and the `stage1`, `modules`, `module_failed` and
//! `root_mounted` events. The steps themselves live in their own modules.

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::blockdev::{self, BlockError};
use crate::cmdline::{self, CmdlineError, Root};
use crate::events;
use crate::modules::{self, ModulesError, SysLoader};
use crate::mounts::{self, MountError, MountSpec, SysMounter};
use crate::report::Reporter;
use crate::supervise;
use crate::switch_root::{self, SwitchRootError};

/// Present only in the initramfs: "I am stage 1".
pub const MARKER: &str = "/etc/kiln/initramfs";
/// Ordered list of .ko files to load, written by the imager.
pub const MODULES_LOAD: &str = "/etc/kiln/modules.load";
pub const NEW_ROOT: &str = "/newroot";
pub const ROOT_FSTYPE: &str = "squashfs";
pub const STAGE2_INIT: &str = "/sbin/init";
const ROOT_TIMEOUT: Duration = Duration::from_secs(30);
const ROOT_POLL: Duration = Duration::from_millis(50);
/// Mounts carried into the new root, in this order.
const CARRIED_MOUNTS: [&str; 4] = ["/proc", "/sys", "/dev", "/run"];

/// Errors of stage 1; each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Stage1Error {
    #[error("mount early filesystems")]
    EarlyMounts(#[source] MountError),
    #[error("read {0}")]
    Read(PathBuf, #[source] io::Error),
    #[error("parse kernel command line")]
    Cmdline(#[source] CmdlineError),
    #[error("parse {MODULES_LOAD}")]
    ModulesList(#[source] ModulesError),
    #[error("find root partition")]
    FindRoot(#[source] BlockError),
    #[error("network root")]
    NetRoot(#[source] crate::netboot::NetbootError),
    #[error("mount root filesystem")]
    MountRoot(#[source] MountError),
    #[error("set up writable paths")]
    Writable(#[source] MountError),
    #[error("move early filesystems into {NEW_ROOT}")]
    CarryMounts(#[source] MountError),
    #[error("switch root to {NEW_ROOT}")]
    SwitchRoot(#[source] SwitchRootError),
}

fn read(path: &str) -> Result<String, Stage1Error> {
    std::fs::read_to_string(path).map_err(|e| Stage1Error::Read(path.into(), e))
}

/// Runs stage 1; returns only on failure (success execs stage 2).
pub fn run(reporter: &mut Reporter) -> Result<Infallible, Stage1Error> {
    supervise::disable_ctrl_alt_del(reporter);
    let mut mounter = SysMounter;
    let early = mounts::apply(&mut mounter, &mounts::early_mounts());
    let early = early.map_err(Stage1Error::EarlyMounts)?;
    let cmdline_text = read("/proc/cmdline")?;
    let args = cmdline::parse(&cmdline_text).map_err(Stage1Error::Cmdline)?;
    reporter.set_debug(args.debug);
    early.iter().for_each(|a| reporter.debug(&a.to_string()));
    let kernel = read("/proc/sys/kernel/osrelease")?;
    reporter.info(&format!(
        "stage 1, kernel {}, slot {}",
        kernel.trim(),
        args.slot_name()
    ));
    reporter.event(&events::stage1(kernel.trim(), args.slot_name()));
    let root = args.root().map_err(Stage1Error::Cmdline)?;
    let seed_url = crate::netboot::http_seed(&cmdline_text);

    load_modules(reporter)?;
    reporter.open_port();

    let net_root = matches!(root, Root::Http { .. });
    let mut dhcp = if net_root || seed_url.is_some() {
        crate::stage2::default_network(reporter)
    } else {
        None
    };
    let (device, name) = match root {
        Root::Partition(partname) => (
            mount_root(reporter, &mut mounter, args.mbr_disk, partname)?,
            partname,
        ),
        Root::Http { url, sha256 } => {
            let attached =
                crate::netboot::fetch_root(reporter, url, sha256).map_err(Stage1Error::NetRoot)?;
            let device = attached.device.display().to_string();
            mount_device(&mut mounter, &device)?;
            // Mounted: the mount holds the device now, closing ours is safe.
            drop(attached);
            (device, url)
        }
    };
    reporter.event(&events::root_mounted(&device, name, ROOT_FSTYPE));
    if let Some(url) = &seed_url {
        crate::netboot::fetch_seed(reporter, url, Path::new(crate::netboot::SEED_DIR));
    }
    if let Some(keeper) = dhcp.as_mut() {
        reporter.event(&events::network_released(keeper.release_all()));
    }

    let new_root = Path::new(NEW_ROOT);
    let writable = mounts::apply(&mut mounter, &mounts::writable_mounts(new_root));
    let writable = writable.map_err(Stage1Error::Writable)?;
    writable.iter().for_each(|a| reporter.debug(&a.to_string()));
    let carried: Vec<MountSpec> = CARRIED_MOUNTS
        .iter()
        .map(|m| mounts::move_spec(m, new_root.join(m.trim_start_matches('/'))))
        .collect();
    mounts::apply(&mut mounter, &carried).map_err(Stage1Error::CarryMounts)?;

    reporter.info(&format!("switching root to {NEW_ROOT}, exec {STAGE2_INIT}"));
    let never = switch_root::switch_root(new_root, Path::new(STAGE2_INIT))
        .map_err(Stage1Error::SwitchRoot)?;
    match never {}
}

/// Loads modules.load; a missing list is a warning (everything may be built in).
fn load_modules(reporter: &mut Reporter) -> Result<(), Stage1Error> {
    let text = match std::fs::read_to_string(MODULES_LOAD) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            reporter.info(&format!(
                "warning: {MODULES_LOAD} missing, loading no modules"
            ));
            String::new()
        }
        Err(e) => return Err(Stage1Error::Read(MODULES_LOAD.into(), e)),
    };
    let paths = modules::parse(&text).map_err(Stage1Error::ModulesList)?;
    let report = modules::load_all(&mut SysLoader, &paths);
    for failure in &report.failed {
        let msg = format!("warning: module {}: {}", failure.module, failure.error);
        reporter.info(&msg);
        reporter.event(&events::module_failed(&failure.module, &failure.error));
    }
    let (loaded, failed) = (report.loaded, report.failed.len());
    reporter.info(&format!("modules: {loaded} loaded, {failed} failed"));
    reporter.event(&events::modules(loaded, failed));
    Ok(())
}

/// Waits for the partition named `partname` (on an MBR disk: see `blockdev::MBR_NAMES`)
/// and mounts it read-only on /newroot; returns the device node path.
fn mount_root(
    reporter: &mut Reporter,
    mounter: &mut SysMounter,
    mbr_disk: Option<u32>,
    partname: &str,
) -> Result<String, Stage1Error> {
    reporter.info(&format!("waiting for partition {partname}"));
    let found = blockdev::wait_for_partition(
        Path::new("/sys"),
        Path::new("/dev"),
        mbr_disk,
        partname,
        ROOT_TIMEOUT,
        ROOT_POLL,
    )
    .map_err(Stage1Error::FindRoot)?;
    if found.matches > 1 {
        let msg = format!(
            "warning: {} partitions named {partname}, using {}",
            found.matches, found.partition.devname
        );
        reporter.info(&msg);
    }
    let device = found.partition.node.display().to_string();
    mount_device(mounter, &device)?;
    reporter.info(&format!("mounted root {device} ({partname})"));
    Ok(device)
}

/// Mounts the squashfs on `device` read-only on /newroot.
fn mount_device(mounter: &mut SysMounter, device: &str) -> Result<(), Stage1Error> {
    let spec = MountSpec::new(device, NEW_ROOT.into(), ROOT_FSTYPE, libc::MS_RDONLY, "");
    mounts::apply(mounter, &[spec]).map_err(Stage1Error::MountRoot)?;
    Ok(())
}
