//! Response heads and body framing, fed through readers that hand out a few bytes at a
//! time (as TLS records do).

use std::io::{self, BufReader, Read};
use std::net::SocketAddr;

use super::http::*;

/// Hands out at most `step` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Head and body of a whole response, read `step` bytes at a time.
fn parse(response: &[u8], step: usize) -> io::Result<(Head, Vec<u8>)> {
    let mut r = BufReader::with_capacity(
        8,
        Trickle {
            data: response,
            step,
        },
    );
    let head = read_head(&mut r)?;
    let mut body = Vec::new();
    Body::new(r, head.framing).read_to_end(&mut body)?;
    Ok((head, body))
}

#[test]
fn chunked_bodies_are_joined_whatever_the_read_sizes() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n1;ext=1\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: yes\r\n\r\n";
    for step in [1, 2, 3, 7, 64, 4096] {
        let Ok((head, body)) = parse(response, step) else {
            panic!("step {step}")
        };
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(body, b"hello 0123456789abcdef", "step {step}");
    }
}

#[test]
fn content_length_and_close_framing() {
    let (head, body) = parse(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 4\r\n\r\nabcdEXTRA",
        3,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((head.status, head.framing), (400, Framing::Length(4)));
    assert_eq!(body, b"abcd");
    let (head, body) =
        parse(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", 5).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.framing, Framing::Close);
    assert_eq!(body, b"until the end");
    let (_, body) =
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1).unwrap_or_else(|e| panic!("{e}"));
    assert!(body.is_empty());
}

#[test]
fn broken_responses_are_refused_with_the_cause() {
    let cases: [(&[u8], &str); 10] = [
        (b"", "status line cut short"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad header line"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "bad content length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "unsupported transfer encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "body cut short",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "bad chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            "body cut short",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
            "chunk data longer than its size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            "chunk size line cut short",
        ),
    ];
    for (response, want) in cases {
        let Err(e) = parse(response, 4) else {
            panic!("accepted {:?}", String::from_utf8_lossy(response))
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{want}");
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
    }
    let long_head = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X-A: b\r\n".repeat(3000));
    let Err(e) = parse(long_head.as_bytes(), 4096) else {
        panic!("accepted a 24 KiB head")
    };
    assert!(e.to_string().contains("response head too long"), "{e}");
}

#[test]
fn requests_carry_length_type_and_close() {
    let host: SocketAddr = "[fd00::11]:2379".parse().unwrap_or_else(|e| panic!("{e}"));
    let got = request("POST", host, "/v3/kv/put", Some(b"{}"));
    let want = "POST /v3/kv/put HTTP/1.1\r\nHost: [fd00::11]:2379\r\nUser-Agent: kiln-init\r\n\
                Accept: application/json\r\nConnection: close\r\n\
                Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(String::from_utf8_lossy(&got), want);
    let got = request("GET", host, "/health", None);
    assert!(!String::from_utf8_lossy(&got).contains("Content-Length"));
    assert!(got.ends_with(b"Connection: close\r\n\r\n"));
}
