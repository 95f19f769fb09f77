//! A minimal QMP (QEMU Machine Protocol) client over a unix socket: greeting,
//! `qmp_capabilities`, then one synchronous command at a time.
//!
//! Asynchronous QMP events (`POWERDOWN`, `SHUTDOWN`, ...) that arrive while
//! waiting for a reply are kept in [`Qmp::events`]; they are QEMU's events, not
//! the guest's boot events.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// How long one command may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected, negotiated QMP session.
#[derive(Debug)]
pub struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    events: Vec<Value>,
}

impl Qmp {
    /// Connects to `socket`, retrying until QEMU has created it or `timeout`
    /// passes, and leaves capabilities negotiation mode.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(e) if start.elapsed() >= timeout => {
                    return Err(e).with_context(|| format!("connect QMP {}", socket.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .context("set QMP read timeout")?;
        let reader = BufReader::new(stream.try_clone().context("clone QMP socket")?);
        let mut qmp = Qmp {
            writer: stream,
            reader,
            events: Vec::new(),
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            bail!("unexpected QMP greeting {greeting}");
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` with optional `arguments` and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .with_context(|| format!("send QMP {command}"))?;
        loop {
            let message = self
                .read_message()
                .with_context(|| format!("read QMP reply to {command}"))?;
            if message.get("event").is_some() {
                self.events.push(message);
            } else if let Some(ret) = message.get("return") {
                return Ok(ret.clone());
            } else if let Some(err) = message.get("error") {
                bail!("QMP {command} failed: {err}");
            } else {
                bail!("unexpected QMP message {message}");
            }
        }
    }

    /// QMP events received so far while waiting for replies.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .context("read QMP socket")?;
        if n == 0 {
            bail!("QMP socket closed by QEMU");
        }
        serde_json::from_str(&line).with_context(|| format!("parse QMP message {line:?}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn negotiates_and_skips_events() {
        let dir = std::env::temp_dir().join(format!("kiln-qmp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("q.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            out.write_all(b"{\"QMP\":{\"version\":{}}}\n").unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.contains("qmp_capabilities"));
            out.write_all(b"{\"return\":{}}\n").unwrap();
            line.clear();
            reader.read_line(&mut line).unwrap();
            assert!(line.contains("system_powerdown"));
            out.write_all(b"{\"event\":\"POWERDOWN\"}\n{\"return\":{}}\n")
                .unwrap();
            line.clear();
            reader.read_line(&mut line).unwrap();
            out.write_all(b"{\"error\":{\"class\":\"GenericError\",\"desc\":\"no\"}}\n")
                .unwrap();
        });
        let mut qmp = Qmp::connect(&sock, Duration::from_secs(5)).unwrap();
        assert_eq!(qmp.execute("system_powerdown", None).unwrap(), json!({}));
        assert_eq!(qmp.events(), &[json!({"event":"POWERDOWN"})]);
        let err = qmp.execute("bogus", Some(json!({"a":1}))).unwrap_err();
        assert!(err.to_string().contains("GenericError"), "{err}");
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
