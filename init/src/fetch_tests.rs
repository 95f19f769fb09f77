#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// Serves `answers` in order, one per connection, and records the requests.
fn serve(answers: Vec<Vec<u8>>) -> (HttpUrl, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for answer in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(&answer);
        }
    });
    let url = parse_url(&format!("http://127.0.0.1:{port}/bundle/root.squashfs")).unwrap();
    (url, seen)
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn parses_urls() {
    let good: &[(&str, &str, u16, &str)] = &[
        (
            "http://10.0.2.2:8080/root.squashfs",
            "10.0.2.2",
            8080,
            "/root.squashfs",
        ),
        (
            "http://boot.example/seeds/52-54-00-12-34-56/",
            "boot.example",
            80,
            "/seeds/52-54-00-12-34-56/",
        ),
        ("http://h", "h", 80, "/"),
        ("http://[fd00::1]:81/x", "fd00::1", 81, "/x"),
    ];
    for (url, host, port, path) in good {
        let u = parse_url(url).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            (*host, *port, *path),
            "{url}"
        );
    }
    for bad in [
        "https://h/x",
        "ftp://h/x",
        "http:///x",
        "http://h:0/x",
        "http://h:99999/x",
        "http://h:port/x",
        "http://user@h/x",
        "http://h/a b",
        "http://[fd00::1/x",
    ] {
        let got = parse_url(bad);
        assert!(matches!(got, Err(FetchError::BadUrl(_))), "{bad}: {got:?}");
    }
    let base = parse_url("http://h:1/seeds/aa").unwrap();
    assert_eq!(
        base.join("meta-data").to_string(),
        "http://h:1/seeds/aa/meta-data"
    );
}

#[test]
fn downloads_with_digest_and_sends_a_plain_get() {
    let (url, seen) = serve(vec![ok(b"abc")]);
    let mut out = Vec::new();
    let got = get(&url, &mut out).unwrap();
    assert_eq!(out, b"abc");
    assert_eq!(
        got,
        Fetched {
            bytes: 3,
            sha256: ABC_SHA256.into()
        }
    );
    let req = seen.lock().unwrap()[0].clone();
    assert!(
        req.starts_with("GET /bundle/root.squashfs HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        req.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", url.port)),
        "{req}"
    );
}

#[test]
fn chunked_and_close_delimited_bodies() {
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n"
            .to_vec();
    let close = b"HTTP/1.0 200 OK\r\n\r\nabc".to_vec();
    for answer in [chunked, close] {
        let (url, _) = serve(vec![answer]);
        let mut out = Vec::new();
        assert_eq!(get(&url, &mut out).unwrap().sha256, ABC_SHA256);
        assert_eq!(out, b"abc");
    }
}

#[test]
fn refusals_and_cut_bodies_are_errors() {
    let (url, _) = serve(vec![
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
    ]);
    let e = get(&url, &mut Vec::new()).unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(!e.is_transient());
    assert!(
        e.to_string().ends_with("/bundle/root.squashfs: HTTP 404"),
        "{e}"
    );

    let (url, _) = serve(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()
    ]);
    let e = get(&url, &mut Vec::new()).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(matches!(e, FetchError::Body { .. }), "{e:?}");
}

#[test]
fn retries_transient_failures_only() {
    let (url, seen) = serve(vec![
        b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ok(b"abc"),
    ]);
    let mut retries = Vec::new();
    let got = get_retrying(
        &url,
        Duration::from_secs(5),
        Duration::from_millis(10),
        &mut || Ok(Vec::new()),
        &mut |n, e| retries.push((n, e.status())),
    )
    .unwrap();
    assert_eq!((got.0.bytes, got.1), (3, b"abc".to_vec()));
    assert_eq!(retries, vec![(1, Some(503))]);
    assert_eq!(seen.lock().unwrap().len(), 2);

    let (url, _) = serve(vec![
        b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n".to_vec()
    ]);
    let mut n = 0;
    let e = get_retrying(
        &url,
        Duration::from_secs(5),
        Duration::from_millis(10),
        &mut || Ok(Vec::new()),
        &mut |_, _| n += 1,
    )
    .unwrap_err();
    assert_eq!((e.status(), n), (Some(403), 0));

    // Nobody listening: retried until patience runs out, then the connect error.
    let dead = parse_url("http://127.0.0.1:9/x").unwrap();
    let mut n = 0;
    let e = get_retrying(
        &dead,
        Duration::from_millis(300),
        Duration::from_millis(50),
        &mut || Ok(Vec::new()),
        &mut |_, _| n += 1,
    )
    .unwrap_err();
    assert!(matches!(e, FetchError::Request { .. }), "{e:?}");
    assert!(n >= 2, "{n} retries");
}
