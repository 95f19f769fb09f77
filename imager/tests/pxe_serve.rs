//! `kiln pxe serve` over real sockets: an in-process server on 127.0.0.1:0 for files,
//! ranges, traversal and seeds (requests written by hand, so nothing normalises `..`
//! for us); the built binary for memory use on a 200 MiB file and for bad input; curl as
//! the client we did not write (absent: `skipped: …`, a failure under `CI=true`).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_imager::cluster::{self, GenOptions};
use kiln_imager::pxe::{Config, Handle, Server};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
const MAC: &str = "52:54:00:12:34:56";
const WAIT: Duration = Duration::from_secs(20);

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn put(path: &Path, data: impl AsRef<[u8]>) {
    ok(fs::write(path, data));
}

fn case_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pxe-serve");
    let dir = dir.join(name);
    let _ = fs::remove_dir_all(&dir);
    ok(fs::create_dir_all(&dir));
    dir
}

/// A bundle folder `<case>/out` (100 KiB vmlinuz, boot.ipxe, links in and out, a
/// subfolder, a hidden file) next to `<case>/secret`; returns it and vmlinuz's bytes.
fn bundle(name: &str) -> (PathBuf, Vec<u8>) {
    let root = case_dir(name);
    let dir = root.join("out");
    ok(fs::create_dir_all(dir.join("sub")));
    let data: Vec<u8> = (0..100 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    put(&dir.join("vmlinuz"), &data);
    put(&dir.join("boot.ipxe"), "#!ipxe\nchain vmlinuz\n");
    put(&dir.join("sub/file"), "nested");
    put(&dir.join(".hidden"), "hidden");
    put(&root.join("secret"), "secret");
    ok(symlink(root.join("secret"), dir.join("escape")));
    ok(symlink("vmlinuz", dir.join("kernel")));
    ok(symlink("sub/file", dir.join("nested")));
    (dir, data)
}

struct Served {
    handle: Handle,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(bundle: &Path) -> Self {
        Self::start_with(bundle, |_| {})
    }
    fn start_with(bundle: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let mut config = Config::new(bundle, ok("127.0.0.1:0".parse()));
        tweak(&mut config);
        config.log = Arc::new(move |l: &str| {
            ok(sink.lock().map_err(|e| e.to_string())).push(l.into());
        });
        let handle = ok(ok(Server::bind(config)).spawn());
        Self { handle, log }
    }
    fn get(&self, target: &str, headers: &str) -> Reply {
        let head = format!("GET {target} HTTP/1.1\r\n{headers}");
        request(self.handle.local_addr(), &head)
    }
    fn lines(&self, needle: &str) -> usize {
        let log = ok(self.log.lock().map_err(|e| e.to_string()));
        log.iter().filter(|l| l.contains(needle)).count()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    /// A header's value, `-` when absent.
    fn h(&self, name: &str) -> &str {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        let found = self
            .head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix));
        found.map_or("-", |l| &l[prefix.len()..])
    }
}

/// Sends `head` (request line and headers, without the final empty line), reads to EOF.
fn request(addr: SocketAddr, head: &str) -> Reply {
    let mut s = ok(TcpStream::connect(addr));
    ok(s.set_read_timeout(Some(WAIT)));
    ok(s.write_all(format!("{head}Host: t\r\n\r\n").as_bytes()));
    let mut raw = Vec::new();
    ok(s.read_to_end(&mut raw));
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!("no head in {:?}", String::from_utf8_lossy(&raw));
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = ok(head.get(9..12).unwrap_or_default().parse());
    let body = raw[split + 4..].to_vec();
    Reply { status, head, body }
}

#[test]
fn whole_files_and_head() {
    let (dir, data) = bundle("whole");
    let s = Served::start(&dir);
    let len = data.len().to_string();
    for target in ["/vmlinuz", "/kernel"] {
        let r = s.get(target, "");
        assert!(r.status == 200 && r.body == data, "{target}: {}", r.head);
        let want = (len.as_str(), "application/octet-stream", "bytes");
        let got = (
            r.h("content-length"),
            r.h("content-type"),
            r.h("accept-ranges"),
        );
        assert_eq!(got, want, "{target}");
    }
    let r = s.get("/boot.ipxe", "");
    assert_eq!(r.body, b"#!ipxe\nchain vmlinuz\n");
    assert_eq!(r.h("content-type"), "text/plain; charset=utf-8");
    let r = request(s.handle.local_addr(), "HEAD /vmlinuz HTTP/1.1\r\n");
    assert_eq!(
        (r.status, r.body.len(), r.h("content-length")),
        (200, 0, "102400")
    );
    assert_eq!(s.lines("127.0.0.1:"), 4);
    assert_eq!(s.lines(&format!(" GET /vmlinuz 200 {len} ")), 1);
    assert_eq!(s.lines(" HEAD /vmlinuz 200 0 "), 1);
    let r = request(s.handle.local_addr(), "POST /vmlinuz HTTP/1.1\r\n");
    assert_eq!((r.status, r.h("allow")), (405, "GET, HEAD"));
}

#[test]
fn byte_ranges() {
    let (dir, data) = bundle("ranges");
    let s = Served::start(&dir);
    let n = data.len();
    let cases: Vec<(String, u16, usize, usize)> = vec![
        ("bytes=0-9".into(), 206, 0, 10),
        ("bytes=-100".into(), 206, n - 100, n),
        (format!("bytes={}-", n - 5), 206, n - 5, n),
        (format!("bytes={}-{}", n - 1, n - 1), 206, n - 1, n),
        ("bytes=1000-1999999".into(), 206, 1000, n),
        ("bytes=0-1,5-9".into(), 200, 0, n),
        ("bytes=9-1".into(), 200, 0, n),
    ];
    for (range, status, a, b) in cases {
        let r = s.get("/vmlinuz", &format!("Range: {range}\r\n"));
        assert_eq!(r.status, status, "{range}: {}", r.head);
        assert!(r.body == data[a..b], "{range}: wrong bytes");
        assert_eq!(r.h("content-length"), (b - a).to_string());
        let want = format!("bytes {a}-{}/{n}", b - 1);
        let want = if status == 206 { want.as_str() } else { "-" };
        assert_eq!(r.h("content-range"), want, "{range}");
    }
    for range in format!("bytes={n}- bytes=200000-300000 bytes=-0").split(' ') {
        let r = s.get("/vmlinuz", &format!("Range: {range}\r\n"));
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.h("content-range"), format!("bytes */{n}"));
    }
    let r = s.get("/vmlinuz", "Range: bytes=0-9\r\nIf-Range: \"x\"\r\n");
    assert_eq!((r.status, r.body.len()), (200, n));
}

#[test]
fn nothing_outside_the_folder() {
    let (dir, _) = bundle("traversal");
    let s = Served::start(&dir);
    let targets = "/ /../secret /%2e%2e/secret /%2E%2E%2Fsecret /..%2fsecret /.%2e/secret \
        //etc/passwd /etc/passwd /escape /nested /sub /sub/file /sub/ /.hidden /missing \
        /seeds/52:54:00:12:34:56/user-data";
    for target in targets.split_whitespace() {
        let r = s.get(target, "");
        assert_eq!(r.status, 404, "{target}: {}", r.head);
        assert!(!r.body.starts_with(b"secret") && !r.body.starts_with(b"nested"));
    }
    for target in ["../secret", "http://t/vmlinuz", "/%zz"] {
        assert_eq!(s.get(target, "").status, 400, "{target}");
    }
}

#[test]
fn over_the_cap_connections_wait() {
    let (dir, data) = bundle("cap");
    let s = Served::start_with(&dir, |c| c.max_connections = 1);
    // Holds the only slot: connected, request not sent yet.
    let idle = ok(TcpStream::connect(s.handle.local_addr()));
    let mut queued = ok(TcpStream::connect(s.handle.local_addr()));
    ok(queued.write_all(b"GET /vmlinuz HTTP/1.1\r\n\r\n"));
    ok(queued.set_read_timeout(Some(Duration::from_millis(500))));
    let Err(e) = queued.read(&mut [0u8; 1]) else {
        panic!("answered over the cap");
    };
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
    drop(idle);
    ok(queued.set_read_timeout(Some(WAIT)));
    let mut raw = Vec::new();
    ok(queued.read_to_end(&mut raw));
    assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n") && raw.ends_with(&data));
}

#[test]
fn a_trickled_head_is_cut_off_at_the_timeout() {
    let (dir, _) = bundle("slow");
    let s = Served::start_with(&dir, |c| c.timeout = Duration::from_millis(500));
    let start = Instant::now();
    let mut slow = ok(TcpStream::connect(s.handle.local_addr()));
    ok(slow.write_all(b"GET /vmlinuz HTTP/1.1\r\nX-Slow: "));
    // A byte every 100 ms: no single read ever waits 500 ms.
    while s.lines("(read request: request head not complete in time)") == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "never cut off");
        let _ = slow.write_all(b"a");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(start.elapsed() >= Duration::from_millis(500));
}

#[test]
fn seeds_per_mac() {
    let root = case_dir("seeds");
    let (bundle_dir, _) = bundle("seeds-bundle");
    let seeds = root.join("cluster");
    let opts = GenOptions {
        name: "dev".into(),
        control_planes: vec!["10.0.0.11".into()],
        workers: vec!["10.0.0.21".into()],
        gateway: Some("10.0.0.1".into()),
        ..GenOptions::default()
    };
    ok(cluster::gen(&opts, &seeds));
    let macs = format!("\"{MAC}\" = \"cp-1\"\n\"52-54-00-12-34-57\" = \"worker-1\"\n");
    put(&seeds.join("macs.toml"), macs);
    let dashes = seeds.join("52-54-00-aa-bb-cc");
    let colons = seeds.join("52:54:00:aa:bb:cd");
    ok(fs::create_dir(&dashes));
    ok(fs::create_dir(&colons));
    put(&dashes.join("meta-data"), "instance-id: aa\n");
    put(&colons.join("user-data"), "#cloud-config\n");
    put(&root.join("outside"), "secret");
    ok(symlink(root.join("outside"), dashes.join("user-data")));
    let s = Served::start_with(&bundle_dir, |c| c.seeds = Some(seeds.clone()));
    let node = |n: &str, f: &str| ok(fs::read(seeds.join("nodes").join(n).join(f)));
    let macs = "52:54:00:12:34:56 52-54-00-12-34-56 52:54:00:12:34:57 52-54-00-12-34-57";
    for (i, mac) in macs.split(' ').enumerate() {
        let name = if i < 2 { "cp-1" } else { "worker-1" };
        for file in ["user-data", "meta-data", "network-config"] {
            for spelling in [mac.to_string(), mac.to_uppercase()] {
                let r = s.get(&format!("/seeds/{spelling}/{file}"), "");
                assert_eq!(r.status, 200, "{spelling}/{file}");
                assert!(
                    r.body == node(name, file),
                    "{spelling}/{file}: not {name}'s"
                );
            }
        }
    }
    let r = s.get(&format!("/seeds/{MAC}/user-data"), "Range: bytes=0-12\r\n");
    assert_eq!(
        (r.status, &r.body[..]),
        (206, &node("cp-1", "user-data")[..13])
    );
    let r = s.get("/seeds/52:54:00:AA:BB:CC/meta-data", "");
    assert_eq!(r.body, b"instance-id: aa\n");
    let r = s.get("/seeds/52-54-00-aa-bb-cd/user-data", "");
    assert_eq!(r.body, b"#cloud-config\n");
    let missing = format!(
        "/seeds/{MAC}/vendor-data /seeds/{MAC}/kiln.toml /seeds/{MAC}/seed.img \
         /seeds/52:54:00:aa:bb:cc/user-data /seeds/secrets.toml /seeds/nodes/cp-1/user-data \
         /seeds/52:54:00:00:00:01/meta-data /seeds/52-54-00-00-00-01/user-data"
    );
    for target in missing.split_whitespace() {
        assert_eq!(s.get(target, "").status, 404, "{target}");
    }
    // One line per unknown MAC, however often it asks.
    let unknown = "unknown MAC 52:54:00:00:00:01 (node boots with defaults)";
    assert_eq!(s.lines(unknown), 1);
    assert_eq!(s.lines("unknown MAC"), 1);
}

/// `kiln pxe serve ARGS`, its banner line and the rest of its stderr, line by line.
fn spawn_kiln(args: &[&str]) -> (Child, String, Receiver<String>) {
    let mut cmd = Command::new(KILN);
    let mut child = ok(cmd
        .args(["pxe", "serve"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn());
    let Some(err) = child.stderr.take() else {
        panic!("no stderr")
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines = BufReader::new(err).lines().map_while(Result::ok);
        lines.for_each(|l| drop(tx.send(l)));
    });
    let banner = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|e| panic!("no banner: {e}"));
    (child, banner, rx)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = ok(fs::read_to_string(format!("/proc/{pid}/status")));
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or_default();
    ok(line.split_whitespace().nth(1).unwrap_or_default().parse())
}

/// Streams bytes `a..=b` of /big through a small buffer, checking length and markers.
fn stream_range(addr: SocketAddr, a: u64, b: u64, marks: &[u64]) {
    let mut s = ok(TcpStream::connect(addr));
    ok(s.set_read_timeout(Some(WAIT)));
    ok(s.write_all(format!("GET /big HTTP/1.1\r\nRange: bytes={a}-{b}\r\n\r\n").as_bytes()));
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while ok(r.read_line(&mut line)) > 2 {
        line.clear();
    }
    let (mut at, mut buf) = (a, vec![0u8; 64 * 1024]);
    loop {
        let n = ok(r.read(&mut buf));
        if n == 0 {
            break;
        }
        for m in marks.iter().filter(|m| (at..at + n as u64).contains(m)) {
            assert_eq!(buf[(m - at) as usize], b'K', "marker at {m}");
        }
        at += n as u64;
    }
    assert_eq!(at, b + 1, "bytes {a}-{b}");
}

#[test]
fn a_200_mib_file_in_ranges_keeps_memory_flat() {
    const LEN: u64 = 200 << 20;
    let dir = case_dir("big");
    let f = ok(fs::File::create(dir.join("big")));
    ok(f.set_len(LEN));
    let marks = [0, 1 << 20, 100 << 20, LEN - 1];
    for m in marks {
        ok(std::os::unix::fs::FileExt::write_at(&f, b"K", m));
    }
    let d = dir.to_string_lossy();
    let (mut child, banner, rx) = spawn_kiln(&["--dir", &d, "--listen", "127.0.0.1:0"]);
    let url = banner.split(" on http://").nth(1).unwrap_or_default();
    let addr: SocketAddr = ok(url.trim_end_matches('/').parse());
    let r = request(addr, "HEAD /big HTTP/1.1\r\n");
    assert_eq!(r.h("content-length"), LEN.to_string());
    let before = vm_hwm_kib(child.id());
    let ranges = [
        (0, 50 << 20),
        (50 << 20, 150 << 20),
        (150 << 20, LEN),
        (LEN - 1, LEN),
    ];
    for (a, end) in ranges {
        stream_range(addr, a, end - 1, &marks);
    }
    let after = vm_hwm_kib(child.id());
    let log: Vec<String> = (0..5).map_while(|_| rx.recv_timeout(WAIT).ok()).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        after < before + 8 * 1024,
        "server peak RSS {before} KiB → {after} KiB"
    );
    let gets = log.iter().filter(|l| l.contains(" GET /big 206 ")).count();
    assert_eq!(gets, 4, "{log:?}");
    let line = log.iter().find(|l| l.contains(" GET /big 206 104857600 "));
    assert!(line.is_some_and(|l| l.starts_with("127.0.0.1:")), "{log:?}");
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let root = case_dir("bad");
    let file = root.join("file");
    put(&file, "");
    let seeds = |name: &str, macs: &str| {
        let d = root.join(name);
        ok(fs::create_dir_all(d.join("nodes/cp-1")));
        put(&d.join("macs.toml"), macs);
        format!("--dir {} --seeds {}", root.display(), d.display())
    };
    let unreadable = root.join("unreadable");
    ok(fs::create_dir_all(unreadable.join("macs.toml")));
    let busy = ok(TcpListener::bind("127.0.0.1:0"));
    let busy = ok(busy.local_addr()).to_string();
    let in_use = format!("listen on {busy}: ");
    let (r, f, u) = (root.display(), file.display(), unreadable.display());
    let cases = [
        (format!("--dir {r}/none"), "no such folder"),
        (format!("--dir {f}"), "not a folder"),
        (
            format!("--dir {r} --listen 8080"),
            "invalid --listen \"8080\"",
        ),
        (format!("--dir {r} --listen {busy}"), in_use.as_str()),
        (format!("--dir {r} --seeds {f}"), "--seeds"),
        (
            format!("--dir {r} --seeds {u}"),
            "macs.toml: Is a directory",
        ),
        (
            seeds("m1", "\"52:54:00:12:34\" = \"cp-1\""),
            "invalid MAC address \"52:54:00:12:34\"",
        ),
        (
            seeds("m2", "\"52:54:00:12:34:56\" = \"../x\""),
            "invalid node name \"../x\"",
        ),
        (
            seeds("m3", "\"52:54:00:12:34:56\" = \"cp-2\""),
            "node cp-2 has no folder",
        ),
        (seeds("m4", "\"52:54:00:12:34:56\" = ["), "macs.toml: "),
    ];
    for (line, cause) in cases {
        let mut args: Vec<&str> = line.split(' ').collect();
        if !args.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        // `timeout`: a server that wrongly starts must not hang the test.
        let mut cmd = Command::new("timeout");
        let o = ok(cmd.args(["20", KILN, "pxe", "serve"]).args(&args).output());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            (err.lines().count(), o.stdout.len()),
            (1, 0),
            "{args:?}: {err}"
        );
        let good = err.starts_with("kiln: error: ") && err.contains(cause);
        assert!(good, "{cause:?} not in {err}");
    }
}

#[test]
fn curl_agrees() {
    if Command::new("curl").arg("--version").output().is_err() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "curl missing in CI");
        println!("skipped: curl missing");
        return;
    }
    let (dir, data) = bundle("curl");
    let s = Served::start(&dir);
    let base = format!("http://{}", s.handle.local_addr());
    let curl = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        let o = ok(cmd.args(["-sS", "--max-time", "20"]).args(args).output());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "curl {args:?}: {err}");
        o.stdout
    };
    let url = format!("{base}/vmlinuz");
    assert_eq!(curl(&["-r", "0-9", &url]), &data[..10]);
    assert_eq!(curl(&["-r", "-3", &url]), &data[data.len() - 3..]);
    assert_eq!(curl(&[&url]), data);
    let head = String::from_utf8_lossy(&curl(&["-I", &url])).to_ascii_lowercase();
    for want in [
        "http/1.1 200 ok",
        "content-length: 102400",
        "accept-ranges: bytes",
    ] {
        assert!(head.contains(want), "{want} not in {head}");
    }
    let code = |args: &[&str]| {
        let out = curl(&[&["-o", "/dev/null", "-w", "%{http_code}"], args].concat());
        String::from_utf8_lossy(&out).into_owned()
    };
    assert_eq!(code(&["-r", "0-9", &url]), "206");
    assert_eq!(code(&["-r", "200000-", &url]), "416");
    assert_eq!(code(&["--path-as-is", &format!("{base}/../secret")]), "404");
    assert_eq!(code(&[&format!("{base}/%2e%2e/secret")]), "404");
    assert_eq!(code(&[&format!("{base}/seeds/{MAC}/user-data")]), "404");
}
