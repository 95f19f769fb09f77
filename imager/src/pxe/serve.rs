//! The server: a listener, a thread per connection (capped; over the cap connections wait
//! in the listen backlog), a deadline for the request head and a timeout per write, one
//! request per connection (`Connection: close`), and one access-log line per request:
//! `client method target status body-bytes duration`.

use std::io::{BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::{self, HeadError};
use super::respond::{self, Files, CHUNK};
use super::seeds::Seeds;
use super::PxeError;

/// Where log lines go (the CLI: stderr; tests: a vector).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

const LINGER: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Config {
    /// The bundle folder: its regular files are served at `/<name>`.
    pub dir: PathBuf,
    /// The folder `kiln cluster gen` wrote (macs.toml, nodes/…), served at `/seeds/<mac>/`.
    pub seeds: Option<PathBuf>,
    pub listen: SocketAddr,
    /// Connections served at once (default 64).
    pub max_connections: usize,
    /// Time allowed for the whole request head, and for each write (default 30 s).
    pub timeout: Duration,
    pub log: LogSink,
}

impl Config {
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            dir: dir.into(),
            seeds: None,
            listen,
            max_connections: 64,
            timeout: Duration::from_secs(30),
            log: Arc::new(|line: &str| eprintln!("{line}")),
        }
    }
}

struct Shared {
    files: Files,
    max: usize,
    timeout: Duration,
    /// Connections being served; `freed` is signalled when one ends.
    active: Mutex<usize>,
    freed: Condvar,
    stop: AtomicBool,
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// A server running on its own thread; stopped by [`Handle::stop`] or on drop.
pub struct Handle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Checks the folders and macs.toml, then binds; nothing is served before [`run`](Self::run).
    pub fn bind(config: Config) -> Result<Self, PxeError> {
        let bundle = super::folder("--dir", &config.dir)?;
        let seeds = config.seeds.as_deref().map(Seeds::load).transpose()?;
        let bind_err = |source| PxeError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let shared = Arc::new(Shared {
            files: Files::new(bundle, seeds, config.log),
            max: config.max_connections.max(1),
            timeout: config.timeout,
            active: Mutex::new(0),
            freed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        Ok(Self {
            listener,
            addr,
            shared,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The canonical bundle folder.
    pub fn dir(&self) -> &Path {
        &self.shared.files.bundle
    }

    pub fn seeds(&self) -> Option<&Seeds> {
        self.shared.files.seeds.as_ref()
    }

    /// Serves until stopped through a [`Handle`] (for the CLI: until the process ends).
    /// With every slot taken, no connection is accepted until one ends: clients wait in
    /// the listen backlog (a 503 would fail a node's boot).
    pub fn run(&self) {
        loop {
            let slot = self.shared.take_slot();
            let accepted = self.listener.accept();
            if self.shared.stop.load(Ordering::SeqCst) {
                return;
            }
            match accepted {
                Ok((stream, peer)) => dispatch(slot, stream, peer),
                Err(e) => {
                    // EMFILE and friends: wait for connections to finish instead of spinning.
                    (self.shared.files.log)(&format!("accept: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Runs the server on a thread of its own.
    pub fn spawn(self) -> std::io::Result<Handle> {
        let (addr, shared) = (self.addr, Arc::clone(&self.shared));
        let thread = std::thread::Builder::new()
            .name("pxe-accept".into())
            .spawn(move || self.run())?;
        Ok(Handle {
            addr,
            shared,
            thread: Some(thread),
        })
    }
}

impl Handle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept thread; requests in flight finish on their
    /// own threads (bounded by the timeouts).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.freed.notify_all();
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        // The accept thread sees the flag once accept() returns; without the wake-up
        // connection it would wait for the next client, so only then is joining safe.
        if TcpStream::connect_timeout(&wake, Duration::from_secs(2)).is_ok() {
            let _ = thread.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn count(&self) -> MutexGuard<'_, usize> {
        // A counter cannot be left half-updated: a poisoned lock is still right.
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a free slot (or for stop) and takes it.
    fn take_slot(self: &Arc<Self>) -> Slot {
        let full = |n: &mut usize| *n >= self.max && !self.stop.load(Ordering::SeqCst);
        let waited = self.freed.wait_while(self.count(), full);
        *waited.unwrap_or_else(PoisonError::into_inner) += 1;
        Slot(Arc::clone(self))
    }
}

/// One connection's share of the cap, given back when the connection ends, however it
/// ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.count() -= 1;
        self.0.freed.notify_one();
    }
}

fn dispatch(slot: Slot, stream: TcpStream, peer: SocketAddr) {
    let log = Arc::clone(&slot.0.files.log);
    let spawned = std::thread::Builder::new()
        .name("pxe-conn".into())
        .spawn(move || connection(&slot.0, &stream, peer));
    if let Err(e) = spawned {
        log(&format!("{peer}: start a connection thread: {e}"));
    }
}

fn connection(shared: &Shared, stream: &TcpStream, peer: SocketAddr) {
    let start = Instant::now();
    let _ = stream.set_write_timeout(Some(shared.timeout));
    let _ = stream.set_nodelay(true);
    let mut out = stream;
    let until = start + shared.timeout;
    let (what, outcome) = match http::read_head(&mut BufReader::new(Deadline { stream, until })) {
        Ok(req) => {
            let (method, target) = (http::loggable(&req.method), http::loggable(&req.target));
            (
                format!("{method} {target}"),
                shared.files.respond(&req, &mut out),
            )
        }
        Err(HeadError::Closed) => return,
        Err(HeadError::Io(e)) => {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            (shared.files.log)(&format!("{peer} - - - 0 {ms:.1}ms (read request: {e})"));
            return;
        }
        Err(e) => {
            let status = if matches!(e, HeadError::TooLarge) {
                431
            } else {
                400
            };
            let mut o = respond::text(&mut out, status, false, &[]);
            o.note = Some(e.to_string());
            ("- -".to_string(), o)
        }
    };
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let note = outcome.note.map_or(String::new(), |n| format!(" ({n})"));
    let (status, sent) = (outcome.status, outcome.sent);
    (shared.files.log)(&format!("{peer} {what} {status} {sent} {ms:.1}ms{note}"));
    // Logged before the client sees the end of the response, so a client that has read
    // to EOF finds its line in the log. Then a lingering close: closing with unread input
    // would send a RST that can destroy the response's tail in the client's buffers.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let _ = std::io::copy(&mut stream.take(CHUNK as u64), &mut std::io::sink());
}

/// The socket with one deadline for the whole request head: each read waits only for the
/// time left, so a peer trickling bytes cannot hold a slot past the timeout.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::ErrorKind::{TimedOut, WouldBlock};
        let late = || std::io::Error::new(TimedOut, "request head not complete in time");
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        self.stream.set_read_timeout(Some(left))?;
        // A socket timeout shows as EAGAIN (WouldBlock): name it.
        self.stream.read(buf).map_err(|e| match e.kind() {
            WouldBlock | TimedOut => late(),
            _ => e,
        })
    }
}
