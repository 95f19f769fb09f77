//! Config discovery: which source the node's config comes from, as ordered providers
//! (first found wins): kernel command line → volume labelled `KILN` → NoCloud `cidata` →
//! ConfigDrive `config-2` → the copy persisted on STATE → defaults.
//!
//! Each provider returns `Ok(None)` for "nothing here", `Ok(Some)` for "found" and `Err`
//! for "something is here and it is broken" (which stops discovery: a broken seed must
//! not silently fall back to an older config). Providers only read bytes into
//! `config::Sources`; parsing and validation stay in `config::assemble`.
//!
//! The host (sysfs, /dev, mount(2), files, time) is reached only through the traits in
//! `host`; `System` bundles the real ones. This module never applies any config.

mod cmdline;
mod host;
mod layout;
mod probe;
mod state;
mod volume;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{ConfigError, Sources};

pub use cmdline::{ds as cmdline_ds, seed, Cmdline, Seed};
pub use host::{
    BlockDevices, Clock, Device, Files, HostFiles, MountedVolumes, SysBlockDevices, SystemClock,
    Volumes, MAX_FILE,
};
pub use layout::{Layout, CONFIG_DRIVE, KILN, NOCLOUD};
pub use probe::{probe, Fs, FsKind, ReadAt};
pub use state::{persist, State, STATE_DIR};
pub use volume::LabelProvider;

/// Errors of discovery; `Broken` is the usual "found, but unusable" case.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("decode kiln.config from the kernel command line")]
    Inline(#[source] ConfigError),
    #[error("list block devices")]
    ListDevices(#[source] io::Error),
    #[error("create mount point {0}")]
    Mkdir(PathBuf, #[source] io::Error),
    #[error("mount {device} read-only on {target}")]
    Mount {
        device: String,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmount {0}")]
    Unmount(PathBuf, #[source] io::Error),
    #[error("read {0}")]
    Read(PathBuf, #[source] io::Error),
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("config source {volume} is unusable: {reason}")]
    Broken { volume: String, reason: String },
    #[error("persist config in {0}")]
    Persist(PathBuf, #[source] io::Error),
}

/// What a provider found: the raw files, where they came from (`cmdline`,
/// `nocloud:/dev/sr0`, `state`, `defaults`, …; pass it to `config::assemble`), and notes
/// worth logging (ignored seeds, duplicate volumes, how long discovery waited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub sources: Sources,
    pub origin: String,
    pub notes: Vec<String>,
}

impl Found {
    pub fn new(sources: Sources, origin: impl Into<String>) -> Self {
        Found {
            sources,
            origin: origin.into(),
            notes: Vec::new(),
        }
    }
}

/// One config source. `notes` collects remarks that do not change the outcome.
pub trait Provider {
    fn name(&self) -> &'static str;
    fn load(&self, env: &Env, notes: &mut Vec<String>) -> Result<Option<Found>, DiscoveryError>;
}

/// How long to wait for late block devices (USB sticks, CD-ROMs) when no volume is
/// there yet: `total` when STATE has no copy (first boot), `with_state_copy` otherwise,
/// re-scanning every `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    pub total: Duration,
    pub with_state_copy: Duration,
    pub step: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            total: Duration::from_secs(2),
            with_state_copy: Duration::ZERO,
            step: Duration::from_millis(100),
        }
    }
}

/// Everything discovery reads, passed in so tests use fakes.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// Contents of /proc/cmdline.
    pub cmdline: &'a str,
    pub devices: &'a dyn BlockDevices,
    pub volumes: &'a dyn Volumes,
    /// Reads files of `ds=nocloud;s=file://` seeds and of `state_dir`.
    pub files: &'a dyn Files,
    /// Where `persist` keeps the config (normally `STATE_DIR`, on the STATE partition).
    pub state_dir: &'a Path,
    /// Where stage 1 left a fetched `ds=nocloud-net` seed (`crate::netboot::SEED_DIR`).
    pub net_seed_dir: &'a Path,
    pub clock: &'a dyn Clock,
    pub wait: WaitPolicy,
}

/// The real host: sysfs and /dev, seed mounts under /run/kiln, STATE at `STATE_DIR`.
#[derive(Debug)]
pub struct System {
    pub devices: SysBlockDevices,
    pub volumes: MountedVolumes,
    pub files: HostFiles,
    pub clock: SystemClock,
    pub state_dir: PathBuf,
    pub net_seed_dir: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System {
            devices: SysBlockDevices::new("/sys", "/dev"),
            volumes: MountedVolumes::new("/dev", "/run/kiln"),
            files: HostFiles { max: MAX_FILE },
            clock: SystemClock::default(),
            state_dir: PathBuf::from(STATE_DIR),
            net_seed_dir: PathBuf::from(crate::netboot::SEED_DIR),
        }
    }
}

impl System {
    pub fn env<'a>(&'a self, cmdline: &'a str, wait: WaitPolicy) -> Env<'a> {
        Env {
            cmdline,
            devices: &self.devices,
            volumes: &self.volumes,
            files: &self.files,
            state_dir: &self.state_dir,
            net_seed_dir: &self.net_seed_dir,
            clock: &self.clock,
            wait,
        }
    }
}

/// Volume providers in precedence order.
pub const VOLUME_PROVIDERS: [LabelProvider; 3] = [
    LabelProvider(&KILN),
    LabelProvider(&NOCLOUD),
    LabelProvider(&CONFIG_DRIVE),
];

/// Runs the providers in order; the first that finds something wins, the first that is
/// broken stops discovery. Block devices are re-scanned (one listing per round shared by
/// the volume providers) until a volume appears or the wait policy runs out. A broken
/// STATE copy only matters when no higher source exists.
pub fn discover(env: &Env) -> Result<Found, DiscoveryError> {
    let mut notes = Vec::new();
    if let Some(found) = Cmdline.load(env, &mut notes)? {
        return Ok(with_notes(found, notes));
    }
    let state = State.load(env, &mut notes);
    let wait = match state {
        Ok(Some(_)) => env.wait.with_state_copy,
        _ => env.wait.total,
    };
    let start = env.clock.now();
    loop {
        let snapshot = host::Snapshot::take(env.devices)?;
        let round = Env {
            devices: &snapshot,
            ..*env
        };
        for provider in &VOLUME_PROVIDERS {
            if let Some(found) = provider.load(&round, &mut notes)? {
                return Ok(with_notes(found, notes));
            }
        }
        let waited = env.clock.now().saturating_sub(start);
        if waited >= wait {
            if !wait.is_zero() {
                notes.push(format!("no seed volume after {} ms", waited.as_millis()));
            }
            break;
        }
        env.clock.sleep(env.wait.step);
    }
    match state? {
        Some(found) => Ok(with_notes(found, notes)),
        None => Ok(with_notes(
            Found::new(Sources::default(), "defaults"),
            notes,
        )),
    }
}

fn with_notes(mut found: Found, mut notes: Vec<String>) -> Found {
    notes.append(&mut found.notes);
    found.notes = notes;
    found
}
