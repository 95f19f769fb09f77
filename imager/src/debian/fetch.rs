//! Downloading from a Debian mirror: plain GETs for indices and a content-addressed,
//! verified cache for packages, with retries and a parallel batch mode.
//!
//! Owns HTTP (one shared `ureq` agent) and the cache directory layout
//! `<cache>/sha256/<first 2 hex>/<hex>`. Blobs enter the cache only through a temporary file
//! in the same directory, renamed after size and SHA-256 match, so a cached blob is trusted
//! by name (its size is still checked; full re-hashing is opt-in via
//! [`Fetcher::verify_cached`]). It must not parse what it downloads nor pick the mirror.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

mod batch;

/// Largest response [`Fetcher::get`] accepts (indices, not packages).
const GET_LIMIT: u64 = 512 << 20;
const CHUNK: usize = 256 << 10;

/// One file to fetch into the cache, as listed in a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchItem {
    /// Path relative to the mirror root, e.g. `pool/main/b/busybox/busybox_1.36_amd64.deb`.
    pub rel: String,
    /// Expected size in bytes.
    pub size: u64,
    /// Expected SHA-256, hex.
    pub sha256: String,
}

/// Errors while downloading or caching.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error("mirror unreachable: {url}")]
    Unreachable {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("HTTP status {status} for {url}")]
    Http { url: String, status: u16 },
    #[error("request failed for {url}")]
    Request {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("reading response body of {url}")]
    Body {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("sha256 mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {url}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("response from {url} exceeds {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("invalid sha256 {0:?} (64 hex digits expected)")]
    BadDigest(String),
    #[error("cache I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// Whether another attempt may succeed (network trouble, 5xx, 408, 429, truncation).
    fn retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Request { .. } | Self::Body { .. } => true,
            Self::SizeMismatch { .. } => true,
            Self::Http { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Self::DigestMismatch { .. } | Self::TooLarge { .. } => false,
            Self::BadDigest(_) | Self::Io { .. } => false,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Downloads from one mirror into one cache directory; cheap to share between threads.
pub struct Fetcher {
    mirror: String,
    cache_dir: PathBuf,
    agent: ureq::Agent,
    /// Sleep before each retry; its length + 1 is the number of tries.
    retry_delays: Vec<Duration>,
    verify_cached: bool,
}

impl Fetcher {
    /// `mirror` like `http://host/debian` (trailing slash optional); `cache_dir` e.g.
    /// [`Fetcher::default_cache_dir`]. Timeouts: connect 10 s, any single read 60 s,
    /// whole transfer 30 min (large kernels on slow links must still finish).
    pub fn new(mirror: &str, cache_dir: PathBuf) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .timeout_global(Some(Duration::from_secs(30 * 60)))
            .accept_encoding("identity")
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            mirror: mirror.trim_end_matches('/').to_string(),
            cache_dir,
            agent: config.into(),
            retry_delays: vec![Duration::from_millis(500), Duration::from_secs(1)],
            verify_cached: false,
        }
    }

    /// Re-hash cached blobs before trusting them (default off: blobs are verified before
    /// they enter the cache; only their size is re-checked). A bad blob is re-downloaded.
    pub fn verify_cached(mut self, verify: bool) -> Self {
        self.verify_cached = verify;
        self
    }

    /// The mirror root, without trailing slash.
    pub fn mirror(&self) -> &str {
        &self.mirror
    }

    /// `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`, else `<tmp>/kiln-cache`.
    pub fn default_cache_dir() -> PathBuf {
        cache_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{}", self.mirror, rel.trim_start_matches('/'))
    }

    /// GETs `mirror/rel` (e.g. `dists/trixie/InRelease`) without caching, retrying
    /// transient failures (3 tries, 0.5 s then 1 s apart). 404 and other 4xx fail at once.
    pub fn get(&self, rel: &str) -> Result<Vec<u8>, FetchError> {
        let url = self.url(rel);
        self.with_retries(|| {
            let mut response = self.request(&url)?;
            let mut data = Vec::new();
            let mut reader = response.body_mut().as_reader().take(GET_LIMIT + 1);
            let url = url.clone();
            if let Err(source) = reader.read_to_end(&mut data) {
                return Err(FetchError::Body { url, source });
            }
            if data.len() as u64 > GET_LIMIT {
                return Err(FetchError::TooLarge {
                    url,
                    limit: GET_LIMIT,
                });
            }
            Ok(data)
        })
    }

    /// Returns the path of the verified cached blob `cache_dir/sha256/<2 hex>/<hex>`,
    /// downloading `mirror/rel` first unless it is already cached.
    pub fn fetch_verified(
        &self,
        rel: &str,
        size: u64,
        sha256: &str,
    ) -> Result<PathBuf, FetchError> {
        self.fetch_with_progress(rel, size, sha256, &|_| {})
    }

    /// [`Fetcher::fetch_verified`] reporting byte deltas; a failed attempt reports the
    /// negative of what it had reported, so the running sum stays exact across retries.
    fn fetch_with_progress(
        &self,
        rel: &str,
        size: u64,
        sha256: &str,
        progress: &dyn Fn(i64),
    ) -> Result<PathBuf, FetchError> {
        let hex = normalize_digest(sha256)?;
        let dest = self.cache_dir.join("sha256").join(&hex[..2]).join(&hex);
        if self.cached_ok(&dest, size, &hex)? {
            progress(i64::try_from(size).unwrap_or(i64::MAX));
            return Ok(dest);
        }
        let dir = dest.parent().unwrap_or(&self.cache_dir);
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let url = self.url(rel);
        self.with_retries(|| {
            let mut counted = 0i64;
            let result = self.download_once(&url, &dest, size, &hex, &mut |n| {
                counted += n;
                progress(n);
            });
            if result.is_err() {
                progress(-counted);
            }
            result
        })?;
        Ok(dest)
    }

    /// Whether `dest` holds the blob; removes it when it is there but wrong.
    fn cached_ok(&self, dest: &Path, size: u64, hex: &str) -> Result<bool, FetchError> {
        let Ok(meta) = std::fs::metadata(dest) else {
            return Ok(false);
        };
        let good = meta.is_file()
            && meta.len() == size
            && (!self.verify_cached || hash_file(dest)? == hex);
        if !good {
            std::fs::remove_file(dest).map_err(io_err(dest))?;
        }
        Ok(good)
    }

    fn download_once(
        &self,
        url: &str,
        dest: &Path,
        size: u64,
        hex: &str,
        progress: &mut dyn FnMut(i64),
    ) -> Result<(), FetchError> {
        let tmp = TempFile::new(dest)?;
        let mut file = io::BufWriter::with_capacity(CHUNK, &tmp.file);
        let mut response = self.request(url)?;
        let mut reader = response.body_mut().as_reader();
        let (mut hasher, mut got, mut buf) = (Sha256::new(), 0u64, vec![0u8; CHUNK]);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(FetchError::Body {
                        url: url.to_string(),
                        source,
                    })
                }
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(io_err(&tmp.path))?;
            got += n as u64;
            progress(n as i64);
            if got > size {
                break;
            }
        }
        file.flush().map_err(io_err(&tmp.path))?;
        drop(file);
        if got != size {
            let (url, expected, actual) = (url.to_string(), size, got);
            return Err(FetchError::SizeMismatch {
                url,
                expected,
                actual,
            });
        }
        let actual = crate::digest::hex(&hasher.finalize());
        if actual != hex {
            let (url, expected) = (url.to_string(), hex.to_string());
            return Err(FetchError::DigestMismatch {
                url,
                expected,
                actual,
            });
        }
        tmp.persist(dest)
    }

    /// Sends a GET and classifies failures.
    fn request(&self, url: &str) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
        self.agent
            .get(url)
            .call()
            .map_err(|source| classify(url, source))
    }

    fn with_retries<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let mut delays = self.retry_delays.iter();
        loop {
            match attempt() {
                Err(e) if e.retryable() => match delays.next() {
                    Some(delay) => std::thread::sleep(*delay),
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }
}

fn classify(url: &str, source: ureq::Error) -> FetchError {
    use ureq::Error as E;
    let url = url.to_string();
    match source {
        E::StatusCode(status) => FetchError::Http { url, status },
        E::HostNotFound | E::ConnectionFailed | E::Timeout(ureq::Timeout::Connect) => {
            FetchError::Unreachable { url, source }
        }
        E::Timeout(ureq::Timeout::Resolve) => FetchError::Unreachable { url, source },
        E::Io(ref e) if is_connect_error(e.kind()) => FetchError::Unreachable { url, source },
        source => FetchError::Request { url, source },
    }
}

fn is_connect_error(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused | K::AddrNotAvailable | K::NetworkUnreachable | K::HostUnreachable
    )
}

fn cache_dir_from(xdg: Option<OsString>, home: Option<OsString>) -> PathBuf {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg)
        .map(|p| p.join("kiln"))
        .or_else(|| absolute(home).map(|h| h.join(".cache").join("kiln")))
        .unwrap_or_else(|| std::env::temp_dir().join("kiln-cache"))
}

/// Lower-case hex of a 64-digit SHA-256, rejecting anything else (it becomes a file name).
fn normalize_digest(sha256: &str) -> Result<String, FetchError> {
    let hex = sha256.trim().to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FetchError::BadDigest(sha256.to_string()));
    }
    Ok(hex)
}

fn hash_file(path: &Path) -> Result<String, FetchError> {
    crate::digest::sha256_file(path).map_err(io_err(path))
}

/// A temporary file next to its destination, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: std::fs::File,
    persisted: bool,
}

impl TempFile {
    fn new(dest: &Path) -> Result<Self, FetchError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp_name = format!(".partial-{name}-{}-{seq}", std::process::id());
        let path = dest.with_file_name(tmp_name);
        let file = std::fs::File::create(&path).map_err(io_err(&path))?;
        Ok(Self {
            path,
            file,
            persisted: false,
        })
    }

    fn persist(mut self, dest: &Path) -> Result<(), FetchError> {
        std::fs::rename(&self.path, dest).map_err(io_err(dest))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests;
