//! Health probes against backends: TCP connect, HTTP and HTTPS `GET /healthz`, each
//! bounded by one overall deadline, and the runner that gives every probe its own
//! thread so a hanging backend stalls nobody.
//!
//! Owns the sockets to backends and the HTTP/TLS exchange. It does not decide health
//! (health.rs counts results) and never touches IPVS. HTTPS trust lives in `tls.rs`.
//!
//! The deadline covers connect, TLS handshake, request and status line together: every
//! read and write re-arms the socket timeout with what is left, so a backend that
//! trickles bytes cannot stretch a probe either.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::health::{HealthTable, Ticket, Transition};

#[path = "probe_tls.rs"]
mod tls;
pub use tls::{client_config, parse_server_name, prober, Check, TlsSetupError, Trust};

/// Why a probe failed. Cloneable so health transitions can carry it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("connect: {0}")]
    Connect(io::ErrorKind),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{op}: {kind}")]
    Io {
        op: &'static str,
        kind: io::ErrorKind,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("no result within {0:?} (probe lost)")]
    Lost(Duration),
    #[error("start probe thread: {0}")]
    Spawn(io::ErrorKind),
}

/// `Ok` means healthy.
pub type ProbeResult = Result<(), ProbeError>;

/// One way of checking a backend. `deadline` bounds the whole probe.
pub trait Prober: Send + Sync {
    fn probe(&self, target: SocketAddr, deadline: Duration) -> ProbeResult;
}

/// Healthy when a TCP connection is accepted.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpProber;

impl Prober for TcpProber {
    fn probe(&self, target: SocketAddr, deadline: Duration) -> ProbeResult {
        let end = Instant::now() + deadline;
        connect(target, end, deadline).map(drop)
    }
}

/// Healthy when `GET {path}` over plain HTTP/1.1 answers status 200 (body ignored).
#[derive(Debug, Clone)]
pub struct HttpProber {
    path: String,
}

impl HttpProber {
    pub fn new(path: &str) -> Self {
        Self { path: path.into() }
    }
}

impl Prober for HttpProber {
    fn probe(&self, target: SocketAddr, deadline: Duration) -> ProbeResult {
        let end = Instant::now() + deadline;
        let mut stream = connect(target, end, deadline)?;
        http_get(&mut stream, target, &self.path, deadline)
    }
}

/// `GET {path}` over TLS, verified as `tls.rs` configured it. The certificate must match
/// the configured server name, or else the backend's IP address (API server
/// certificates carry IP SANs).
#[derive(Debug, Clone)]
pub struct HttpsProber {
    path: String,
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl HttpsProber {
    pub fn new(
        path: &str,
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    ) -> Self {
        Self {
            path: path.into(),
            config,
            server_name,
        }
    }
}

impl Prober for HttpsProber {
    fn probe(&self, target: SocketAddr, deadline: Duration) -> ProbeResult {
        let end = Instant::now() + deadline;
        let stream = connect(target, end, deadline)?;
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::from(target.ip()));
        let conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| ProbeError::Tls(e.to_string()))?;
        let mut tls = StreamOwned::new(conn, stream);
        http_get(&mut tls, target, &self.path, deadline)
    }
}

/// A TCP stream whose every read and write may only use what is left of the deadline.
#[derive(Debug)]
struct Bounded {
    sock: TcpStream,
    end: Instant,
}

impl Bounded {
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.sock.set_read_timeout(Some(left))?;
        self.sock.read(buf)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.sock.set_write_timeout(Some(left))?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

fn connect(target: SocketAddr, end: Instant, deadline: Duration) -> Result<Bounded, ProbeError> {
    let left = end.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ProbeError::Timeout(deadline));
    }
    let sock = TcpStream::connect_timeout(&target, left).map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProbeError::Timeout(deadline),
        kind => ProbeError::Connect(kind),
    })?;
    // Best effort: the request is one small write either way.
    let _ = sock.set_nodelay(true);
    Ok(Bounded { sock, end })
}

/// Longest status line accepted; the status code is all a probe needs.
const MAX_STATUS_LINE: usize = 1024;

/// Sends the request and reads up to the end of the status line.
fn http_get<S: Read + Write>(
    stream: &mut S,
    target: SocketAddr,
    path: &str,
    deadline: Duration,
) -> ProbeResult {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: kiln-lb\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let fail = |op, e| io_error(op, e, deadline);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail("send request", e))?;
    stream.flush().map_err(|e| fail("send request", e))?;
    let mut head = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    let line_end = loop {
        if let Some(i) = head.windows(2).position(|w| w == b"\r\n") {
            break i;
        }
        if head.len() > MAX_STATUS_LINE {
            return Err(ProbeError::Malformed("status line too long"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(ProbeError::Malformed(
                    "connection closed before the status line",
                ))
            }
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail("read response", e)),
        }
    };
    match parse_status_line(&head[..line_end])? {
        200 => Ok(()),
        code => Err(ProbeError::Status(code)),
    }
}

/// `HTTP/1.x NNN [reason]` → NNN.
pub fn parse_status_line(line: &[u8]) -> Result<u16, ProbeError> {
    let bad = ProbeError::Malformed("bad status line");
    let rest = line.strip_prefix(b"HTTP/1.").ok_or(bad.clone())?;
    let (minor, rest) = rest.split_first().ok_or(bad.clone())?;
    let code = rest.strip_prefix(b" ").ok_or(bad.clone())?;
    let (digits, tail) = code.split_at_checked(3).ok_or(bad.clone())?;
    let well_formed = minor.is_ascii_digit()
        && digits.iter().all(u8::is_ascii_digit)
        && (tail.is_empty() || tail.starts_with(b" "));
    if !well_formed {
        return Err(bad);
    }
    Ok(digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

/// Timeouts become `Timeout`, rustls errors (wrapped in io::Error) become `Tls`.
fn io_error(op: &'static str, e: io::Error, deadline: Duration) -> ProbeError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProbeError::Timeout(deadline),
        kind => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => ProbeError::Tls(tls.to_string()),
            None => ProbeError::Io { op, kind },
        },
    }
}

/// What the runner's channel carries.
#[derive(Debug)]
pub enum Message {
    Done(Ticket, ProbeResult),
    /// Someone (a config watcher) wants the waiting loop to look around now.
    Wake,
}

/// Wakes a loop blocked in `ProbeRunner::wait`.
#[derive(Debug, Clone)]
pub struct Waker(Sender<Message>);

impl Waker {
    pub fn wake(&self) {
        // The runner owns a sender too, so the channel cannot be closed while it lives.
        let _ = self.0.send(Message::Wake);
    }
}

/// Runs each probe on a thread of its own and collects the results.
///
/// The health table starts at most one probe per backend at a time, so this is at
/// most one thread per backend, and a thread lives no longer than its deadline.
pub struct ProbeRunner {
    prober: Arc<dyn Prober>,
    tx: Sender<Message>,
    rx: Receiver<Message>,
}

impl ProbeRunner {
    pub fn new(prober: Arc<dyn Prober>) -> Self {
        let (tx, rx) = mpsc::channel();
        Self { prober, tx, rx }
    }

    pub fn waker(&self) -> Waker {
        Waker(self.tx.clone())
    }

    /// Starts one probe; its result arrives through `wait`.
    pub fn start(&self, ticket: Ticket, deadline: Duration) {
        let prober = self.prober.clone();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("lb-probe".into())
            .spawn(move || {
                let result = prober.probe(ticket.backend, deadline);
                let _ = tx.send(Message::Done(ticket, result));
            });
        if let Err(e) = spawned {
            let _ = self
                .tx
                .send(Message::Done(ticket, Err(ProbeError::Spawn(e.kind()))));
        }
    }

    /// The next result or wake-up, or `None` when `timeout` passes first.
    pub fn wait(&self, timeout: Duration) -> Option<Message> {
        // Disconnected cannot happen: the runner holds a sender itself.
        self.rx.recv_timeout(timeout).ok()
    }

    /// A result or wake-up that is already there.
    pub fn try_next(&self) -> Option<Message> {
        self.rx.try_recv().ok()
    }
}

/// What one `Monitor::step` saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub transitions: Vec<Transition>,
    /// A `Waker` fired: the caller should look at its configuration now.
    pub woken: bool,
}

/// A health table and a probe runner wired together: the health loop's body.
pub struct Monitor {
    table: HealthTable,
    runner: ProbeRunner,
}

impl Monitor {
    pub fn new(table: HealthTable, prober: Arc<dyn Prober>) -> Self {
        Self {
            table,
            runner: ProbeRunner::new(prober),
        }
    }

    pub fn table(&self) -> &HealthTable {
        &self.table
    }

    /// For `set_backends` and `set_config`.
    pub fn table_mut(&mut self) -> &mut HealthTable {
        &mut self.table
    }

    pub fn waker(&self) -> Waker {
        self.runner.waker()
    }

    /// Starts the probes that are due, then waits for results until the next probe is
    /// due, a waker fires or `max_wait` passes, whichever comes first. Every transition
    /// should be reported and followed by a reconcile.
    pub fn step(&mut self, max_wait: Duration) -> Step {
        let mut step = Step::default();
        let poll = self.table.poll();
        step.transitions.extend(poll.transitions);
        let deadline = self.table.config().timeout;
        for ticket in poll.start {
            self.runner.start(ticket, deadline);
        }
        let wait = self.table.wait_time().map_or(max_wait, |w| w.min(max_wait));
        let mut next = self.runner.wait(wait);
        while let Some(message) = next {
            match message {
                Message::Done(ticket, result) => {
                    step.transitions.extend(self.table.record(ticket, &result));
                }
                Message::Wake => step.woken = true,
            }
            next = self.runner.try_next();
        }
        step
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
