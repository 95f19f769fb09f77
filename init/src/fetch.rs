//! Plain-HTTP downloads for network boot: the root image and NoCloud seeds, streamed into
//! a writer while their SHA-256 is computed, retried while the network or the server are
//! still coming up.
//!
//! Owns URLs, the request and the retry policy; the response framing is the etcd client's
//! (`crate::etcd::http`). Only `http://`: the root is checked against the digest on the
//! kernel command line, and seeds are served on the provisioning network.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::etcd::http::{read_head, Body, Bounded};
use crate::etcd::RequestError;

/// How long one read or write may wait.
const IDLE: Duration = Duration::from_secs(15);

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl HttpUrl {
    /// `base` joined with `name` (`base` ends with `/`, or gets one).
    pub fn join(&self, name: &str) -> HttpUrl {
        let mut path = self.path.clone();
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(name);
        HttpUrl {
            path,
            ..self.clone()
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Errors of a download; `is_transient` tells which are worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not an http://host[:port]/path URL")]
    BadUrl(String),
    #[error("resolve {host}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{url}")]
    Request {
        url: String,
        #[source]
        source: RequestError,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: read body")]
    Body {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("{url}: got {got} bytes, the server announced {want}")]
    Short { url: String, got: u64, want: u64 },
    #[error("write the download of {url}")]
    Write {
        url: String,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// Network trouble and server errors may pass; a 4xx, a bad URL or a full disk not.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Resolve { .. } | FetchError::Request { .. } => true,
            FetchError::Body { .. } | FetchError::Short { .. } => true,
            FetchError::Status { status, .. } => *status >= 500,
            FetchError::BadUrl(_) | FetchError::Write { .. } => false,
        }
    }

    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Parses `http://host[:port]/path`; IPv6 hosts in brackets.
pub fn parse_url(url: &str) -> Result<HttpUrl, FetchError> {
    let bad = || FetchError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) || authority.contains('@') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => 80,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(HttpUrl {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// What a download delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

fn resolve(url: &HttpUrl) -> Result<SocketAddr, FetchError> {
    let resolve_err = |source| FetchError::Resolve {
        host: url.host.clone(),
        source,
    };
    (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(resolve_err)?
        .next()
        .ok_or_else(|| resolve_err(io::ErrorKind::NotFound.into()))
}

/// One GET of `url` into `sink`; any status but 200 is an error.
pub fn get(url: &HttpUrl, sink: &mut dyn Write) -> Result<Fetched, FetchError> {
    let shown = url.to_string();
    let request_err = |source| FetchError::Request {
        url: shown.clone(),
        source,
    };
    let io_err = |op, e| request_err(crate::etcd::http::io_error(op, e, IDLE));
    let target = resolve(url)?;
    let mut stream = Bounded::connect(target, None, IDLE).map_err(request_err)?;
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kiln-init\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| io_err("send request", e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let head = read_head(&mut reader).map_err(|e| io_err("read response head", e))?;
    if head.status != 200 {
        return Err(FetchError::Status {
            url: shown,
            status: head.status,
        });
    }
    let mut body = Body::new(reader, head.framing);
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(FetchError::Body { url: shown, source }),
        };
        digest.update(&buf[..n]);
        sink.write_all(&buf[..n])
            .map_err(|source| FetchError::Write {
                url: shown.clone(),
                source,
            })?;
        bytes += n as u64;
    }
    if let crate::etcd::http::Framing::Length(want) = head.framing {
        if bytes != want {
            return Err(FetchError::Short {
                url: shown,
                got: bytes,
                want,
            });
        }
    }
    sink.flush().map_err(|source| FetchError::Write {
        url: shown.clone(),
        source,
    })?;
    Ok(Fetched {
        bytes,
        sha256: crate::pki::hex(digest.finish().as_ref()),
    })
}

/// `get` until it succeeds, fails for good, or `patience` has passed since the first
/// attempt. `sink` makes a fresh writer per attempt (returned with the result);
/// `on_retry` hears every transient failure with the attempt number.
pub fn get_retrying<W: Write>(
    url: &HttpUrl,
    patience: Duration,
    pause: Duration,
    sink: &mut dyn FnMut() -> Result<W, FetchError>,
    on_retry: &mut dyn FnMut(u32, &FetchError),
) -> Result<(Fetched, W), FetchError> {
    let start = Instant::now();
    let mut attempt = 1;
    loop {
        let mut w = sink()?;
        match get(url, &mut w) {
            Ok(f) => return Ok((f, w)),
            Err(e) if e.is_transient() && start.elapsed() + pause < patience => {
                on_retry(attempt, &e);
                attempt += 1;
                std::thread::sleep(pause);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
