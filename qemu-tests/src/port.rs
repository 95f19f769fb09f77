//! The host end of the `kiln.events` virtio-serial port: QEMU serves it on a unix
//! socket; a thread copies everything the guest writes into `events.jsonl` (read by
//! `Vm` like any file), and `send` writes request lines the other way.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected event port; the copy thread ends when QEMU closes the socket.
#[derive(Debug)]
pub struct EventPort {
    stream: UnixStream,
}

impl EventPort {
    /// Connects to `socket` (QEMU creates it at start-up) and starts copying into `file`.
    pub fn connect(socket: &Path, file: &Path) -> Result<EventPort> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).with_context(|| format!("connect {}", socket.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut reader = stream.try_clone().context("clone event port socket")?;
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .with_context(|| format!("open {}", file.display()))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        Ok(EventPort { stream })
    }

    /// Writes `request` as one JSON line.
    pub fn send(&mut self, request: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.stream
            .write_all(&line)
            .context("write a request to the event port")
    }
}
