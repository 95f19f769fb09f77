//! Test support: cluster settings, certificates made with `crate::pki`, and a fake etcd
//! gateway (a rustls server on 127.0.0.1 that requires client certificates, records
//! every request and answers with scripted bytes, written piece by piece).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use crate::cluster::ClusterSettings;
use crate::pki::{self, CertKey, Leaf, Usage};

pub(super) fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Settings for node `cp-1` of cluster `dev` (control planes cp-1 = 10.0.0.11 and
/// cp-2 = 10.0.0.12) at `address`, with `etcd_ca` if given.
pub(super) fn settings(address: &str, etcd_ca: Option<&CertKey>) -> ClusterSettings {
    let ca = ok(pki::new_ca("kubernetes", 24));
    let mut text = format!(
        "name: dev\naddress: {address}\ncontrol_planes:\n\
         - {{name: cp-1, address: 10.0.0.11}}\n- {{name: cp-2, address: 10.0.0.12}}\n\
         bootstrap_token: abcdef.0123456789abcdef\nca:\n  cert: {:?}\n",
        ca.cert_pem
    );
    if let Some(e) = etcd_ca {
        text.push_str(&format!(
            "etcd_ca:\n  cert: {:?}\n  key: {:?}\n",
            e.cert_pem, e.key_pem
        ));
    }
    ok(serde_saphyr::from_str::<ClusterSettings>(&text))
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all from it.
pub(super) struct TestPki {
    pub ca: CertKey,
    pub server: CertKey,
    pub client: CertKey,
}

pub(super) fn test_pki() -> TestPki {
    let ca = ok(pki::new_ca("etcd-ca", 48));
    let ips = [IpAddr::from([127, 0, 0, 1])];
    let issue = |cn: &str, usage, ips: &[IpAddr]| {
        let leaf = Leaf {
            common_name: cn,
            organization: None,
            dns: &[],
            ips,
            usage,
            validity_hours: 24,
        };
        ok(pki::issue(&ca, &leaf))
    };
    let server = issue("cp-1", Usage::ServerAndClient, &ips);
    let client = issue("kube-etcd-healthcheck-client", Usage::Client, &[]);
    TestPki { ca, server, client }
}

/// A server config presenting `server` and requiring client certificates of `client_ca`.
pub(super) fn server_config(server: &CertKey, client_ca: &CertKey) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    ok(roots.add(ok(CertificateDer::from_pem_slice(
        client_ca.cert_pem.as_bytes(),
    ))));
    let verifier =
        ok(WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build());
    let chain = vec![ok(CertificateDer::from_pem_slice(
        server.cert_pem.as_bytes(),
    ))];
    let key = ok(PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()));
    let config =
        ok(ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions())
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key);
    Arc::new(ok(config))
}

/// A request as the fake gateway received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<String>,
    pub body: String,
}

/// Answers a request with bytes to write, one `write` + `flush` per piece.
pub(super) type Handler = Arc<dyn Fn(&Request) -> Vec<Vec<u8>> + Send + Sync>;

pub(super) struct Fake {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Fake {
    pub(super) fn seen(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Serves until the test process ends.
pub(super) fn serve(config: Arc<ServerConfig>, handler: Handler) -> Fake {
    let listener = ok(TcpListener::bind("127.0.0.1:0"));
    let addr = ok(listener.local_addr());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let (config, handler, log) = (config.clone(), handler.clone(), log.clone());
            thread::spawn(move || {
                let Ok(conn) = ServerConnection::new(config) else {
                    return;
                };
                let mut tls = StreamOwned::new(conn, sock);
                let Some(request) = read_request(&mut tls) else {
                    return;
                };
                if let Ok(mut l) = log.lock() {
                    l.push(request.clone());
                }
                for piece in handler(&request) {
                    if tls.write_all(&piece).and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    Fake { addr, requests }
}

fn read_request<S: Read>(stream: S) -> Option<Request> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("Content-Length: ") {
            length = v.parse().ok()?;
        }
        headers.push(h);
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

/// One answer with a Content-Length.
pub(super) fn answer(status: &str, body: &str) -> Vec<Vec<u8>> {
    vec![format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()]
}

/// A chunked answer: the head, then one piece per chunk, then the last chunk.
pub(super) fn chunked(status: &str, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut pieces = vec![format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes()];
    for c in chunks {
        let mut piece = format!("{:x}\r\n", c.len()).into_bytes();
        piece.extend_from_slice(c);
        piece.extend_from_slice(b"\r\n");
        pieces.push(piece);
    }
    pieces.push(b"0\r\n\r\n".to_vec());
    pieces
}

/// The snapshot stream etcd sends for `db` in blobs of `blob` bytes: data messages,
/// then the sha256 trailer (`remaining_bytes` left out when zero, as the gateway does).
pub(super) fn snapshot_stream(db: &[u8], blob: usize) -> Vec<u8> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let header = r#""header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"7","raft_term":"2"}"#;
    let mut out = Vec::new();
    let mut sent = 0;
    for piece in db.chunks(blob) {
        sent += piece.len();
        let remaining = db.len() - sent;
        let rem = if remaining > 0 {
            format!(r#","remaining_bytes":"{remaining}""#)
        } else {
            String::new()
        };
        let msg = format!(r#"{{"result":{{{header}{rem},"blob":"{}"}}}}"#, b64(piece));
        out.extend_from_slice(msg.as_bytes());
        out.push(b'\n');
    }
    let sha = ring::digest::digest(&ring::digest::SHA256, db);
    let msg = format!(
        r#"{{"result":{{{header},"blob":"{}"}}}}"#,
        b64(sha.as_ref())
    );
    out.extend_from_slice(msg.as_bytes());
    out.push(b'\n');
    out
}

/// A made-up database: `n` bytes of a fixed pattern.
pub(super) fn fake_db(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}
