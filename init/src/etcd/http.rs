//! Just enough HTTP/1.1 for etcd's gateway: one request per connection
//! (`Connection: close`), a response head, and a body framed by `Content-Length`,
//! `Transfer-Encoding: chunked` or the end of the connection.
//!
//! Owns bytes on a stream and time limits; it knows nothing about TLS setup or JSON.

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::RequestError;

/// Longest response head accepted (status line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 1024;

/// A TCP stream whose reads and writes wait at most `idle` each, and nothing past `end`.
#[derive(Debug)]
pub(crate) struct Bounded {
    sock: TcpStream,
    end: Option<Instant>,
    idle: Duration,
}

impl Bounded {
    /// Connects within `idle`. `end` bounds the whole exchange (`None`: only each wait).
    pub(crate) fn connect(
        target: SocketAddr,
        end: Option<Instant>,
        idle: Duration,
    ) -> Result<Self, RequestError> {
        let sock = TcpStream::connect_timeout(&target, idle).map_err(RequestError::Connect)?;
        // Best effort: requests are one small write.
        let _ = sock.set_nodelay(true);
        Ok(Self { sock, end, idle })
    }

    fn wait(&self) -> io::Result<Duration> {
        let Some(end) = self.end else {
            return Ok(self.idle);
        };
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left.min(self.idle))
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = self.wait()?;
        self.sock.set_read_timeout(Some(wait))?;
        self.sock.read(buf)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let wait = self.wait()?;
        self.sock.set_write_timeout(Some(wait))?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// Timeouts become `Timeout`, rustls errors (wrapped in io::Error) `Tls`, bad framing
/// (`InvalidData`) `Malformed`.
pub(crate) fn io_error(op: &'static str, e: io::Error, timeout: Duration) -> RequestError {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        use rustls::AlertDescription as A;
        return RequestError::Tls(match tls {
            // TLS 1.3 servers check the client certificate after the client thinks the
            // handshake is over: their refusal arrives as an alert on the first read.
            rustls::Error::AlertReceived(
                A::BadCertificate
                | A::UnknownCA
                | A::DecryptError
                | A::CertificateRequired
                | A::CertificateUnknown
                | A::AccessDenied,
            ) => format!("{tls} (the server refused the connection: is the client certificate signed by its etcd CA?)"),
            _ => tls.to_string(),
        });
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => RequestError::Timeout(timeout),
        io::ErrorKind::InvalidData => RequestError::Malformed(e.to_string()),
        _ => RequestError::Io { op, error: e },
    }
}

/// The bytes of one request. `body` is JSON (`None`: no body).
pub(super) fn request(method: &str, host: SocketAddr, path: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kiln-init\r\n\
         Accept: application/json\r\nConnection: close\r\n"
    );
    if let Some(body) = body {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    pub framing: Framing,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One line up to `\n` (at most `max` bytes), without the line break. EOF first is an
/// error naming `what`.
fn read_line<R: BufRead>(r: &mut R, max: usize, what: &str) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.take(max as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\n") {
        let why = if n > max { "too long" } else { "cut short" };
        return Err(invalid(&format!("{what} {why}")));
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid(&format!("{what} is not text")))
}

/// Reads the status line and headers.
pub(crate) fn read_head<R: BufRead>(r: &mut R) -> io::Result<Head> {
    let status_line = read_line(r, MAX_LINE, "status line")?;
    let status = crate::lb::probe::parse_status_line(status_line.as_bytes())
        .map_err(|_| invalid(&format!("bad status line {status_line:?}")))?;
    let mut framing = Framing::Close;
    let mut total = status_line.len();
    loop {
        let line = read_line(r, MAX_LINE, "header line")?;
        total += line.len();
        if total > MAX_HEAD {
            return Err(invalid("response head too long"));
        }
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(&format!("bad header line {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(invalid(&format!("unsupported transfer encoding {value:?}")));
            }
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let n = value
                .parse()
                .map_err(|_| invalid(&format!("bad content length {value:?}")))?;
            framing = Framing::Length(n);
        }
    }
    Ok(Head { status, framing })
}

/// A response body, ended as its framing says. A body cut short is an error, not EOF.
pub(crate) struct Body<R> {
    inner: R,
    framing: Framing,
    /// Bytes left in the body (`Length`) or the current chunk (`Chunked`).
    left: u64,
    /// `Chunked`: a chunk's data has ended and its CRLF is still to be read.
    after_chunk: bool,
    done: bool,
}

impl<R: BufRead> Body<R> {
    pub(crate) fn new(inner: R, framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            inner,
            framing,
            left,
            after_chunk: false,
            done: framing == Framing::Length(0),
        }
    }

    /// Reads the next chunk-size line (and the trailer after the last chunk).
    fn next_chunk(&mut self) -> io::Result<()> {
        if self.after_chunk {
            let mut end = [0u8; 2];
            self.inner
                .read_exact(&mut end)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => invalid("body cut short"),
                    _ => e,
                })?;
            if &end != b"\r\n" {
                return Err(invalid("chunk data longer than its size"));
            }
            self.after_chunk = false;
        }
        let line = read_line(&mut self.inner, MAX_LINE, "chunk size line")?;
        let digits = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(digits, 16)
            .map_err(|_| invalid(&format!("bad chunk size {line:?}")))?;
        if size == 0 {
            while !read_line(&mut self.inner, MAX_LINE, "chunked trailer")?.is_empty() {}
            self.done = true;
        }
        self.left = size;
        Ok(())
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.framing == Framing::Chunked && self.left == 0 && !self.done {
            self.next_chunk()?;
        }
        if self.done {
            return Ok(0);
        }
        let want = match self.framing {
            Framing::Close => buf.len(),
            _ => buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX)),
        };
        let n = self.inner.read(&mut buf[..want])?;
        match (self.framing, n) {
            (Framing::Close, 0) => self.done = true,
            (Framing::Close, _) => {}
            (_, 0) => return Err(invalid("body cut short")),
            (Framing::Length(_), _) => {
                self.left -= n as u64;
                self.done = self.left == 0;
            }
            (Framing::Chunked, _) => {
                self.left -= n as u64;
                self.after_chunk = self.left == 0;
            }
        }
        Ok(n)
    }
}
