//! Shared by the `kubernetes_*` tests: an in-process HTTP/1.1 server (one thread, one
//! request per connection) that records every request, and spec/cache helpers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kiln_imager::kubernetes::Kubernetes;

pub mod registry;

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: 200,
            headers: vec![],
            body: body.into(),
        }
    }

    pub fn status(status: u16) -> Self {
        Response {
            status,
            headers: vec![],
            body: vec![],
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&str, &Request) -> Response + Send + Sync;

/// A server on 127.0.0.1; `url` is `http://127.0.0.1:<port>`. Stops when dropped.
pub struct FakeServer {
    pub url: String,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    /// Serves `handler(base_url, request)` for every request.
    pub fn start(handler: impl Fn(&str, &Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let url = format!("http://127.0.0.1:{port}");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Box<Handler> = Box::new(handler);
        let (base, log2, stop2) = (url.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(c) = conn {
                    serve_one(c, &base, &*handler, &log2);
                }
            }
        });
        FakeServer { url, log, stop }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    pub fn clear(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn serve_one(c: TcpStream, base: &str, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(match c.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Request { path, headers };
    if let Ok(mut l) = log.lock() {
        l.push(req.clone());
    }
    let resp = handler(base, &req);
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (n, v) in &resp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut c = c;
    let _ = c.write_all(out.as_bytes());
    let _ = c.write_all(&resp.body);
    let _ = c.flush();
}

/// A fresh, empty folder for one test.
pub fn case_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("kubernetes")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// A whole spec around a `[kubernetes]` section.
pub fn spec_text(section: &str) -> String {
    format!("name = \"k\"\n[debian]\npackages = [\"busybox\"]\n\n[kubernetes]\n{section}")
}

/// The parsed `[kubernetes]` section of `spec_text(section)`.
pub fn kube(section: &str) -> Kubernetes {
    let spec =
        kiln_imager::spec::parse(&spec_text(section), "test").unwrap_or_else(|e| panic!("{e}"));
    spec.kubernetes.unwrap_or_else(|| panic!("no [kubernetes]"))
}

pub fn sha256_hex(data: &[u8]) -> String {
    kiln_imager::kubernetes::digest_of(data)[7..].to_string()
}

/// `Some(path)` of `tool` on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// The skip policy of STYLE rule 12: say so, and fail under `CI=true`.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("must run in CI but cannot: {reason}");
    }
    eprintln!("skipped: {reason}");
}
