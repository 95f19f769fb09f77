use std::time::{Duration, SystemTime};

use super::*;

fn read(text: &str) -> Result<Request, HeadError> {
    read_head(&mut text.as_bytes())
}

#[test]
fn request_heads() {
    let Ok(r) = read("GET /vmlinuz HTTP/1.1\r\nHost: x\r\nRange:  bytes=0-9 \r\n\r\nrest") else {
        panic!("refused");
    };
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/vmlinuz");
    assert_eq!(r.header("range"), Some("bytes=0-9"));
    assert_eq!(r.header("host"), Some("x"));
    assert_eq!(r.header("accept"), None);
    // Bare LF line ends (some hand-written clients).
    let Ok(r) = read("HEAD /a HTTP/1.0\nUser-Agent: iPXE/1.21\n\n") else {
        panic!("refused");
    };
    assert_eq!((r.method.as_str(), r.headers.len()), ("HEAD", 1));
}

#[test]
fn bad_request_heads() {
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(65));
    let big_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(MAX_HEAD));
    let cases: &[(&str, &str)] = &[
        ("", "connection closed"),
        ("GET / HTTP/1.1\r\n", "truncated head"),
        ("GET / HTTP/1.1\r\nHost: x", "truncated head"),
        ("GET /\r\n\r\n", "request line"),
        ("GET / HTTP/1.1 x\r\n\r\n", "request line"),
        ("GET  / HTTP/1.1\r\n\r\n", "request line"),
        ("GET / HTTP/2\r\n\r\n", "request line"),
        (" / HTTP/1.1\r\n\r\n", "request line"),
        ("GET / HTTP/1.1\r\nHost x\r\n\r\n", "header without ':'"),
        ("GET / HTTP/1.1\r\nHo st: x\r\n\r\n", "header name"),
        ("GET / HTTP/1.1\r\n: x\r\n\r\n", "header name"),
        ("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "folded header"),
        (&long_line, "request head over"),
        (&many, "request head over"),
        (&big_header, "request head over"),
    ];
    for (text, want) in cases {
        let Err(e) = read(text) else {
            panic!("{:?} accepted", &text[..text.len().min(40)]);
        };
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }
    let Err(HeadError::Malformed(_)) = read_head(&mut &b"GET /\xff HTTP/1.1\r\n\r\n"[..]) else {
        panic!("non-UTF-8 accepted");
    };
}

#[test]
fn routes() {
    let bundle = |s: &str| Route::Bundle(s.to_string());
    let seed = |file| Route::Seed {
        mac: "52:54:00:12:34:56".into(),
        file,
    };
    let cases = [
        ("/vmlinuz", bundle("vmlinuz")),
        ("/boot.ipxe?mac=1", bundle("boot.ipxe")),
        ("/root%2Esquashfs", bundle("root.squashfs")),
        ("/a%20b", bundle("a b")),
        ("/seeds", bundle("seeds")),
        ("/seeds/52:54:00:12:34:56/user-data", seed("user-data")),
        ("/seeds/52-54-00-12-34-56/meta-data", seed("meta-data")),
        ("/seeds/52:54:00:12:34:56/vendor-data", seed("vendor-data")),
        (
            "/seeds/52%3A54%3A00%3A12%3A34%3A56/network-config",
            seed("network-config"),
        ),
        ("/seeds/525400123456/user-data", seed("user-data")),
        ("/", Route::NotFound),
        ("//etc/passwd", Route::NotFound),
        ("/..", Route::NotFound),
        ("/../etc/passwd", Route::NotFound),
        ("/%2e%2e/etc/passwd", Route::NotFound),
        ("/%2E%2E%2Fetc%2Fpasswd", Route::NotFound),
        ("/a/../vmlinuz", Route::NotFound),
        ("/./vmlinuz", Route::NotFound),
        ("/.hidden", Route::NotFound),
        ("/x%00", Route::NotFound),
        ("/..%5Cwin.ini", Route::NotFound),
        ("/a\\b", Route::NotFound),
        ("/sub/file", Route::NotFound),
        ("/vmlinuz/", Route::NotFound),
        ("/seeds/52:54:00:12:34:56/", Route::NotFound),
        ("/seeds/52:54:00:12:34:56/kiln.toml", Route::NotFound),
        ("/seeds/52:54:00:12:34:56/seed.img", Route::NotFound),
        ("/seeds/../secrets.toml", Route::NotFound),
        ("/seeds/nodes/user-data", Route::NotFound),
        ("/seeds/52:54:00:12:34:56/a/user-data", Route::NotFound),
        ("vmlinuz", Route::BadRequest),
        ("http://host/vmlinuz", Route::BadRequest),
        ("*", Route::BadRequest),
        ("/%zz", Route::BadRequest),
        ("/%2", Route::BadRequest),
        ("/%ff", Route::BadRequest),
    ];
    for (target, want) in cases {
        assert_eq!(route(target), want, "{target}");
    }
}

#[test]
fn log_targets_cannot_forge_lines() {
    assert_eq!(loggable("/a b\r\nGET /x"), "/a%20b%0D%0AGET%20/x");
    assert_eq!(loggable("/%2e"), "/%252e");
    let long = "/".repeat(300);
    assert_eq!(loggable(&long), format!("{}…", "/".repeat(200)));
}

#[test]
fn content_types_and_dates() {
    assert_eq!(content_type("boot.ipxe"), "text/plain; charset=utf-8");
    assert_eq!(content_type("manifest.json"), "application/json");
    assert_eq!(content_type("root.squashfs"), "application/octet-stream");
    assert_eq!(content_type("vmlinuz"), "application/octet-stream");
    let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(at(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        http_date(at(1_767_225_599)),
        "Wed, 31 Dec 2025 23:59:59 GMT"
    );
}

#[test]
fn response_heads() {
    let h = head(
        206,
        10,
        "text/plain",
        &["Content-Range: bytes 0-9/100".into()],
    );
    assert!(h.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{h}");
    for line in [
        "\r\nContent-Length: 10\r\n",
        "\r\nContent-Type: text/plain\r\n",
        "\r\nContent-Range: bytes 0-9/100\r\n",
        "\r\nAccept-Ranges: bytes\r\n",
        "\r\nConnection: close\r\n",
    ] {
        assert!(h.contains(line), "{line:?} not in {h}");
    }
    assert!(
        h.ends_with("\r\n\r\n") && !h.ends_with("\r\n\r\n\r\n"),
        "{h}"
    );
}
