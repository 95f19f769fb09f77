//! One request to one response: route, open the file (never outside its folder), pick the
//! range, stream the bytes through one fixed buffer. Writes to any `Write`; sockets,
//! threads and timeouts belong to `serve`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::http::{self, Request, Route};
use super::range::{parse_range, RangeError};
use super::seeds::{SeedLookup, Seeds};
use super::serve::LogSink;

/// One "unknown MAC" line per MAC per this long: a looping node must not flood the log.
const UNKNOWN_MAC_QUIET: Duration = Duration::from_secs(60);
pub(super) const CHUNK: usize = 64 * 1024;
const SEED_TYPE: &str = "text/plain; charset=utf-8";

/// What is served: the canonical bundle folder and the seeds.
pub(super) struct Files {
    pub bundle: PathBuf,
    pub seeds: Option<Seeds>,
    pub log: LogSink,
    unknown: Mutex<HashMap<String, Instant>>,
}

/// What a request came to, for the access log: body bytes sent and any failure.
pub(super) struct Outcome {
    pub status: u16,
    pub sent: u64,
    pub note: Option<String>,
}

impl Files {
    pub fn new(bundle: PathBuf, seeds: Option<Seeds>, log: LogSink) -> Self {
        let unknown = Mutex::new(HashMap::new());
        Self {
            bundle,
            seeds,
            log,
            unknown,
        }
    }

    pub fn respond(&self, req: &Request, out: &mut impl Write) -> Outcome {
        let head_only = match req.method.as_str() {
            "GET" => false,
            "HEAD" => true,
            _ => return text(out, 405, false, &["Allow: GET, HEAD".into()]),
        };
        let opened = match http::route(&req.target) {
            Route::BadRequest => return text(out, 400, head_only, &[]),
            Route::NotFound => None,
            Route::Bundle(name) => open_in(&self.bundle, &self.bundle.join(&name), true)
                .map(|(f, len)| (f, len, http::content_type(&name))),
            Route::Seed { mac, file } => self.seed(&mac, file),
        };
        let Some((file, len, content_type)) = opened else {
            return text(out, 404, head_only, &[]);
        };
        let range = match (req.header("range"), req.header("if-range")) {
            // No validators are sent, so an If-Range never matches: the whole file.
            (Some(h), None) => parse_range(h, len),
            _ => Ok(None),
        };
        let (status, first, count, extra) = match range {
            Ok(Some((a, b))) => {
                let extra = vec![format!("Content-Range: bytes {a}-{b}/{len}")];
                (206, a, b - a + 1, extra)
            }
            Ok(None) | Err(RangeError::Malformed) => (200, 0, len, vec![]),
            Err(RangeError::Unsatisfiable) => {
                let extra = [format!("Content-Range: bytes */{len}")];
                return text(out, 416, head_only, &extra);
            }
        };
        let head = http::head(status, count, content_type, &extra);
        let mut sent = 0;
        let result = out
            .write_all(head.as_bytes())
            .and_then(|()| match head_only {
                true => Ok(()),
                false => send(file, first, count, out, &mut sent),
            });
        finish(result, status, sent)
    }

    fn seed(&self, mac: &str, name: &str) -> Option<(File, u64, &'static str)> {
        let seeds = self.seeds.as_ref()?;
        match seeds.lookup(mac, name) {
            SeedLookup::Path(path) => {
                open_in(seeds.root(), &path, false).map(|(f, len)| (f, len, SEED_TYPE))
            }
            SeedLookup::UnknownMac => {
                self.unknown_mac(mac);
                None
            }
        }
    }

    fn unknown_mac(&self, mac: &str) {
        let now = Instant::now();
        {
            let Ok(mut seen) = self.unknown.lock() else {
                return;
            };
            let quiet = |t: &Instant| now.duration_since(*t) < UNKNOWN_MAC_QUIET;
            if seen.get(mac).is_some_and(quiet) {
                return;
            }
            if seen.len() >= 4096 {
                seen.clear();
            }
            seen.insert(mac.to_string(), now);
        }
        (self.log)(&format!("unknown MAC {mac} (node boots with defaults)"));
    }
}

fn finish(result: std::io::Result<()>, status: u16, sent: u64) -> Outcome {
    let note = result.err().map(|e| format!("send: {e}"));
    Outcome { status, sent, note }
}

/// A short text answer (the reason phrase) for everything but a file.
pub(super) fn text(
    out: &mut impl Write,
    status: u16,
    head_only: bool,
    extra: &[String],
) -> Outcome {
    let text = format!("{}\n", http::reason(status).to_ascii_lowercase());
    let head = http::head(status, text.len() as u64, "text/plain", extra);
    let body = if head_only { "" } else { &text };
    let r = out
        .write_all(head.as_bytes())
        .and_then(|()| out.write_all(body.as_bytes()));
    finish(r, status, body.len() as u64)
}

/// Opens `path` if it is a regular file whose real location lies inside the canonical
/// `root` (`direct`: right inside it): symlinks may point within, never out.
fn open_in(root: &Path, path: &Path, direct: bool) -> Option<(File, u64)> {
    let real = std::fs::canonicalize(path).ok()?;
    if !real.starts_with(root) || (direct && real.parent() != Some(root)) {
        return None;
    }
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then_some((file, meta.len()))
}

/// Streams `count` bytes from offset `first`; `sent` counts what reached `out`.
fn send(
    mut file: File,
    first: u64,
    count: u64,
    out: &mut impl Write,
    sent: &mut u64,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(first))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = count;
    while left > 0 {
        let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            let why = "file shrank while being sent";
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why));
        }
        out.write_all(&buf[..n])?;
        *sent += n as u64;
        left -= n as u64;
    }
    out.flush()
}
