//! Trust for HTTPS probes: a rustls client configuration (ring provider, TLS 1.2/1.3)
//! that verifies backends against the cluster CA, or accepts any certificate when the
//! operator explicitly asked for `insecure`. Also builds a `Prober` from a `Check`.
//!
//! Owns certificate parsing and verification policy; sockets stay in probe.rs.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{HttpProber, HttpsProber, Prober, TcpProber};

/// How HTTPS probes decide to trust a backend. There is deliberately no "system roots"
/// choice: API servers present certificates of the cluster's own CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// PEM text holding one or more CA certificates.
    CaPem(Vec<u8>),
    /// Accept any certificate (still TLS, no authentication). Only when asked for.
    Insecure,
}

/// The kind of health check, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Tcp,
    Http {
        path: String,
    },
    Https {
        path: String,
        trust: Trust,
        /// Name the certificate must carry; `None` means the backend's IP address.
        server_name: Option<String>,
    },
}

/// Errors setting up TLS trust.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("read CA PEM")]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error("the CA PEM holds no certificate")]
    NoCertificate,
    #[error("add CA certificate {index}")]
    BadCa {
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("configure TLS versions")]
    Versions(#[source] rustls::Error),
}

/// The prober a `Check` describes.
pub fn prober(check: &Check) -> Result<Arc<dyn Prober>, TlsSetupError> {
    Ok(match check {
        Check::Tcp => Arc::new(TcpProber),
        Check::Http { path } => Arc::new(HttpProber::new(path)),
        Check::Https {
            path,
            trust,
            server_name,
        } => {
            let name = server_name.as_deref().map(parse_server_name).transpose()?;
            Arc::new(HttpsProber::new(path, client_config(trust)?, name))
        }
    })
}

/// A client configuration for `trust`, with no client certificate.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Versions)?;
    let config = match trust {
        Trust::CaPem(pem) => builder
            .with_root_certificates(roots(pem)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A DNS name or an IP address literal.
pub fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsSetupError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(name.to_owned()).map_err(|_| TlsSetupError::ServerName(name.into()))
}

fn roots(pem: &[u8]) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(TlsSetupError::Pem)?;
        store
            .add(cert)
            .map_err(|source| TlsSetupError::BadCa { index, source })?;
    }
    if store.is_empty() {
        return Err(TlsSetupError::NoCertificate);
    }
    Ok(store)
}

/// `insecure`: skips certificate verification but still checks the handshake
/// signatures, so the peer at least holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
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
