//! Running bootcmd, runcmd and scripts: the narrow `Runner` trait and `SysRunner`, the
//! real one.
//!
//! **`SysRunner` must only be used before PID 1's reaper loop starts.** It waits for each
//! child with `Child::wait` (waitpid on that pid). That is safe during stage 2 boot, where
//! PID 1 is single-threaded about children and nobody calls `waitpid(-1)`; once
//! `supervise::serve` reaps globally it would steal the exit status (ECHILD). Orphans a
//! command leaves behind (`cmd &`) are reparented to PID 1 and reaped once serve starts.
//! Commands have no timeout, as in cloud-init: a hanging bootcmd holds up boot.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};

use super::fsx;
use crate::config::Command;

/// The environment of every command, besides HOME.
pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Which list a command comes from (the `phase` of `command_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Bootcmd,
    Runcmd,
    Script,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Bootcmd => "bootcmd",
            Phase::Runcmd => "runcmd",
            Phase::Script => "script",
        }
    }
}

/// Runs one command to completion.
pub trait Runner {
    /// The exit code (128 + signal number when killed by a signal); `Err` when it could
    /// not be started at all.
    fn run(&mut self, phase: Phase, command: &Command) -> io::Result<i32>;
}

/// One line for events and logs: the shell string, or the argv joined by spaces.
pub fn describe(command: &Command) -> String {
    match command {
        Command::Shell(s) => s.clone(),
        Command::Argv(v) => v.join(" "),
    }
}

/// Real commands: `/bin/sh -c` for strings, argv otherwise; env PATH and HOME=/root
/// only, cwd /, stdin /dev/null, stdout and stderr appended to `log`, empty signal mask.
#[derive(Debug, Clone)]
pub struct SysRunner {
    log: PathBuf,
}

impl SysRunner {
    /// `log`: usually `<root>/var/log/kiln/cloud-config.log` (parents are created).
    pub fn new(log: PathBuf) -> Self {
        Self { log }
    }

    fn open_log(&self) -> io::Result<File> {
        fsx::parents(&self.log)?;
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.log)
    }
}

impl Runner for SysRunner {
    fn run(&mut self, phase: Phase, command: &Command) -> io::Result<i32> {
        let mut log = self.open_log()?;
        writeln!(log, "== {}: {}", phase.as_str(), describe(command))?;
        let mut cmd = match command {
            Command::Shell(s) => {
                let mut c = StdCommand::new("/bin/sh");
                c.arg("-c").arg(s);
                c
            }
            Command::Argv(v) => {
                let (program, args) = v
                    .split_first()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                let mut c = StdCommand::new(program);
                c.args(args);
                c
            }
        };
        cmd.env_clear()
            .env("PATH", PATH)
            .env("HOME", "/root")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log.try_clone()?));
        reset_signal_mask(&mut cmd);
        let status = cmd.spawn()?.wait()?;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1);
        writeln!(log, "== exit {code}")?;
        Ok(code)
    }
}

/// std's Command inherits the signal mask and stage 2 blocks SIGCHLD, SIGTERM, SIGINT and
/// SIGUSR2 for its signalfd; a command must start with none blocked (same reasoning as
/// services::process).
#[allow(unsafe_code)]
fn reset_signal_mask(cmd: &mut StdCommand) {
    // SAFETY: the hook runs between fork and exec and only makes async-signal-safe calls
    // (sigemptyset, sigprocmask) on stack data; it neither allocates nor locks.
    unsafe {
        cmd.pre_exec(crate::services::process::empty_signal_mask);
    }
}
