//! Applying a validated `NodeConfig` to the node: the cloud-config keys with real effect
//! (hostname, fqdn, manage_etc_hosts, users, ssh_authorized_keys, write_files, bootcmd,
//! runcmd, `#!` scripts, timezone, ntp), per boot or once per instance as cloud-init does.
//!
//! Everything works under a `root` path ("/" in production, a temp dir in tests) and
//! runs commands through a `Runner`. Order, as cloud-init's stages:
//! 1. per boot (`apply_per_boot`): hostname, /etc/hostname, /etc/hosts, timezone, ntp,
//!    bootcmd;
//! 2. per instance (`apply_per_instance`, skipped when the instance semaphore exists):
//!    write_files, users and keys, deferred write_files (`apply_deferred`), runcmd,
//!    per-instance scripts, then the semaphore;
//! 3. final (`apply_final`): per-boot scripts and once-ever scripts.
//!
//! A failing command is reported (`command_failed`) and never fatal; file and account
//! errors are, and leave the semaphore unwritten so the next boot retries. This module
//! does not discover or persist the config, mount anything or reap children (see
//! `runner` for the one constraint that follows).

mod accounts;
mod files;
mod fsx;
mod runner;
mod system;
mod users;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_run;

use std::io;
use std::path::{Path, PathBuf};

pub use runner::{describe, Phase, Runner, SysRunner, PATH};
pub use system::{render_ntp, set_hostname, NTP_CONF};
pub use users::DEFAULT_SHELL;

use crate::config::{Command, Frequency, NodeConfig, Script};
use crate::events::{Event, Value};

/// Per-instance semaphores live in `<STATE>/instance/<instance-id>/done`.
pub const INSTANCE_DIR: &str = "/var/lib/kiln/instance";
/// Scripts are written here (0700) before they run.
pub const SCRIPTS_DIR: &str = "/var/lib/kiln/scripts";
/// Once-ever scripts leave `<ONCE_DIR>/<name>` behind.
pub const ONCE_DIR: &str = "/var/lib/kiln/once";
/// Where `SysRunner` should log command output (relative to the root).
pub const LOG: &str = "/var/log/kiln/cloud-config.log";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("read {}", .0.display())]
    Read(PathBuf, #[source] io::Error),
    #[error("write {}", .0.display())]
    Write(PathBuf, #[source] io::Error),
    #[error("create directory {}", .0.display())]
    Dir(PathBuf, #[source] io::Error),
    #[error("set hostname via {}", .0.display())]
    Hostname(PathBuf, #[source] io::Error),
    #[error("no free uid/gid between 1000 and 59999")]
    NoFreeId,
    #[error("user {0} missing from /etc/passwd after it was written")]
    UnknownUser(String),
    #[error("shell {0:?} cannot go into /etc/passwd")]
    BadShell(String),
    #[error("write_files {path}: unknown user or group {name}")]
    UnknownOwner { path: String, name: String },
}

/// What one `apply` did, summed over its phases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub instance_id: String,
    /// False when the instance semaphore said per-instance work was already done.
    pub per_instance: bool,
    pub users: usize,
    pub files: usize,
    /// Commands and scripts run (failed ones included).
    pub commands: usize,
    pub failed: usize,
}

impl Applied {
    fn add(&mut self, other: Applied) {
        self.per_instance |= other.per_instance;
        self.users += other.users;
        self.files += other.files;
        self.commands += other.commands;
        self.failed += other.failed;
    }
}

/// All phases in order, then `config_applied {instance_id, users, files, commands}` (every
/// boot; zero users/files when per-instance work was skipped). `unsupported {key}` first,
/// once per entry of `cfg.unsupported`.
pub fn apply(
    cfg: &NodeConfig,
    root: &Path,
    runner: &mut dyn Runner,
    emit: &mut dyn FnMut(&Event),
) -> Result<Applied, ApplyError> {
    for key in &cfg.unsupported {
        emit(&unsupported(key));
    }
    let mut done = apply_per_boot(cfg, root, runner, emit)?;
    done.add(apply_per_instance(cfg, root, runner, emit)?);
    done.add(apply_final(cfg, root, runner, emit)?);
    emit(&event(
        "config_applied",
        vec![
            ("instance_id", Value::Str(cfg.instance_id.clone())),
            ("users", Value::Uint(done.users as u64)),
            ("files", Value::Uint(done.files as u64)),
            ("commands", Value::Uint(done.commands as u64)),
        ],
    ));
    Ok(done)
}

/// Every boot: hostname (+ /etc/hosts), timezone, ntp, bootcmd. A zone missing from the
/// image, or ntp without a time daemon, is `unsupported {key}` (`timezone`, `ntp`).
pub fn apply_per_boot(
    cfg: &NodeConfig,
    root: &Path,
    runner: &mut dyn Runner,
    emit: &mut dyn FnMut(&Event),
) -> Result<Applied, ApplyError> {
    system::hostname(cfg, root)?;
    if let Some(tz) = &cfg.timezone {
        if !system::timezone(tz, root)? {
            emit(&unsupported("timezone"));
        }
    }
    if let Some(ntp) = &cfg.ntp {
        if !system::ntp(ntp, root)? {
            emit(&unsupported("ntp"));
        }
    }
    let mut done = applied(cfg);
    run_all(Phase::Bootcmd, &cfg.bootcmd, runner, emit, &mut done);
    Ok(done)
}

/// Once per instance-id: write_files, users and keys, deferred write_files, runcmd,
/// per-instance scripts, then the semaphore. Emits `config_skipped {instance_id}` and does
/// nothing when the semaphore exists.
pub fn apply_per_instance(
    cfg: &NodeConfig,
    root: &Path,
    runner: &mut dyn Runner,
    emit: &mut dyn FnMut(&Event),
) -> Result<Applied, ApplyError> {
    let mut done = applied(cfg);
    let sem = semaphore(root, &cfg.instance_id);
    if sem.exists() {
        emit(&event(
            "config_skipped",
            vec![("instance_id", Value::Str(cfg.instance_id.clone()))],
        ));
        return Ok(done);
    }
    done.per_instance = true;
    done.files = files::apply(&cfg.write_files, root, false)?;
    done.users = users::apply(cfg, root)?;
    done.files += apply_deferred(cfg, root)?;
    run_all(Phase::Runcmd, &cfg.runcmd, runner, emit, &mut done);
    run_scripts(cfg, root, Frequency::PerInstance, runner, emit, &mut done)?;
    let text = format!("{}\n", cfg.instance_id);
    fsx::write_atomic(&sem, text.as_bytes(), 0o644, fsx::Ids::default())
        .map_err(|e| ApplyError::Write(sem, e))?;
    Ok(done)
}

/// write_files with `defer: true`: after users exist, so owners may be new users.
pub fn apply_deferred(cfg: &NodeConfig, root: &Path) -> Result<usize, ApplyError> {
    files::apply(&cfg.write_files, root, true)
}

/// Last: per-boot scripts, then once-ever scripts (marked in ONCE_DIR after they ran,
/// whatever their exit code, like cloud-init's per-once semaphore).
pub fn apply_final(
    cfg: &NodeConfig,
    root: &Path,
    runner: &mut dyn Runner,
    emit: &mut dyn FnMut(&Event),
) -> Result<Applied, ApplyError> {
    let mut done = applied(cfg);
    run_scripts(cfg, root, Frequency::PerBoot, runner, emit, &mut done)?;
    run_scripts(cfg, root, Frequency::Once, runner, emit, &mut done)?;
    Ok(done)
}

/// `<root>/var/lib/kiln/instance/<id>/done`; the id is made safe as a file name.
pub fn semaphore(root: &Path, instance_id: &str) -> PathBuf {
    let mut safe: String = instance_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        safe.insert(0, '_');
    }
    fsx::under(root, INSTANCE_DIR).join(safe).join("done")
}

fn applied(cfg: &NodeConfig) -> Applied {
    Applied {
        instance_id: cfg.instance_id.clone(),
        ..Applied::default()
    }
}

fn run_scripts(
    cfg: &NodeConfig,
    root: &Path,
    freq: Frequency,
    runner: &mut dyn Runner,
    emit: &mut dyn FnMut(&Event),
    done: &mut Applied,
) -> Result<(), ApplyError> {
    for s in cfg.scripts.iter().filter(|s| s.frequency == freq) {
        let mark = fsx::under(root, ONCE_DIR).join(&s.name);
        if freq == Frequency::Once && mark.exists() {
            continue;
        }
        let path = write_script(root, s)?;
        let argv = vec![path.to_string_lossy().into_owned()];
        run_all(Phase::Script, &[Command::Argv(argv)], runner, emit, done);
        if freq == Frequency::Once {
            fsx::write_atomic(&mark, b"", 0o644, fsx::Ids::default())
                .map_err(|e| ApplyError::Write(mark, e))?;
        }
    }
    Ok(())
}

/// `<root>/var/lib/kiln/scripts/<name>`, 0700. The name has no '/' (config validates).
fn write_script(root: &Path, s: &Script) -> Result<PathBuf, ApplyError> {
    let path = fsx::under(root, SCRIPTS_DIR).join(&s.name);
    fsx::write_atomic(&path, &s.content, 0o700, fsx::Ids::default())
        .map_err(|e| ApplyError::Write(path.clone(), e))?;
    Ok(path)
}

/// Runs each command; failures become `command_failed {phase, command, code}` (code 127
/// plus an `error` field when it could not start) and the list goes on.
fn run_all(
    phase: Phase,
    cmds: &[Command],
    runner: &mut dyn Runner,
    emit: &mut dyn FnMut(&Event),
    done: &mut Applied,
) {
    for cmd in cmds {
        done.commands += 1;
        let (code, error) = match runner.run(phase, cmd) {
            Ok(0) => continue,
            Ok(code) => (code, None),
            Err(e) => (127, Some(e.to_string())),
        };
        done.failed += 1;
        let mut fields = vec![
            ("phase", Value::Str(phase.as_str().into())),
            ("command", Value::Str(describe(cmd))),
            ("code", Value::Json(code.into())),
        ];
        if let Some(e) = error {
            fields.push(("error", Value::Str(e)));
        }
        emit(&event("command_failed", fields));
    }
}

fn unsupported(key: &str) -> Event {
    event("unsupported", vec![("key", Value::Str(key.to_string()))])
}

fn event(name: &'static str, fields: Vec<(&'static str, Value)>) -> Event {
    Event { name, fields }
}
