//! HTTP(S) for the stand-in over rustls (ring): a blocking GET client that verifies the
//! server against a CA (or, for discovery's first look, accepts any certificate, as
//! kubeadm's insecure cluster-info fetch does), and a small HTTP/1.1 server (one thread
//! per connection, `Connection: close`). Client errors read like Go's net/http ones.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// Whom the client trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Certificates (PEM) of the CAs the server must chain to.
    Ca(String),
    /// Any certificate (discovery before the CA is known).
    Anything,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?;
    let config = match trust {
        Trust::Ca(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| anyhow!("read the CA PEM: {e}"))?;
                roots.add(cert).context("add the CA certificate")?;
            }
            if roots.is_empty() {
                bail!("no CA certificate in the PEM");
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET https://{host}:{port}{path}` at `addr`, `host` being what the certificate must name.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    bearer: Option<&str>,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Response> {
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let url = format!("https://{shown}:{}{path}", addr.port());
    let go_err = |what: String| anyhow!("Get \"{url}\": {what}");
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| go_err(format!("dial tcp {addr}: connect: {}", io_words(&e))))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| go_err(format!("invalid server name {host:?}")))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| go_err(e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {shown}:{}\r\nUser-Agent: kube-standin\r\n\
         Accept: application/json, */*\r\n{auth}Connection: close\r\n\r\n",
        addr.port()
    );
    tls.write_all(request.as_bytes())
        .and_then(|()| tls.flush())
        .map_err(|e| go_err(tls_words(&e)))?;
    let mut raw = Vec::new();
    if let Err(e) = tls.read_to_end(&mut raw) {
        if e.kind() != io::ErrorKind::UnexpectedEof || raw.is_empty() {
            return Err(go_err(tls_words(&e)));
        }
    }
    parse_response(&raw).map_err(|e| go_err(e.to_string()))
}

/// `GET http://{addr}{path}` (the kubelet's healthz).
pub fn get_plain(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response> {
    let go_err = |what: String| anyhow!("Get \"http://{addr}{path}\": {what}");
    let mut tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| go_err(format!("dial tcp {addr}: connect: {}", io_words(&e))))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    tcp.write_all(request.as_bytes())
        .and_then(|()| tcp.read_to_end(&mut raw))
        .map_err(|e| go_err(io_words(&e)))?;
    parse_response(&raw).map_err(|e| go_err(e.to_string()))
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed HTTP status line"))?;
    Ok(Response {
        status,
        body: raw[end + 4..].to_vec(),
    })
}

fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

fn tls_words(e: &io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            format!("tls: failed to verify certificate: x509: {c:?}")
        }
        Some(other) => format!("tls: {other}"),
        None => io_words(e),
    }
}

/// A server certificate chain and key from PEM.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("read the certificate PEM: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow!("read the key PEM: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key")?;
    Ok(Arc::new(config))
}

/// What the server hands the handler.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub bearer: Option<String>,
    pub peer: SocketAddr,
}

/// What the handler answers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
    pub fn json(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body,
        }
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Serves `listener` forever, TLS when `tls` is set.
pub fn serve(listener: TcpListener, tls: Option<Arc<ServerConfig>>, handler: Handler) {
    for stream in listener.incoming().flatten() {
        let (tls, handler) = (tls.clone(), handler.clone());
        std::thread::spawn(move || {
            let Ok(peer) = stream.peer_addr() else { return };
            stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
            stream.set_write_timeout(Some(Duration::from_secs(10))).ok();
            match tls {
                None => answer(stream, peer, &handler),
                Some(config) => {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut s = rustls::StreamOwned::new(conn, stream);
                    answer(&mut s, peer, &handler);
                    s.conn.send_close_notify();
                    s.flush().ok();
                }
            }
        });
    }
}

fn answer(mut s: impl Read + Write, peer: SocketAddr, handler: &Handler) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let bearer = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let token = value.trim().strip_prefix("Bearer ")?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| token.to_string())
    });
    let request = Request {
        method: method.to_string(),
        path: path.split('?').next().unwrap_or("").to_string(),
        bearer,
        peer,
    };
    let reply = handler(&request);
    let reason = match reply.status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(&reply.body))
        .and_then(|()| s.flush())
        .ok();
}
