//! The STATE partition: find KILN-STATE, grow it to the end of the disk (GPT with both
//! headers, then BLKPG so the kernel agrees), make or check its ext4, mount it on /var and
//! put the writable overlays of /etc, /root and /home on it. `fallback_tmpfs` gives a node
//! without STATE the same paths on tmpfs.
//!
//! Runs in stage 2 before any service and before the reaper loop (e2fsprogs are waited
//! for with std `Command`). Owns the `state_*` events. It does not decide what happens on
//! failure: the caller falls back and reports `state_unavailable`.

pub mod ext4;
pub mod gpt;
pub mod host;
pub mod layout;
pub mod locate;
pub mod mbr;
pub mod plan;

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::blockdev::{self, BlockError};
use crate::events::{Event, Value};
use crate::mounts::{self, MountError, MountSpec, Mounter};
use ext4::{Fsck, Superblock};
use host::{Disks, Kernel, Runner};
use locate::Located;

/// Errors preparing STATE; each names the step and the device or path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("look for partition {}", plan::STATE_PARTNAME)]
    Find(#[source] BlockError),
    #[error("no partition named {}", plan::STATE_PARTNAME)]
    NotFound,
    #[error("read {path}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unexpected {text:?} in {path}")]
    SysfsValue { path: PathBuf, text: String },
    #[error("open {0}")]
    Open(PathBuf, #[source] io::Error),
    #[error("partition table of {0}")]
    Gpt(PathBuf, #[source] gpt::GptError),
    #[error("MBR of {0}")]
    Mbr(PathBuf, #[source] io::Error),
    #[error("plan growing partition {1} of {0}")]
    Plan(PathBuf, u32, #[source] plan::PlanError),
    #[error("tell the kernel partition {number} of {disk} grew (BLKRRPART also failed: {rrpart})")]
    TellKernel {
        disk: PathBuf,
        number: u32,
        rrpart: String,
        #[source]
        source: io::Error,
    },
    #[error("kernel sees {part} as {got} bytes after the resize, expected {want}")]
    KernelStale { part: String, got: u64, want: u64 },
    #[error("read superblock of {0}")]
    Superblock(PathBuf, #[source] io::Error),
    #[error("run {0}")]
    Spawn(String, #[source] io::Error),
    #[error("{program} {device} failed (exit {code:?}): {tail}")]
    Tool {
        program: String,
        device: String,
        code: Option<i32>,
        tail: String,
    },
    #[error("unmount stale {0}")]
    Detach(PathBuf, #[source] io::Error),
    #[error("mount")]
    Mount(#[source] MountError),
    #[error("copy mode of {0} to {1}")]
    Mode(PathBuf, PathBuf, #[source] io::Error),
}

/// The host as seen by `prepare`: roots for sysfs, device nodes and the root filesystem
/// (`/sys`, `/dev`, `/` on a node), the narrow traits, and the event sink.
pub struct Env<'a> {
    pub sys_root: PathBuf,
    pub dev_root: PathBuf,
    /// Where the overlaid directories are checked for existence (`/`).
    pub root_dir: PathBuf,
    /// `kiln.mbr=`: the MBR disk whose partitions are named by number.
    pub mbr_disk: Option<u32>,
    pub disks: &'a mut dyn Disks,
    pub runner: &'a mut dyn Runner,
    pub kernel: &'a mut dyn Kernel,
    pub mounter: &'a mut dyn Mounter,
    pub emit: &'a mut dyn FnMut(&Event),
}

/// The real host; `env` lends it out for one call.
#[derive(Debug, Default)]
pub struct SysHost {
    /// `kiln.mbr=` from the kernel command line (see [`Env::mbr_disk`]).
    pub mbr_disk: Option<u32>,
    pub disks: host::SysDisks,
    pub runner: host::SysRunner,
    pub kernel: host::SysKernel,
    pub mounter: mounts::SysMounter,
}

impl SysHost {
    pub fn env<'a>(&'a mut self, emit: &'a mut dyn FnMut(&Event)) -> Env<'a> {
        Env {
            sys_root: "/sys".into(),
            dev_root: "/dev".into(),
            root_dir: "/".into(),
            mbr_disk: self.mbr_disk,
            disks: &mut self.disks,
            runner: &mut self.runner,
            kernel: &mut self.kernel,
            mounter: &mut self.mounter,
            emit,
        }
    }
}

/// What `prepare` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOutcome {
    pub device: String,
    /// Partition size.
    pub bytes: u64,
    pub formatted: bool,
    /// The partition or its filesystem grew this boot.
    pub grown: bool,
    /// `None` when freshly formatted.
    pub fsck: Option<Fsck>,
    /// Overlays mounted (`/etc`...) and skipped because the root lacks the directory.
    pub overlays: Vec<PathBuf>,
    pub skipped: Vec<PathBuf>,
}

fn event(name: &'static str, fields: Vec<(&'static str, Value)>) -> Event {
    Event { name, fields }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

/// `state_unavailable {reason}`: for the caller, once it fell back to tmpfs.
pub fn unavailable_event(reason: &str) -> Event {
    event("state_unavailable", vec![("reason", s(reason))])
}

/// Finds, grows, checks or formats, and mounts STATE; then the overlays.
pub fn prepare(env: &mut Env) -> Result<StateOutcome, StateError> {
    let found = blockdev::find_partition(
        &env.sys_root,
        &env.dev_root,
        env.mbr_disk,
        plan::STATE_PARTNAME,
    )
    .map_err(StateError::Find)?
    .ok_or(StateError::NotFound)?;
    let loc = locate::locate(&env.sys_root, &env.dev_root, &found.partition.devname)?;
    let device = loc.part_node.display().to_string();
    let (old_bytes, bytes) = grow(env, &loc)?;
    if bytes != old_bytes {
        let fields = vec![
            ("device", s(&device)),
            ("from_bytes", Value::Uint(old_bytes)),
            ("to_bytes", Value::Uint(bytes)),
        ];
        (env.emit)(&event("state_grown", fields));
    }
    let sb = read_superblock(env, &loc.part_node)?;
    let fsck = match sb {
        None => {
            tool(env, ext4::MKFS, ext4::mkfs_args(&device), &device)?;
            (env.emit)(&event("state_formatted", vec![("device", s(&device))]));
            None
        }
        Some(_) => Some(check(env, &device)?),
    };
    replace_mount(env, &layout::var_ext4(&device))?;
    let resize = sb.filter(|sb| ext4::needs_resize(sb, bytes));
    if resize.is_some() {
        // Online: offline resize2fs insists on a fresh `e2fsck -f`, online does not.
        tool(env, ext4::RESIZE2FS, ext4::resize_args(&device), &device)?;
    }
    let (overlays, skipped) = overlays(env, layout::STATE_OVERLAY_DIR, true)?;
    let outcome = StateOutcome {
        device,
        bytes,
        formatted: sb.is_none(),
        grown: bytes != old_bytes || resize.is_some(),
        fsck,
        overlays,
        skipped,
    };
    (env.emit)(&mounted_event(&outcome));
    Ok(outcome)
}

/// tmpfs on /var (unless something is mounted there) and overlays with upper layers on
/// /run, skipping targets that are already mounted. Returns the overlays mounted.
pub fn fallback_tmpfs(env: &mut Env) -> Result<Vec<PathBuf>, StateError> {
    mounts::apply(env.mounter, &[layout::var_tmpfs()]).map_err(StateError::Mount)?;
    Ok(overlays(env, layout::RUN_OVERLAY_DIR, false)?.0)
}

fn mounted_event(o: &StateOutcome) -> Event {
    let fields = vec![
        ("device", s(&o.device)),
        ("bytes", Value::Uint(o.bytes)),
        ("formatted", Value::Json(o.formatted.into())),
        ("grown", Value::Json(o.grown.into())),
    ];
    event("state_mounted", fields)
}

/// Grows the partition when the plan says so; returns its size before and after.
fn grow(env: &mut Env, loc: &Located) -> Result<(u64, u64), StateError> {
    let before = locate::device_bytes(&env.sys_root, &loc.part)?;
    let disk_path = &loc.disk_node;
    let mut disk = env
        .disks
        .open(disk_path, true)
        .map_err(|e| StateError::Open(disk_path.clone(), e))?;
    let gpt_err = |e| StateError::Gpt(disk_path.clone(), e);
    let mbr_err = |e| StateError::Mbr(disk_path.clone(), e);
    let plan_err = |e| StateError::Plan(disk_path.clone(), loc.number, e);
    let sector0 = mbr::read_sector0(disk.as_mut()).map_err(mbr_err)?;
    let p = if let Some(entries) = mbr::entries(&sector0) {
        let p =
            mbr::plan(loc.disk_bytes, loc.sector_size, &entries, loc.number).map_err(plan_err)?;
        mbr::apply(disk.as_mut(), &p).map_err(mbr_err)?;
        p
    } else {
        let mut table = gpt::read(disk.as_mut(), loc.sector_size).map_err(gpt_err)?;
        let facts = gpt::facts(&table);
        let p = plan::plan(loc.disk_bytes, &facts, loc.number).map_err(plan_err)?;
        if p.rewrite() {
            gpt::apply(disk.as_mut(), &mut table, &p).map_err(gpt_err)?;
        }
        p
    };
    drop(disk);
    if before == p.final_bytes {
        return Ok((before, before));
    }
    let start = p.start_lba * p.sector_size;
    if let Err(source) = env
        .kernel
        .resize_partition(disk_path, loc.number, start, p.final_bytes)
    {
        if let Err(rr) = env.kernel.reread_partitions(disk_path) {
            return Err(StateError::TellKernel {
                disk: disk_path.clone(),
                number: loc.number,
                rrpart: rr.to_string(),
                source,
            });
        }
    }
    let got = locate::device_bytes(&env.sys_root, &loc.part)?;
    if got != p.final_bytes {
        let part = loc.part.clone();
        return Err(StateError::KernelStale {
            part,
            got,
            want: p.final_bytes,
        });
    }
    Ok((before, got))
}

fn read_superblock(env: &mut Env, node: &Path) -> Result<Option<Superblock>, StateError> {
    let err = |e| StateError::Superblock(node.to_path_buf(), e);
    let mut dev = env.disks.open(node, false).map_err(err)?;
    let mut head = vec![0u8; ext4::SUPERBLOCK_END];
    dev.seek(SeekFrom::Start(0)).map_err(err)?;
    dev.read_exact(&mut head).map_err(err)?;
    Ok(ext4::superblock(&head))
}

/// Runs one e2fsprogs tool; any exit but 0 is an error.
fn tool(env: &mut Env, program: &str, args: Vec<String>, device: &str) -> Result<(), StateError> {
    let out = env
        .runner
        .run(program, &args)
        .map_err(|e| StateError::Spawn(program.to_string(), e))?;
    if out.code == Some(0) {
        return Ok(());
    }
    Err(StateError::Tool {
        program: program.to_string(),
        device: device.to_string(),
        code: out.code,
        tail: out.tail,
    })
}

/// `e2fsck -p`; fixed errors are reported, uncorrected ones are fatal.
fn check(env: &mut Env, device: &str) -> Result<Fsck, StateError> {
    let args = ext4::fsck_args(device);
    let out = env
        .runner
        .run(ext4::E2FSCK, &args)
        .map_err(|e| StateError::Spawn(ext4::E2FSCK.to_string(), e))?;
    let outcome = out
        .code
        .ok_or(None)
        .and_then(|c| ext4::fsck_outcome(c).map_err(Some));
    let fsck = outcome.map_err(|code| StateError::Tool {
        program: ext4::E2FSCK.to_string(),
        device: device.to_string(),
        code,
        tail: out.tail.clone(),
    })?;
    let result = match fsck {
        Fsck::Clean => return Ok(fsck),
        Fsck::Fixed => "fixed",
        Fsck::RebootAdvised => "reboot_advised",
    };
    let fields = vec![("device", s(device)), ("result", s(result))];
    (env.emit)(&event("state_fsck", fields));
    Ok(fsck)
}

/// Lazily unmounts whatever sits on `spec.target` (stage 1's tmpfs /var or tmpfs-upper
/// /etc: nothing holds them this early, and tmpfs contents are meant to be lost), then
/// mounts `spec`.
fn replace_mount(env: &mut Env, spec: &MountSpec) -> Result<(), StateError> {
    if let Some(text) = env
        .mounter
        .mountinfo()
        .map_err(mount_err(MountError::ReadMountinfo))?
    {
        let entries = crate::mountinfo::parse(&text)
            .map_err(|e| StateError::Mount(MountError::ParseMountinfo(e)))?;
        for _ in entries.iter().filter(|e| e.mount_point == spec.target) {
            let target = spec.target.clone();
            env.kernel
                .detach(&target)
                .map_err(|e| StateError::Detach(target, e))?;
        }
    }
    for dir in spec.pre_dirs.iter().chain(std::iter::once(&spec.target)) {
        env.mounter
            .mkdir_all(dir)
            .map_err(|e| StateError::Mount(MountError::Mkdir(dir.clone(), e)))?;
    }
    env.mounter.mount(spec).map_err(|source| {
        StateError::Mount(MountError::Mount {
            source_name: spec.source.clone(),
            target: spec.target.clone(),
            source,
        })
    })
}

fn mount_err(f: fn(io::Error) -> MountError) -> impl Fn(io::Error) -> StateError {
    move |e| StateError::Mount(f(e))
}

/// Binds the pristine root, then overlays each of `layout::OVERLAID` that the root has,
/// upper layers under `base`. `replace`: unmount what is already there (STATE), or keep it
/// (fallback). Returns (mounted, skipped) targets.
fn overlays(
    env: &mut Env,
    base: &str,
    replace: bool,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), StateError> {
    for dir in layout::VAR_DIRS {
        env.mounter
            .mkdir_all(Path::new(dir))
            .map_err(|e| StateError::Mount(MountError::Mkdir(dir.into(), e)))?;
    }
    let [bind, remount] = layout::rootfs_ro();
    let applied = mounts::apply(env.mounter, &[bind]).map_err(StateError::Mount)?;
    if matches!(applied.first(), Some(mounts::Applied::Mounted(_))) {
        env.mounter.mount(&remount).map_err(|source| {
            StateError::Mount(MountError::Mount {
                source_name: layout::ROOTFS_RO.into(),
                target: remount.target.clone(),
                source,
            })
        })?;
    }
    let (mut done, mut skipped) = (Vec::new(), Vec::new());
    for dir in layout::OVERLAID {
        let spec = layout::overlay(base, dir);
        if !env.root_dir.join(dir).is_dir() {
            skipped.push(spec.target);
            continue;
        }
        for d in &spec.pre_dirs {
            env.mounter
                .mkdir_all(d)
                .map_err(|e| StateError::Mount(MountError::Mkdir(d.clone(), e)))?;
        }
        let (upper, _) = layout::upper_work(base, dir);
        let lower = Path::new(layout::ROOTFS_RO).join(dir);
        env.kernel
            .copy_mode(&lower, &upper)
            .map_err(|e| StateError::Mode(lower, upper, e))?;
        if replace {
            replace_mount(env, &spec)?;
        } else {
            mounts::apply(env.mounter, std::slice::from_ref(&spec)).map_err(StateError::Mount)?;
        }
        done.push(spec.target);
    }
    Ok((done, skipped))
}

#[cfg(test)]
mod tests;
