//! A running QEMU ([`Vm`]): starts it in its own process group, polls the serial
//! log and event file, talks QMP, and kills the group on drop.
//!
//! Every wait has a timeout; every failure message carries the console tail and
//! all events, and keeps the artifact directory.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::accel::Accel;
use crate::artifacts::ArtifactDir;
use crate::config::{qemu_args, VmConfig, VmPaths};
use crate::events::{tail_lines, EventLog};
use crate::port::EventPort;
use crate::process::{kill_group, own_group};
use crate::qmp::Qmp;

const POLL: Duration = Duration::from_millis(50);
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
const CONSOLE_TAIL: usize = 40;
/// `sun_path` is 108 bytes; longer socket paths go to the temp dir.
const MAX_SOCKET_PATH: usize = 100;

/// Bytes read so far from the serial log and the event file.
#[derive(Debug, Default)]
struct Sources {
    log: EventLog,
    console: Vec<u8>,
    events_offset: u64,
}

type Parts = (Child, Qmp, EventPort, VmPaths, Accel, Instant);

/// A running QEMU. Dropping it SIGKILLs QEMU's process group.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    status: Option<ExitStatus>,
    qmp: Qmp,
    port: EventPort,
    paths: VmPaths,
    sources: RefCell<Sources>,
    started: Instant,
    accel: Accel,
    dir: ArtifactDir,
}

impl Vm {
    /// Creates the artifact dir, copies the firmware variable store into it,
    /// starts QEMU and connects QMP.
    pub fn start(cfg: VmConfig) -> Result<Vm> {
        let mut dir = ArtifactDir::create(&cfg.name)?;
        // A failed start keeps the dir: qemu.log says why.
        let started = Self::spawn(&cfg, &dir);
        match started {
            Ok(parts) => Ok(Vm::assemble(parts, dir)),
            Err(e) => {
                dir.mark_failed();
                Err(e.context(format!("start VM {} ({})", cfg.name, dir.path().display())))
            }
        }
    }

    fn spawn(cfg: &VmConfig, dir: &ArtifactDir) -> Result<Parts> {
        let qemu = cfg.arch.find_qemu().map_err(|e| anyhow!(e))?;
        let firmware = cfg.arch.firmware().map_err(|e| anyhow!(e))?;
        let vars = dir.path().join("vars.fd");
        fs::copy(&firmware.vars, &vars)
            .with_context(|| format!("copy {} to {}", firmware.vars.display(), vars.display()))?;
        let paths = VmPaths {
            firmware_code: firmware.code,
            firmware_vars: vars,
            serial: dir.path().join("serial.log"),
            events: dir.path().join("events.jsonl"),
            qmp: socket_path(dir.path(), "qmp"),
            events_socket: socket_path(dir.path(), "events"),
        };
        let accel = Accel::detect(cfg.arch);
        let args = qemu_args(cfg, accel, &paths);
        let cmdline = format!("{} {}\n", qemu.display(), args.join(" "));
        fs::write(dir.path().join("cmdline.txt"), cmdline).context("write cmdline.txt")?;
        let log_path = dir.path().join("qemu.log");
        let log = File::create(&log_path).context("create qemu.log")?;
        let log2 = log.try_clone().context("clone qemu.log handle")?;
        let mut cmd = Command::new(&qemu);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let started = Instant::now();
        let mut child = own_group(&mut cmd)
            .spawn()
            .with_context(|| format!("spawn {}", qemu.display()))?;
        let connected = connect_qmp(&mut child, &paths.qmp, &log_path).and_then(|qmp| {
            Ok((
                qmp,
                EventPort::connect(&paths.events_socket, &paths.events)?,
            ))
        });
        match connected {
            Ok((qmp, port)) => Ok((child, qmp, port, paths, accel, started)),
            Err(e) => {
                // Best effort: the start error below is what matters.
                let _ = kill_group(&mut child);
                Err(e)
            }
        }
    }

    fn assemble(parts: Parts, dir: ArtifactDir) -> Vm {
        let (child, qmp, port, paths, accel, started) = parts;
        Vm {
            child,
            status: None,
            qmp,
            port,
            paths,
            sources: RefCell::new(Sources::default()),
            started,
            accel,
            dir,
        }
    }

    /// Waits for the next event named `name` not yet returned by this method
    /// (an event that arrived before the call counts) and returns its JSON.
    ///
    /// Fails on timeout, if QEMU exits first, or if a `fatal` event has
    /// arrived (unless `name` is `"fatal"`); the error carries the last 40
    /// console lines and all events, and the artifact dir is kept.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            if name != "fatal" {
                let fatal = self.sources.borrow().log.fatal().cloned();
                if let Some(fatal) = fatal {
                    return Err(
                        self.fail(&format!("fatal event while waiting for {name}: {fatal}"))
                    );
                }
            }
            if let Some(event) = self.sources.borrow_mut().log.take_next(name) {
                return Ok(event);
            }
            if let Some(status) = self.try_exit() {
                self.poll();
                if let Some(event) = self.sources.borrow_mut().log.take_next(name) {
                    return Ok(event);
                }
                let why = format!("QEMU exited ({status}) before event {name}");
                return Err(self.fail(&why));
            }
            if Instant::now() >= deadline {
                let why = format!("no event {name} within {timeout:?}");
                return Err(self.fail(&why));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the serial console contains `needle` (escape sequences
    /// included). Same failure rules as [`Vm::wait_event`], minus `fatal`.
    pub fn wait_console(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.console().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.try_exit() {
                if self.console().contains(needle) {
                    return Ok(());
                }
                return Err(self.fail(&format!(
                    "QEMU exited ({status}) before console showed {needle:?}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(self.fail(&format!(
                    "console did not show {needle:?} within {timeout:?}"
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// All events so far, in arrival order, port and console copies merged.
    pub fn events(&self) -> Vec<Value> {
        self.poll();
        self.sources.borrow().log.events()
    }

    /// Lines that claimed to be events but did not parse, with their source.
    pub fn garbage(&self) -> Vec<String> {
        self.poll();
        self.sources.borrow().log.garbage().to_vec()
    }

    /// The raw serial log so far (lossy UTF-8, ANSI escapes included).
    pub fn console(&self) -> String {
        self.poll();
        String::from_utf8_lossy(&self.sources.borrow().console).into_owned()
    }

    /// Sends one request line (JSON) to init over the `kiln.events` port.
    pub fn send(&mut self, request: &Value) -> Result<()> {
        self.port.send(request)
    }

    /// Runs a QMP command, e.g. `vm.qmp("query-status", None)`.
    pub fn qmp(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.qmp.execute(command, arguments)
    }

    /// QEMU's own asynchronous QMP events seen so far (`POWERDOWN`, ...).
    pub fn qmp_events(&self) -> &[Value] {
        self.qmp.events()
    }

    /// Presses the ACPI power button (`system_powerdown`); the guest decides
    /// what happens. Follow with [`Vm::wait_exit`].
    pub fn powerdown(&mut self) -> Result<()> {
        self.qmp.execute("system_powerdown", None).map(drop)
    }

    /// Waits for QEMU to exit (with `-no-reboot`, guest poweroff and reboot
    /// both end QEMU). A timeout is a failure: the artifact dir is kept.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                self.poll();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.fail(&format!("QEMU still running after {timeout:?}")));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kills QEMU's process group now and reaps QEMU (what drop does).
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = kill_group(&mut self.child).context("kill QEMU process group")?;
        self.status = Some(status);
        self.poll();
        Ok(status)
    }

    /// Time since QEMU was spawned.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// QEMU's pid, which is also its process-group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The accelerator this VM runs under.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The artifact directory (serial.log, events.jsonl, qemu.log, ...).
    pub fn artifact_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Marks the run failed so the artifacts are kept, e.g. after a test's own
    /// check on the events fails without panicking.
    pub fn mark_failed(&mut self) {
        self.dir.mark_failed();
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            // An error here means the child is unwaitable; treat as running
            // and let the caller's deadline decide.
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Reads whatever QEMU appended to the serial log and event file.
    fn poll(&self) {
        let mut src = self.sources.borrow_mut();
        let console_offset = src.console.len() as u64;
        let fresh = read_from(&self.paths.serial, console_offset);
        src.log.feed_console(&fresh);
        src.console.extend_from_slice(&fresh);
        let fresh = read_from(&self.paths.events, src.events_offset);
        src.events_offset += fresh.len() as u64;
        src.log.feed_port(&fresh);
    }

    fn fail(&mut self, why: &str) -> anyhow::Error {
        self.dir.mark_failed();
        self.poll();
        let src = self.sources.borrow();
        let console = tail_lines(&String::from_utf8_lossy(&src.console), CONSOLE_TAIL);
        let mut msg = format!(
            "{why} (after {:.1?}, {:?}; artifacts in {})\n--- last {CONSOLE_TAIL} console lines ---\n{console}\n--- events ---\n",
            self.started.elapsed(),
            self.accel,
            self.dir.path().display()
        );
        for event in src.log.events() {
            msg.push_str(&format!("{event}\n"));
        }
        for line in src.log.garbage() {
            msg.push_str(&format!("garbage {line}\n"));
        }
        anyhow!(msg)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Err(e) = kill_group(&mut self.child) {
                eprintln!("kiln qemu-tests: kill QEMU {}: {e}", self.child.id());
            }
        }
        for socket in [&self.paths.qmp, &self.paths.events_socket] {
            if !socket.starts_with(self.dir.path()) {
                // Best effort: a stale socket in the temp dir is harmless.
                let _ = fs::remove_file(socket);
            }
        }
    }
}

/// Bytes of `path` from `offset` on; empty if the file does not exist yet.
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(mut file) = File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            // A short read just means we see the rest on the next poll.
            let _ = file.read_to_end(&mut buf);
        }
    }
    buf
}

fn socket_path(dir: &Path, name: &str) -> PathBuf {
    let inside = dir.join(format!("{name}.sock"));
    if inside.as_os_str().len() <= MAX_SOCKET_PATH {
        return inside;
    }
    let leaf = dir.file_name().map_or_else(
        || std::process::id().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    std::env::temp_dir().join(format!("kiln-{name}-{}-{leaf}.sock", std::process::id()))
}

/// Connects QMP, giving up early if QEMU exits (bad arguments, missing file).
fn connect_qmp(child: &mut Child, socket: &Path, log: &Path) -> Result<Qmp> {
    let deadline = Instant::now() + QMP_TIMEOUT;
    loop {
        match Qmp::connect(socket, Duration::ZERO) {
            Ok(qmp) => return Ok(qmp),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            let output = fs::read_to_string(log).unwrap_or_default();
            return Err(anyhow!(
                "QEMU exited at startup ({status}): {}",
                output.trim()
            ));
        }
        std::thread::sleep(POLL);
    }
}
