#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Probers against listeners spawned on 127.0.0.1 ephemeral ports; HTTPS uses the
//! fixtures in `init/testdata/lb/` (see the README there).
use super::*;
use crate::lb::health::{HealthConfig, State, SystemClock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{IpAddr, TcpListener};
use std::thread;

const CA: &[u8] = include_bytes!("../../testdata/lb/ca.pem");
const OTHER_CA: &[u8] = include_bytes!("../../testdata/lb/other-ca.pem");
const SERVER_CERT: &[u8] = include_bytes!("../../testdata/lb/server.pem");
const SERVER_KEY: &[u8] = include_bytes!("../../testdata/lb/server.key");

const MS: Duration = Duration::from_millis(1);
/// How late a timed-out probe may return (thread scheduling on a loaded 2-core box).
const SLACK: Duration = Duration::from_millis(250);

/// What a test server does with each connection.
#[derive(Clone, Copy)]
enum Serve {
    /// Read the request, answer with these bytes, close.
    Answer(&'static str),
    /// Accept and never send anything.
    Hang,
    /// Send the bytes one per 50 ms, forever.
    Trickle,
}

fn serve_conn<S: Read + Write>(stream: &mut S, how: Serve) {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => return,
        }
    }
    match how {
        Serve::Answer(text) => {
            let _ = stream.write_all(text.as_bytes());
            let _ = stream.flush();
        }
        Serve::Hang => thread::sleep(Duration::from_secs(5)),
        Serve::Trickle => loop {
            if stream
                .write_all(b"H")
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            thread::sleep(50 * MS);
        },
    }
}

/// Serves plain HTTP (or, with `tls`, HTTPS) on an ephemeral port until the test ends.
fn server(how: Serve, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            let tls = tls.clone();
            thread::spawn(move || match tls {
                None => serve_conn(&mut sock, how),
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    serve_conn(&mut StreamOwned::new(conn, sock), how);
                }
            });
        }
    });
    addr
}

fn tls_server_config() -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(SERVER_CERT)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn timed(prober: &dyn Prober, target: SocketAddr, deadline: Duration) -> (ProbeResult, Duration) {
    let start = Instant::now();
    let result = prober.probe(target, deadline);
    (result, start.elapsed())
}

#[test]
fn status_line_parsing() {
    let malformed = Err(ProbeError::Malformed("bad status line"));
    let table: [(&[u8], Result<u16, ProbeError>); 9] = [
        (b"HTTP/1.1 200 OK", Ok(200)),
        (b"HTTP/1.0 500 Internal Server Error", Ok(500)),
        (b"HTTP/1.1 204", Ok(204)),
        (b"HTTP/2 200", malformed.clone()),
        (b"HTTP/1.1 20", malformed.clone()),
        (b"HTTP/1.1 2000", malformed.clone()),
        (b"HTTP/1.1  200", malformed.clone()),
        (b"SSH-2.0-OpenSSH", malformed.clone()),
        (b"", malformed.clone()),
    ];
    for (line, want) in table {
        assert_eq!(
            parse_status_line(line),
            want,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn tcp_open_and_closed() {
    let open = server(Serve::Hang, None);
    assert_eq!(TcpProber.probe(open, Duration::from_secs(1)), Ok(()));
    let refused = Err(ProbeError::Connect(io::ErrorKind::ConnectionRefused));
    assert_eq!(
        TcpProber.probe(closed_port(), Duration::from_secs(1)),
        refused
    );
}

#[test]
fn http_answers() {
    let table = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Ok(())),
        ("HTTP/1.0 200 OK\r\n\r\n", Ok(())),
        ("HTTP/1.1 200 OK\r\n\r\nnot ok at all", Ok(())),
        (
            "HTTP/1.1 500 Internal Server Error\r\n\r\n",
            Err(ProbeError::Status(500)),
        ),
        (
            "HTTP/1.1 403 Forbidden\r\n\r\n",
            Err(ProbeError::Status(403)),
        ),
        (
            "HTTP/1.1 200",
            Err(ProbeError::Malformed(
                "connection closed before the status line",
            )),
        ),
        (
            "220 smtp ready\r\n",
            Err(ProbeError::Malformed("bad status line")),
        ),
    ];
    let prober = HttpProber::new("/healthz");
    for (answer, want) in table {
        let target = server(Serve::Answer(answer), None);
        assert_eq!(
            prober.probe(target, Duration::from_secs(2)),
            want,
            "{answer:?}"
        );
    }
}

#[test]
fn http_sends_a_plain_get() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let got = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && sock.read(&mut byte).unwrap() == 1 {
            request.push(byte[0]);
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        String::from_utf8(request).unwrap()
    });
    assert_eq!(
        HttpProber::new("/healthz").probe(target, Duration::from_secs(2)),
        Ok(())
    );
    let request = got.join().unwrap();
    assert!(
        request.starts_with("GET /healthz HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("\r\nHost: {target}\r\n")),
        "{request}"
    );
}

#[test]
fn deadlines_are_honoured() {
    let deadline = 300 * MS;
    let https = HttpsProber::new(
        "/healthz",
        client_config(&Trust::CaPem(CA.to_vec())).unwrap(),
        None,
    );
    let cases: [(&str, &dyn Prober, SocketAddr); 3] = [
        (
            "http hang",
            &HttpProber::new("/healthz"),
            server(Serve::Hang, None),
        ),
        (
            "http trickle",
            &HttpProber::new("/healthz"),
            server(Serve::Trickle, None),
        ),
        // A TCP listener that never speaks TLS: the handshake hangs.
        ("https handshake hang", &https, server(Serve::Hang, None)),
    ];
    for (name, prober, target) in cases {
        let (result, took) = timed(prober, target, deadline);
        assert_eq!(result, Err(ProbeError::Timeout(deadline)), "{name}");
        assert!(
            took >= deadline - 10 * MS && took < deadline + SLACK,
            "{name}: took {took:?}"
        );
    }
}

#[test]
fn https_verification() {
    let ca = Trust::CaPem(CA.to_vec());
    let other = Trust::CaPem(OTHER_CA.to_vec());
    let ok = "HTTP/1.1 200 OK\r\n\r\nok";
    let bad = "HTTP/1.1 500 Internal Server Error\r\n\r\n";
    let tls_failed = |r: &ProbeResult| matches!(r, Err(ProbeError::Tls(_)));
    // (name, trust, server name, answer, expectation)
    type Expect = fn(&ProbeResult) -> bool;
    let table: [(&str, &Trust, Option<&str>, &'static str, Expect); 7] = [
        ("cluster CA, IP SAN", &ca, None, ok, |r| r.is_ok()),
        ("cluster CA, status 500", &ca, None, bad, |r| {
            *r == Err(ProbeError::Status(500))
        }),
        (
            "configured DNS name",
            &ca,
            Some("apiserver.kiln.test"),
            ok,
            |r| r.is_ok(),
        ),
        ("wrong name", &ca, Some("other.kiln.test"), ok, tls_failed),
        ("unrelated CA", &other, None, ok, tls_failed),
        ("insecure accepts any", &Trust::Insecure, None, ok, |r| {
            r.is_ok()
        }),
        (
            "insecure, wrong name",
            &Trust::Insecure,
            Some("other.kiln.test"),
            ok,
            |r| r.is_ok(),
        ),
    ];
    let config = tls_server_config();
    for (name, trust, server_name, answer, expect) in table {
        let target = server(Serve::Answer(answer), Some(config.clone()));
        let check = Check::Https {
            path: "/healthz".into(),
            trust: trust.clone(),
            server_name: server_name.map(String::from),
        };
        let result = prober(&check)
            .unwrap()
            .probe(target, Duration::from_secs(2));
        assert!(expect(&result), "{name}: {result:?}");
    }
}

#[test]
fn tls_setup_errors() {
    let garbage = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec();
    let cases = [
        (Trust::CaPem(Vec::new()), "no certificate"),
        (Trust::CaPem(SERVER_KEY.to_vec()), "no certificate"),
        (Trust::CaPem(garbage), "pem"),
    ];
    for (trust, want) in cases {
        let got = match client_config(&trust) {
            Err(TlsSetupError::NoCertificate) => "no certificate",
            Err(TlsSetupError::Pem(_)) => "pem",
            other => panic!("{want}: {other:?}"),
        };
        assert_eq!(got, want);
    }
    assert!(
        matches!(parse_server_name("bad name!"), Err(TlsSetupError::ServerName(n)) if n == "bad name!")
    );
    assert_eq!(
        parse_server_name("10.0.0.1").unwrap(),
        ServerName::from(IpAddr::from([10, 0, 0, 1]))
    );
}

/// A prober that answers after a per-target delay.
struct Slow(Vec<(SocketAddr, Duration, ProbeResult)>);

impl Prober for Slow {
    fn probe(&self, target: SocketAddr, _deadline: Duration) -> ProbeResult {
        let (_, delay, result) = self.0.iter().find(|(a, _, _)| *a == target).unwrap();
        thread::sleep(*delay);
        result.clone()
    }
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 6443))
}

#[test]
fn hanging_probe_does_not_hold_back_others() {
    let (slow, fast) = (addr(1), addr(2));
    let prober = Slow(vec![
        (slow, Duration::from_secs(2), Ok(())),
        (fast, Duration::ZERO, Ok(())),
    ]);
    let mut monitor = Monitor::new(
        HealthTable::new(HealthConfig::default(), Arc::new(SystemClock)),
        Arc::new(prober),
    );
    monitor.table_mut().set_backends([slow, fast]);
    let start = Instant::now();
    let step = monitor.step(Duration::from_secs(1));
    assert!(start.elapsed() < 500 * MS, "took {:?}", start.elapsed());
    assert_eq!(step.transitions.len(), 1);
    assert_eq!(
        (step.transitions[0].backend, step.transitions[0].to),
        (fast, State::Up)
    );
    assert_eq!(monitor.table().state(&slow), State::Unknown);
}

#[test]
fn monitor_follows_real_probes_to_down() {
    let (good, dead) = (
        server(Serve::Answer("HTTP/1.1 200 OK\r\n\r\n"), None),
        closed_port(),
    );
    let config = HealthConfig {
        interval: 50 * MS,
        timeout: 200 * MS,
        rise: 2,
        fall: 2,
    };
    let mut monitor = Monitor::new(
        HealthTable::new(config, Arc::new(SystemClock)),
        Arc::new(HttpProber::new("/healthz")),
    );
    monitor.table_mut().set_backends([good, dead]);
    let start = Instant::now();
    let mut seen = Vec::new();
    while monitor.table().state(&dead) != State::Down && start.elapsed() < Duration::from_secs(3) {
        seen.extend(monitor.step(Duration::from_secs(1)).transitions);
    }
    let changes: Vec<_> = seen.iter().map(|t| (t.backend, t.from, t.to)).collect();
    assert!(
        changes.contains(&(good, State::Unknown, State::Up)),
        "{changes:?}"
    );
    let dead_changes: Vec<_> = changes.iter().filter(|c| c.0 == dead).collect();
    assert_eq!(
        dead_changes,
        [
            &(dead, State::Unknown, State::Draining),
            &(dead, State::Draining, State::Down)
        ]
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn waker_interrupts_the_wait() {
    let mut monitor = Monitor::new(
        HealthTable::new(HealthConfig::default(), Arc::new(SystemClock)),
        Arc::new(TcpProber),
    );
    let waker = monitor.waker();
    let start = Instant::now();
    thread::spawn(move || {
        thread::sleep(50 * MS);
        waker.wake();
    });
    let step = monitor.step(Duration::from_secs(5));
    assert!(step.woken);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}
