//! The HTTP/1.1 subset the boot server speaks: a bounded request head reader, the mapping
//! from request targets to routes (the only place a URL becomes a file name), and
//! response heads. Every response closes the connection, so no body framing beyond
//! `Content-Length` is needed. Pure over `BufRead`/strings; sockets live in `serve`.

use std::io::{BufRead, Read};
use std::time::SystemTime;

use super::mac::normalize_mac;
use super::seeds::SEED_FILES;

/// Longest request head accepted (request line plus headers).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Lower-case names, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The peer closed (or never wrote) before a request line: nothing to answer.
    #[error("connection closed")]
    Closed,
    #[error("request head over {MAX_HEAD} bytes or {MAX_HEADERS} headers")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("read request")]
    Io(#[from] std::io::Error),
}

/// Reads one request head (up to the empty line) of at most [`MAX_HEAD`] bytes.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Request, HeadError> {
    let mut budget = MAX_HEAD;
    let line = match read_line(r, &mut budget)? {
        Some(l) => l,
        None => return Err(HeadError::Closed),
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("request line"));
    };
    if method.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed("request line"));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)?.ok_or(HeadError::Malformed("truncated head"))?;
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            return Err(HeadError::Malformed("folded header"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HeadError::Malformed("header without ':'"))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HeadError::Malformed("header name"));
        }
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::TooLarge);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
    })
}

/// One line without its `\r\n` (or `\n`); `None` at end of input before any byte.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<Option<String>, HeadError> {
    if *budget == 0 {
        return Err(HeadError::TooLarge);
    }
    let mut buf = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX);
    r.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() >= *budget {
            HeadError::TooLarge
        } else {
            HeadError::Malformed("truncated head")
        });
    }
    *budget -= buf.len();
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| HeadError::Malformed("not UTF-8"))
}

/// What a request target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A file directly inside the bundle folder (a plain name: no '/', not hidden).
    Bundle(String),
    /// A seed file ([`SEED_FILES`]) of a normalised MAC.
    Seed {
        mac: String,
        file: &'static str,
    },
    NotFound,
    /// Not an origin-form target, or a broken `%` escape.
    BadRequest,
}

/// Maps a request target to a route. Percent escapes are decoded before the path is split,
/// and any `.`, `..`, empty or hidden segment is refused, so `/%2e%2e/x`, `//etc/passwd`
/// and `/a/../b` all end as [`Route::NotFound`].
pub fn route(target: &str) -> Route {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return Route::BadRequest;
    };
    let Some(decoded) = percent_decode(rest) else {
        return Route::BadRequest;
    };
    let segments: Vec<&str> = decoded.split('/').collect();
    let plain = |s: &&str| !s.is_empty() && !s.starts_with('.') && !s.contains(['\0', '\\']);
    if !segments.iter().all(plain) {
        return Route::NotFound;
    }
    match segments.as_slice() {
        [name] => Route::Bundle((*name).to_string()),
        ["seeds", mac, name] => {
            let file = SEED_FILES.into_iter().find(|f| f == name);
            match (normalize_mac(mac), file) {
                (Ok(mac), Some(file)) => Route::Seed { mac, file },
                _ => Route::NotFound,
            }
        }
        _ => Route::NotFound,
    }
}

/// `%XX` decoding to UTF-8; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// A request target fit for a log line: at most 200 bytes, anything outside printable
/// ASCII escaped as `%XX` (a peer must not be able to forge log lines).
pub fn loggable(target: &str) -> String {
    let mut out = String::new();
    for b in target.bytes().take(200) {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if target.len() > 200 {
        out.push('…');
    }
    out
}

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("ipxe" | "txt" | "cfg" | "sha256") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// A response head; `extra` lines are complete `Name: value` pairs.
pub fn head(status: u16, length: u64, content_type: &str, extra: &[String]) -> String {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nServer: kiln-pxe\r\nContent-Type: {content_type}\r\n\
         Content-Length: {length}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        reason(status),
        http_date(SystemTime::now())
    );
    for line in extra {
        h.push_str(line);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86400;
    let (y, m, d) = kiln_init::civil::civil_from_days(days);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    let s = secs % 86400;
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
