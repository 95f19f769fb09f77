//! A small etcd v3 client over the HTTP/JSON gateway: TLS with a client certificate
//! (rustls, ring), one HTTP/1.1 request per connection, endpoints tried in order.
//!
//! Retries: reads (member list, get, snapshot, health) move on to the next endpoint after
//! any failure; writes (member add/remove, put) only when the request certainly did not
//! reach etcd (connect or TLS handshake failed), so a member is never added twice.
//!
//! Timeouts: for ordinary requests `timeout` bounds the whole exchange; a snapshot may
//! take longer, so there it bounds connect, handshake and each wait for more data.

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::gateway::{self, Member};
use super::http::{self, Body, Bounded};
use super::snapshot::{self, Fail, SnapshotInfo};
use super::{EtcdError, RequestError};

/// Largest ordinary answer accepted (etcd's request limit is 1.5 MiB, base64 adds 1/3).
const MAX_ANSWER: u64 = 8 << 20;

type Tls = StreamOwned<ClientConnection, Bounded>;

/// An etcd client for a fixed list of client endpoints (`10.0.0.11:2379`).
#[derive(Debug, Clone)]
pub struct Client {
    endpoints: Vec<SocketAddr>,
    config: Arc<ClientConfig>,
    timeout: Duration,
}

/// A PEM input and the name errors call it by.
struct Pem<'a> {
    name: String,
    bytes: &'a [u8],
}

impl<'a> Pem<'a> {
    fn of((name, bytes): &'a (String, Vec<u8>)) -> Self {
        Self {
            name: name.clone(),
            bytes,
        }
    }
}

impl Client {
    /// Trusts `<pki_dir>/etcd/ca.crt` and authenticates with the healthcheck client
    /// certificate (`etcd/healthcheck-client.{crt,key}`).
    pub fn new(
        pki_dir: &Path,
        endpoints: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        let dir = pki_dir.join("etcd");
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path)
                .map(|bytes| (path.display().to_string(), bytes))
                .map_err(|source| EtcdError::Read { path, source })
        };
        let (ca, cert, key) = (
            read("ca.crt")?,
            read("healthcheck-client.crt")?,
            read("healthcheck-client.key")?,
        );
        let config = tls_config(&Pem::of(&ca), &Pem::of(&cert), &Pem::of(&key))?;
        Self::with_config(config, endpoints, timeout)
    }

    /// The same from PEM text: CA certificate(s), client certificate chain, its key.
    pub fn from_pem(
        ca: &[u8],
        cert: &[u8],
        key: &[u8],
        endpoints: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        let pem = |name: &str, bytes| Pem {
            name: name.to_string(),
            bytes,
        };
        let config = tls_config(
            &pem("etcd CA", ca),
            &pem("client certificate", cert),
            &pem("client key", key),
        )?;
        Self::with_config(config, endpoints, timeout)
    }

    fn with_config(
        config: Arc<ClientConfig>,
        endpoints: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        Ok(Self {
            endpoints,
            config,
            timeout,
        })
    }

    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// All members, as the answering member knows them.
    pub fn member_list(&self) -> Result<Vec<Member>, EtcdError> {
        let path = "/v3/cluster/member/list";
        self.unary(
            "member list",
            false,
            path,
            gateway::EMPTY,
            gateway::parse_members,
        )
    }

    /// Adds a (voting) member with these peer URLs: the new member and all members.
    pub fn member_add(&self, peer_urls: &[String]) -> Result<(Member, Vec<Member>), EtcdError> {
        let body = gateway::member_add_body(peer_urls);
        let path = "/v3/cluster/member/add";
        self.unary("member add", true, path, &body, gateway::parse_member_add)
    }

    /// Removes a member: the members left.
    pub fn member_remove(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        let body = gateway::member_remove_body(id);
        let path = "/v3/cluster/member/remove";
        self.unary("member remove", true, path, &body, gateway::parse_members)
    }

    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), EtcdError> {
        let body = gateway::put_body(key, value);
        self.unary("put", true, "/v3/kv/put", &body, gateway::parse_object)
    }

    /// The value of `key`, `None` when it does not exist.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EtcdError> {
        let body = gateway::range_body(key);
        self.unary("get", false, "/v3/kv/range", &body, gateway::parse_range)
    }

    /// Streams a snapshot of the answering member's database to `dest` (through
    /// `dest.tmp`, fsync, rename; mode 0600). The file ends with etcd's sha256 of the
    /// data, as `etcdctl snapshot save` writes it; it is checked here and by etcdutl.
    pub fn snapshot(&self, dest: &Path) -> Result<SnapshotInfo, EtcdError> {
        self.each("snapshot", false, |endpoint| {
            let path = "/v3/maintenance/snapshot";
            let mut answer = self
                .send(endpoint, None, "POST", path, gateway::EMPTY)
                .map_err(Fail::Remote)?;
            if answer.status != 200 {
                return Err(Fail::Remote(answer.error()));
            }
            snapshot::receive(&mut answer.body, dest, self.timeout)
        })
    }

    /// `Ok` when an endpoint's `GET /health` (on the TLS client URL, a linearizable
    /// check: the member has a leader and quorum) says `"health":"true"`.
    pub fn check_health(&self) -> Result<(), EtcdError> {
        self.each("health", false, |endpoint| {
            let end = Some(Instant::now() + self.timeout);
            let answer = self.send(endpoint, end, "GET", "/health", b"");
            let (status, body) = answer.and_then(Answer::read).map_err(Fail::Remote)?;
            match gateway::parse_health(&body) {
                Ok(Ok(())) if status == 200 => Ok(()),
                Ok(Err(message)) => Err(Fail::Remote(RequestError::Status { status, message })),
                _ => Err(Fail::Remote(RequestError::Status {
                    status,
                    message: gateway::error_message(&body),
                })),
            }
        })
    }

    /// `check_health` as a yes/no.
    pub fn health(&self) -> bool {
        self.check_health().is_ok()
    }

    /// POSTs `body` to `path` and decodes a 200 answer with `parse`.
    fn unary<T>(
        &self,
        op: &'static str,
        write: bool,
        path: &str,
        body: &[u8],
        parse: fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, EtcdError> {
        self.each(op, write, |endpoint| {
            let end = Some(Instant::now() + self.timeout);
            let answer = self.send(endpoint, end, "POST", path, body);
            let (status, bytes) = answer.and_then(Answer::read).map_err(Fail::Remote)?;
            if status != 200 {
                let message = gateway::error_message(&bytes);
                return Err(Fail::Remote(RequestError::Status { status, message }));
            }
            parse(&bytes).map_err(|e| Fail::Remote(RequestError::Malformed(e)))
        })
    }

    /// Runs `attempt` against each endpoint in turn, as the retry rules allow.
    fn each<T>(
        &self,
        op: &'static str,
        write: bool,
        mut attempt: impl FnMut(SocketAddr) -> Result<T, Fail>,
    ) -> Result<T, EtcdError> {
        let mut earlier = Vec::new();
        for (i, &endpoint) in self.endpoints.iter().enumerate() {
            let source = match attempt(endpoint) {
                Ok(value) => return Ok(value),
                Err(Fail::Local(e)) => return Err(e),
                Err(Fail::Remote(e)) => e,
            };
            let last = i + 1 == self.endpoints.len();
            if last || (write && source.may_have_arrived()) {
                return Err(EtcdError::Request {
                    endpoint,
                    op,
                    earlier,
                    source,
                });
            }
            earlier.push((endpoint, source));
        }
        Err(EtcdError::NoEndpoints)
    }

    /// Connects, completes the TLS handshake, sends one request and reads the head.
    /// `end` bounds the whole exchange; `None` bounds only each wait.
    fn send(
        &self,
        endpoint: SocketAddr,
        end: Option<Instant>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Answer, RequestError> {
        let mut sock = Bounded::connect(endpoint, end, self.timeout)?;
        let name = ServerName::from(endpoint.ip());
        let mut conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| RequestError::Handshake(e.to_string()))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| handshake_error(e, self.timeout))?;
        }
        let mut tls = StreamOwned::new(conn, sock);
        let body = (method == "POST").then_some(body);
        let request = http::request(method, endpoint, path, body);
        let sent = tls.write_all(&request).and_then(|()| tls.flush());
        sent.map_err(|e| http::io_error("send request", e, self.timeout))?;
        let mut reader = BufReader::new(tls);
        let head = http::read_head(&mut reader)
            .map_err(|e| http::io_error("read answer", e, self.timeout))?;
        Ok(Answer {
            status: head.status,
            body: Body::new(reader, head.framing),
            timeout: self.timeout,
        })
    }
}

/// A response whose head has been read.
struct Answer {
    status: u16,
    body: Body<BufReader<Tls>>,
    timeout: Duration,
}

impl Answer {
    /// Status and the whole body (at most `MAX_ANSWER` bytes).
    fn read(self) -> Result<(u16, Vec<u8>), RequestError> {
        let mut bytes = Vec::new();
        let timeout = self.timeout;
        self.body
            .take(MAX_ANSWER + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| http::io_error("read answer", e, timeout))?;
        if bytes.len() as u64 > MAX_ANSWER {
            return Err(RequestError::Malformed(format!(
                "answer larger than {MAX_ANSWER} bytes"
            )));
        }
        Ok((self.status, bytes))
    }

    /// The error of a non-200 answer (reads the body for the gateway's message).
    fn error(&mut self) -> RequestError {
        let status = self.status;
        let mut bytes = Vec::new();
        let limited = (&mut self.body).take(MAX_ANSWER).read_to_end(&mut bytes);
        let message = match limited {
            Ok(_) => gateway::error_message(&bytes),
            Err(e) => format!("(answer unreadable: {e})"),
        };
        RequestError::Status { status, message }
    }
}

/// Says in words when the server's certificate is not from the trusted CA.
fn handshake_error(e: std::io::Error, timeout: Duration) -> RequestError {
    use rustls::CertificateError::{BadSignature, UnknownIssuer};
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    RequestError::Handshake(match tls {
        Some(t @ rustls::Error::InvalidCertificate(UnknownIssuer | BadSignature)) => {
            format!(
                "{t} (the server's certificate is not signed by the etcd CA this client trusts)"
            )
        }
        Some(t) => t.to_string(),
        None => http::io_error("handshake", e, timeout).to_string(),
    })
}

fn tls_config(ca: &Pem, cert: &Pem, key: &Pem) -> Result<Arc<ClientConfig>, EtcdError> {
    let setup =
        |what: &Pem, e: &dyn std::fmt::Display| EtcdError::TlsSetup(format!("{}: {e}", what.name));
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca.bytes) {
        let der = der.map_err(|e| setup(ca, &e))?;
        roots.add(der).map_err(|e| setup(ca, &e))?;
    }
    if roots.is_empty() {
        return Err(setup(ca, &"no certificate in the PEM"));
    }
    let chain = CertificateDer::pem_slice_iter(cert.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(cert, &e))?;
    if chain.is_empty() {
        return Err(setup(cert, &"no certificate in the PEM"));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key.bytes).map_err(|e| setup(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EtcdError::TlsSetup(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| setup(key, &format!("does not fit the client certificate: {e}")))?;
    Ok(Arc::new(config))
}
