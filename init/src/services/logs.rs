//! Service output: one reader thread per spawned process drains its stdout+stderr pipe
//! line by line into `<service>.log` with size rotation, and (when verbose) forwards lines
//! as rate-limited `log` events through an `EventQueue` that PID 1's loop drains.
//!
//! Owns rotation, the rate limit and the reader threads. A reader never panics out and
//! never stops draining: a log file it cannot write only costs the lines, so a service
//! never blocks on a full pipe.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::event;
use crate::chain::{error_chain, panic_message};
use crate::events::Event;

/// Longer lines are split into pieces of this many bytes.
const MAX_LINE: u64 = 8192;
/// Queued events beyond this are dropped (oldest first).
const QUEUE_CAP: usize = 1024;

/// Errors writing a log file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("open log {0}")]
    Open(PathBuf, #[source] io::Error),
    #[error("rotate log {0}")]
    Rotate(PathBuf, #[source] io::Error),
    #[error("write log {0}")]
    Write(PathBuf, #[source] io::Error),
}

/// Size rotation: when a write would grow the file past `max_bytes`, it becomes `.1`
/// (`.1` becomes `.2`, …), keeping `keep` old files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            keep: 3,
        }
    }
}

/// Events from reader threads to PID 1's loop (bounded; the loop drains it).
#[derive(Debug, Clone, Default)]
pub struct EventQueue(Arc<Mutex<VecDeque<Event>>>);

impl EventQueue {
    pub fn push(&self, event: Event) {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= QUEUE_CAP {
            queue.pop_front();
        }
        queue.push_back(event);
    }

    /// Hands every queued event to `emit`, oldest first.
    pub fn drain(&self, emit: &mut dyn FnMut(&Event)) {
        let events: Vec<Event> = {
            let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            queue.drain(..).collect()
        };
        for e in &events {
            emit(e);
        }
    }
}

/// An append-only log file with size rotation; opened lazily, reopened after errors.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    pub fn new(path: PathBuf, rotation: Rotation) -> Self {
        Self {
            path,
            rotation,
            file: None,
            size: 0,
        }
    }

    /// Appends `bytes` (one line), rotating first if it would not fit.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let len = bytes.len() as u64;
        if self.file.is_none() {
            self.open()?;
        }
        if self.size > 0 && self.size + len > self.rotation.max_bytes {
            self.file = None;
            self.rotate()?;
            self.open()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if let Err(e) = file.write_all(bytes) {
            self.file = None;
            return Err(LogError::Write(self.path.clone(), e));
        }
        self.size += len;
        Ok(())
    }

    fn open(&mut self) -> Result<(), LogError> {
        let open = || -> io::Result<File> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
        };
        let file = open().map_err(|e| LogError::Open(self.path.clone(), e))?;
        self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&self) -> Result<(), LogError> {
        let err = |e| LogError::Rotate(self.path.clone(), e);
        if self.rotation.keep == 0 {
            return std::fs::remove_file(&self.path).map_err(err);
        }
        for n in (1..self.rotation.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1)).map_err(err)?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1)).map_err(err)
    }
}

/// `path.N`: `containerd.log.1`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Where one service's lines go: its log file, and when `forward` is set (verbose) also
/// `log` events, at most `forward` a second, the excess counted in one `log_dropped`
/// event. Write errors become one `log_error` event each time writing starts failing.
#[derive(Debug)]
pub struct LogSink {
    service: String,
    file: RotatingFile,
    queue: EventQueue,
    forward: Option<u32>,
    window_start: Duration,
    in_window: u32,
    dropped: u64,
    /// Set after a reported write error; cleared by the next good write.
    failing: bool,
    /// Bridge `@kiln-event` lines into events (services that report cluster steps).
    bridge: bool,
}

impl LogSink {
    pub fn new(service: &str, file: RotatingFile, queue: EventQueue, forward: Option<u32>) -> Self {
        Self {
            service: service.to_string(),
            file,
            queue,
            forward,
            window_start: Duration::ZERO,
            in_window: 0,
            dropped: 0,
            failing: false,
            bridge: false,
        }
    }

    /// Turns `@kiln-event {…}` lines into events (see `events::from_child`).
    pub fn bridging(mut self, on: bool) -> Self {
        self.bridge = on;
        self
    }

    /// Takes one line (with or without its newline) read at time `now`.
    pub fn line(&mut self, line: &[u8], now: Duration) {
        let result = if line.ends_with(b"\n") {
            self.file.write(line)
        } else {
            self.file.write(&[line, b"\n"].concat())
        };
        match result {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                self.queue
                    .push(event::log_error(&self.service, &error_chain(&e)));
            }
            Err(_) => {}
        }
        if self.bridge {
            let text = String::from_utf8_lossy(line);
            if let Some(e) = crate::events::from_child(&self.service, &text) {
                self.queue.push(e);
                return;
            }
        }
        self.forward(line, now);
    }

    fn forward(&mut self, line: &[u8], now: Duration) {
        let Some(per_second) = self.forward else {
            return;
        };
        let queue = &self.queue;
        if now.saturating_sub(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
            if self.dropped > 0 {
                queue.push(event::log_dropped(&self.service, self.dropped));
                self.dropped = 0;
            }
        }
        if self.in_window >= per_second {
            self.dropped += 1;
            return;
        }
        self.in_window += 1;
        let text = String::from_utf8_lossy(line);
        queue.push(event::log_line(
            &self.service,
            text.trim_end_matches(['\n', '\r']),
        ));
    }
}

/// Starts a thread that drains `reader` into the shared sink until EOF. On a panic it
/// reports a `log_error` and keeps draining into nowhere.
pub fn spawn_reader(
    name: &str,
    reader: impl Read + Send + 'static,
    sink: Arc<Mutex<LogSink>>,
    errors: EventQueue,
    clock: fn() -> Duration,
) -> io::Result<JoinHandle<()>> {
    let service = name.to_string();
    std::thread::Builder::new()
        .name(format!("log-{name}"))
        .spawn(move || {
            let mut reader = BufReader::new(reader);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                pump(&mut reader, &sink, clock);
            }));
            if let Err(payload) = outcome {
                errors.push(event::log_error(&service, &panic_message(payload.as_ref())));
                // A second panic ends the thread (caught here); the pipe then closes.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    io::copy(&mut reader, &mut io::sink())
                }));
            }
        })
}

fn pump(reader: &mut impl BufRead, sink: &Mutex<LogSink>, clock: fn() -> Duration) {
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => sink
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .line(&buf, clock()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
