//! Where PID 1's output goes: human progress lines on the console (`kiln-init: ...`) and
//! events mirrored on the console (`KILN-EVENT <json>`) and written to the virtio-serial
//! port named `kiln.events` when it exists.
//!
//! Owns port discovery (/sys/class/virtio-ports/*/name) and writing. Writes never block
//! PID 1 for long and never fail the boot: a port that stays unwritable is given up.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::events::{self, Event};

/// Name of the virtio-serial port events go to (QEMU `virtserialport,name=kiln.events`).
pub const PORT_NAME: &str = "kiln.events";

/// How long one event may wait for a full or unconnected port before it is given up.
const PORT_WRITE_BUDGET: Duration = Duration::from_secs(2);

/// The device node of the virtio port called `name`, found under `sys_root`.
pub fn find_port(sys_root: &Path, dev_root: &Path, name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(sys_root.join("class/virtio-ports")).ok()?;
    let mut ports: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("name")).is_ok_and(|n| n.trim_end() == name)
        })
        .map(|e| dev_root.join(e.file_name()))
        .collect();
    ports.sort();
    ports.into_iter().next()
}

enum Port {
    /// Not found yet: look again on the next event.
    Missing,
    Open(File),
    /// Stayed unwritable: console only from now on.
    GivenUp,
}

/// Console + event port writer.
pub struct Reporter {
    console: Box<dyn Write>,
    port: Port,
    sys_root: PathBuf,
    dev_root: PathBuf,
    clock: fn() -> Duration,
    debug: bool,
    /// Bytes of an unfinished request line read from the port.
    pending: Vec<u8>,
    /// After a hang-up (host not connected) the port is not polled again until then.
    quiet_until: Option<Instant>,
}

/// Longest request line accepted; longer ones are dropped whole.
const MAX_REQUEST: usize = 4096;
/// How long a hung-up port is left alone before reads are tried again.
const HUP_BACKOFF: Duration = Duration::from_secs(1);

impl Reporter {
    /// The real reporter: stdout (/dev/console for PID 1), /sys, /dev, CLOCK_BOOTTIME.
    pub fn console() -> Self {
        Self::new(
            Box::new(io::stdout()),
            "/sys".into(),
            "/dev".into(),
            crate::sys::boottime,
        )
    }

    pub fn new(
        console: Box<dyn Write>,
        sys_root: PathBuf,
        dev_root: PathBuf,
        clock: fn() -> Duration,
    ) -> Self {
        Self {
            console,
            port: Port::Missing,
            sys_root,
            dev_root,
            clock,
            debug: false,
            pending: Vec::new(),
            quiet_until: None,
        }
    }

    pub fn is_debug(&self) -> bool {
        self.debug
    }

    pub fn set_debug(&mut self, debug: bool) {
        self.debug = debug;
    }

    /// A `kiln-init: <msg>` line on the console.
    pub fn info(&mut self, msg: &str) {
        let _ = writeln!(self.console, "kiln-init: {msg}");
        let _ = self.console.flush();
    }

    /// Like `info`, only with `kiln.debug`.
    pub fn debug(&mut self, msg: &str) {
        if self.debug {
            self.info(msg);
        }
    }

    /// Looks for the port now if it is not open yet (also done before every event).
    pub fn open_port(&mut self) {
        if !matches!(self.port, Port::Missing) {
            return;
        }
        let Some(path) = find_port(&self.sys_root, &self.dev_root, PORT_NAME) else {
            return;
        };
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path);
        match opened {
            Ok(file) => {
                self.port = Port::Open(file);
                self.debug(&format!("event port {PORT_NAME} is {}", path.display()));
            }
            Err(e) => self.debug(&format!("open event port {}: {e}", path.display())),
        }
    }

    /// Mirrors the event on the console and writes it to the port if there is one.
    pub fn event(&mut self, event: &Event) {
        let line = events::encode(event, (self.clock)());
        let _ = writeln!(self.console, "KILN-EVENT {line}");
        let _ = self.console.flush();
        self.open_port();
        let Port::Open(file) = &mut self.port else {
            return;
        };
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        if let Err(e) = write_with_budget(file, &bytes, PORT_WRITE_BUDGET) {
            self.port = Port::GivenUp;
            self.info(&format!("giving up on event port {PORT_NAME}: {e}"));
        }
    }
}

impl Reporter {
    /// The port's descriptor while requests may arrive on it (for poll(2)).
    pub fn port_fd(&mut self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        if self.quiet_until.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        self.open_port();
        match &self.port {
            Port::Open(file) => Some(file.as_raw_fd()),
            Port::Missing | Port::GivenUp => None,
        }
    }

    /// Complete request lines the host wrote to the port since the last call; never
    /// blocks. Lines over 4 KiB are dropped.
    pub fn read_requests(&mut self) -> Vec<String> {
        use std::io::Read;
        let Port::Open(file) = &mut self.port else {
            return Vec::new();
        };
        let mut buf = [0u8; 4096];
        loop {
            match file.read(&mut buf) {
                Ok(0) => {
                    self.quiet_until = Some(Instant::now() + HUP_BACKOFF);
                    break;
                }
                Ok(n) => self
                    .pending
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        split_lines(&mut self.pending)
    }
}

/// Takes the complete lines out of `pending` (an overlong unfinished line is dropped).
fn split_lines(pending: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line).trim().to_string();
        if !text.is_empty() && line.len() <= MAX_REQUEST {
            lines.push(text);
        }
    }
    if pending.len() > MAX_REQUEST {
        pending.clear();
    }
    lines
}

/// Writes all of `bytes` to a non-blocking fd, waiting for POLLOUT at most `budget`.
fn write_with_budget(file: &mut File, mut bytes: &[u8], budget: Duration) -> io::Result<()> {
    let deadline = Instant::now() + budget;
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !crate::sys::poll_writable(file, left)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "not writable"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn splits_request_lines() {
        let mut pending = b"{\"a\":1}\n\n{\"b\"".to_vec();
        assert_eq!(split_lines(&mut pending), vec!["{\"a\":1}".to_string()]);
        assert_eq!(pending, b"{\"b\"");
        pending.extend_from_slice(b":2}\r\n");
        assert_eq!(split_lines(&mut pending), vec!["{\"b\":2}".to_string()]);
        let mut long = vec![b'x'; MAX_REQUEST + 10];
        assert!(split_lines(&mut long).is_empty());
        assert!(long.is_empty(), "an overlong partial line is dropped");
        let mut long = vec![b'x'; MAX_REQUEST + 10];
        long.extend_from_slice(b"\nok\n");
        assert_eq!(split_lines(&mut long), vec!["ok".to_string()]);
    }

    #[test]
    fn finds_the_named_port() {
        let tmp = TempDir::new("ports");
        tmp.write(
            "sys/class/virtio-ports/vport1p1/name",
            "org.qemu.guest_agent.0\n",
        );
        tmp.write("sys/class/virtio-ports/vport2p1/name", "kiln.events\n");
        tmp.write("sys/class/virtio-ports/vport2p2/name", "kiln.eventsX\n");
        let (sys, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
        let cases: &[(&str, Option<&str>)] = &[
            ("kiln.events", Some("vport2p1")),
            ("org.qemu.guest_agent.0", Some("vport1p1")),
            ("kiln", None),
        ];
        for (name, want) in cases {
            let want = want.map(|w| dev.join(w));
            assert_eq!(find_port(&sys, &dev, name), want, "{name}");
        }
        assert_eq!(
            find_port(&tmp.path().join("nosys"), &dev, "kiln.events"),
            None
        );
    }

    #[derive(Clone, Default)]
    struct SharedBuf(Rc<RefCell<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn fixed_clock() -> Duration {
        Duration::from_millis(1500)
    }

    #[test]
    fn events_go_to_console_always_and_port_once_it_appears() {
        let tmp = TempDir::new("reporter");
        let console = SharedBuf::default();
        let (sys, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
        let mut reporter = Reporter::new(Box::new(console.clone()), sys, dev, fixed_clock);

        reporter.event(&events::stage2());
        // The port appears (a regular file stands in for the character device).
        tmp.write("sys/class/virtio-ports/vport0p1/name", "kiln.events\n");
        let port = tmp.write("dev/vport0p1", "");
        reporter.info("hello");
        reporter.event(&events::shutdown("reboot"));

        let console = String::from_utf8(console.0.borrow().clone()).unwrap();
        assert_eq!(
            console,
            "KILN-EVENT {\"ts\":1.500,\"event\":\"stage2\"}\n\
             kiln-init: hello\n\
             KILN-EVENT {\"ts\":1.500,\"event\":\"shutdown\",\"action\":\"reboot\"}\n"
        );
        assert_eq!(
            std::fs::read_to_string(port).unwrap(),
            "{\"ts\":1.500,\"event\":\"shutdown\",\"action\":\"reboot\"}\n"
        );
    }

    #[test]
    fn debug_lines_only_with_debug() {
        let console = SharedBuf::default();
        let mut reporter = Reporter::new(
            Box::new(console.clone()),
            "/x".into(),
            "/y".into(),
            fixed_clock,
        );
        reporter.debug("hidden");
        reporter.set_debug(true);
        reporter.debug("shown");
        let console = String::from_utf8(console.0.borrow().clone()).unwrap();
        assert_eq!(console, "kiln-init: shown\n");
    }
}
