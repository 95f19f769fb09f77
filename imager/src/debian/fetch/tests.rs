//! Tests for the fetcher against an in-process HTTP server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

type Handler = dyn Fn(&str, usize) -> (u16, Vec<u8>) + Send + Sync;

/// A tiny HTTP/1.1 server: one thread per connection, `Connection: close`, canned answers
/// from `handler(path, earlier requests for that path)`.
struct Server {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    fn start(handler: impl Fn(&str, usize) -> (u16, Vec<u8>) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/debian/", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let (hits2, handler): (_, Arc<Handler>) = (hits.clone(), Arc::new(handler));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (hits, handler) = (hits2.clone(), handler.clone());
                std::thread::spawn(move || answer(stream, &hits, &*handler));
            }
        });
        Self { base, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn answer(
    mut stream: std::net::TcpStream,
    hits: &Mutex<HashMap<String, usize>>,
    handler: &Handler,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    while reader.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
    let seen = {
        let mut hits = hits.lock().unwrap();
        let n = hits.entry(path.clone()).or_insert(0);
        *n += 1;
        *n - 1
    };
    let (status, body) = handler(&path, seen);
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

fn sha(data: &[u8]) -> String {
    crate::digest::sha256_hex(data)
}

fn temp_cache(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-fetch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// All files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn fetcher(server: &Server, cache: &Path) -> Fetcher {
    let mut f = Fetcher::new(&server.base, cache.to_path_buf());
    f.retry_delays = vec![Duration::from_millis(10), Duration::from_millis(20)];
    f
}

const BLOB: &[u8] = b"a package, more or less";

#[test]
fn get_retries_server_errors_but_not_404() {
    let server = Server::start(|path, seen| match (path, seen) {
        ("/debian/dists/t/InRelease", _) => (200, b"signed".to_vec()),
        ("/debian/flaky", 0) => (500, vec![]),
        ("/debian/flaky", _) => (200, b"ok".to_vec()),
        _ => (404, vec![]),
    });
    let f = fetcher(&server, &temp_cache("get"));
    assert_eq!(f.get("dists/t/InRelease").unwrap(), b"signed");
    assert_eq!(f.get("/flaky").unwrap(), b"ok");
    assert_eq!(server.hits("/debian/flaky"), 2);
    let err = f.get("missing").unwrap_err();
    assert!(
        matches!(&err, FetchError::Http { status: 404, url } if url.ends_with("/debian/missing"))
    );
    assert_eq!(server.hits("/debian/missing"), 1);
    let always_500 = Server::start(|_, _| (503, vec![]));
    let err = fetcher(&always_500, &temp_cache("get"))
        .get("x")
        .unwrap_err();
    assert!(matches!(err, FetchError::Http { status: 503, .. }));
    assert_eq!(always_500.hits("/debian/x"), 3);
}

#[test]
fn connection_refused_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = Fetcher::new(
        &format!("http://127.0.0.1:{port}/debian"),
        temp_cache("refused"),
    );
    let f = Fetcher {
        retry_delays: vec![],
        ..f
    };
    let err = f.get("dists/t/InRelease").unwrap_err();
    assert!(
        matches!(&err, FetchError::Unreachable { url, .. } if url.ends_with("/debian/dists/t/InRelease")),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("mirror unreachable"));
}

#[test]
fn fetch_verified_caches_by_digest() {
    let server = Server::start(|_, _| (200, BLOB.to_vec()));
    let cache = temp_cache("verified");
    let f = fetcher(&server, &cache);
    let hex = sha(BLOB);
    let path = f
        .fetch_verified("pool/p.deb", BLOB.len() as u64, &hex.to_uppercase())
        .unwrap();
    assert_eq!(path, cache.join("sha256").join(&hex[..2]).join(&hex));
    assert_eq!(std::fs::read(&path).unwrap(), BLOB);
    assert_eq!(
        f.fetch_verified("pool/p.deb", BLOB.len() as u64, &hex)
            .unwrap(),
        path
    );
    assert_eq!(
        server.hits("/debian/pool/p.deb"),
        1,
        "cache hit must not request"
    );
    assert_eq!(files_under(&cache), vec![path.clone()]);
    // A blob with the wrong size is replaced; with verify_cached a corrupt one is too.
    std::fs::write(&path, b"short").unwrap();
    f.fetch_verified("pool/p.deb", BLOB.len() as u64, &hex)
        .unwrap();
    let corrupt = vec![b'x'; BLOB.len()];
    std::fs::write(&path, &corrupt).unwrap();
    let f = f.verify_cached(true);
    f.fetch_verified("pool/p.deb", BLOB.len() as u64, &hex)
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), BLOB);
    assert_eq!(server.hits("/debian/pool/p.deb"), 3);
    std::fs::remove_dir_all(&cache).unwrap();
}

/// Asserts the expected error variant.
type Check = fn(&FetchError) -> bool;

#[test]
fn bad_downloads_leave_nothing_behind() {
    let server = Server::start(|path, _| match path {
        "/debian/gone.deb" => (404, vec![]),
        _ => (200, BLOB.to_vec()),
    });
    let cache = temp_cache("bad");
    let f = fetcher(&server, &cache);
    let size = BLOB.len() as u64;
    let cases: Vec<(&str, u64, String, Check)> = vec![
        (
            "digest.deb",
            size,
            sha(b"other"),
            |e| matches!(e, FetchError::DigestMismatch { url, .. } if url.ends_with("/debian/digest.deb")),
        ),
        (
            "long.deb",
            size - 1,
            sha(BLOB),
            |e| matches!(e, FetchError::SizeMismatch { expected, .. } if *expected == BLOB.len() as u64 - 1),
        ),
        (
            "short.deb",
            size + 1,
            sha(BLOB),
            |e| matches!(e, FetchError::SizeMismatch { actual, .. } if *actual == BLOB.len() as u64),
        ),
        ("gone.deb", size, sha(BLOB), |e| {
            matches!(e, FetchError::Http { status: 404, .. })
        }),
        (
            "x.deb",
            size,
            "abc".into(),
            |e| matches!(e, FetchError::BadDigest(d) if d == "abc"),
        ),
        ("x.deb", size, format!("../{}", &sha(BLOB)[3..]), |e| {
            matches!(e, FetchError::BadDigest(_))
        }),
    ];
    for (rel, size, digest, check) in cases {
        let err = f.fetch_verified(rel, size, &digest).unwrap_err();
        assert!(check(&err), "{rel}: {err:?}");
        assert_eq!(files_under(&cache), Vec::<PathBuf>::new(), "{rel}");
    }
    assert_eq!(
        server.hits("/debian/digest.deb"),
        1,
        "digest mismatch is not retried"
    );
    assert_eq!(server.hits("/debian/short.deb"), 3, "truncation is retried");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn fetch_all_returns_paths_in_input_order() {
    let blob = |i: usize| format!("blob {i} ").repeat(i * 1000 + 1).into_bytes();
    let server = Server::start(move |path, _| {
        let i: usize = path.trim_start_matches("/debian/pool/").parse().unwrap();
        (200, blob(i))
    });
    let cache = temp_cache("all");
    let f = fetcher(&server, &cache);
    let items: Vec<FetchItem> = (0..20)
        .map(|i| FetchItem {
            rel: format!("pool/{i}"),
            size: blob(i).len() as u64,
            sha256: sha(&blob(i)),
        })
        .collect();
    let total: u64 = items.iter().map(|i| i.size).sum();
    let calls = Mutex::new(Vec::new());
    let paths = f
        .fetch_all(&items, 4, &|n, b, t| calls.lock().unwrap().push((n, b, t)))
        .unwrap();
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(std::fs::read(path).unwrap(), blob(i), "item {i}");
    }
    let calls = calls.into_inner().unwrap();
    assert!(calls.contains(&(20, total, total)), "{calls:?}");
    assert!(calls
        .iter()
        .all(|&(n, b, t)| n <= 20 && b <= t && t == total));
    // Second run: all cached, no new requests; one bad item fails the call.
    assert_eq!(f.fetch_all(&items, 4, &|_, _, _| {}).unwrap(), paths);
    assert_eq!(server.hits("/debian/pool/7"), 1);
    let mut bad = items.clone();
    bad[13].sha256 = sha(b"nope");
    bad[13].rel = "pool/13".into();
    std::fs::remove_file(&paths[13]).unwrap();
    let err = f.fetch_all(&bad, 4, &|_, _, _| {}).unwrap_err();
    assert!(
        matches!(&err, FetchError::DigestMismatch { url, .. } if url.ends_with("/pool/13")),
        "{err:?}"
    );
    assert!(f.fetch_all(&[], 4, &|_, _, _| {}).unwrap().is_empty());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn defaults() {
    let f = Fetcher::new("http://127.0.0.1:9/debian/", PathBuf::from("/c"));
    assert_eq!(f.mirror(), "http://127.0.0.1:9/debian");
    assert_eq!(
        f.retry_delays,
        [Duration::from_millis(500), Duration::from_secs(1)]
    );
    assert!(!f.verify_cached);
    let os = |s: &str| Some(OsString::from(s));
    let cases = [
        (os("/xdg"), os("/home/u"), PathBuf::from("/xdg/kiln")),
        (os(""), os("/home/u"), PathBuf::from("/home/u/.cache/kiln")),
        (
            os("relative"),
            os("/home/u"),
            PathBuf::from("/home/u/.cache/kiln"),
        ),
        (None, None, std::env::temp_dir().join("kiln-cache")),
    ];
    for (xdg, home, want) in cases {
        assert_eq!(
            cache_dir_from(xdg.clone(), home.clone()),
            want,
            "{xdg:?} {home:?}"
        );
    }
}
