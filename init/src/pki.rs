//! X.509 for the cluster: certificate authorities, leaf certificates signed by them, key
//! pairs and the kubeadm discovery hash. ECDSA P-256 keys, PKCS#8 PEM, random serials;
//! every certificate starts one hour in the past so a node whose clock lags still accepts
//! it.
//!
//! Pure functions over PEM text: no files, no clock other than "now". Callers decide where
//! certificates live and when to renew them (`not_after`).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SecureRandom;
use x509_parser::certificate::X509Certificate;

/// How far back every certificate's validity starts (clock skew between nodes).
pub const BACKDATE: Duration = Duration::from_secs(3600);

/// A certificate (or, from `new_key_pair`, a public key) and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertKey { cert_pem: …, key_pem: … }")
    }
}

/// Why a certificate or key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generate an ECDSA P-256 key pair")]
    Generate(#[source] rcgen::Error),
    #[error("read the private key PEM")]
    Key(#[source] rcgen::Error),
    #[error("read the certificate PEM: not one -----BEGIN CERTIFICATE----- block")]
    CertPem,
    #[error("parse the certificate DER")]
    CertDer,
    #[error("certificate {0:?} is not a CA (basicConstraints CA:FALSE or absent)")]
    NotCa(String),
    #[error("the CA private key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("invalid DNS name {0:?} for a certificate")]
    DnsName(String),
    #[error("validity must be at least 1 hour")]
    Validity,
    #[error("sign certificate {0:?}")]
    Sign(String, #[source] rcgen::Error),
    #[error("read randomness from the operating system")]
    Random,
}

/// Extended key usage of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    ServerAndClient,
}

/// What a leaf certificate says.
#[derive(Debug, Clone)]
pub struct Leaf<'a> {
    pub common_name: &'a str,
    pub organization: Option<&'a str>,
    pub dns: &'a [String],
    pub ips: &'a [IpAddr],
    pub usage: Usage,
    pub validity_hours: u32,
}

/// A self-signed CA: `CA:TRUE` (critical), keyCertSign + cRLSign + digitalSignature, SKI.
pub fn new_ca(common_name: &str, validity_hours: u32) -> Result<CertKey, PkiError> {
    let key = generate()?;
    let mut params = base_params(common_name, None, validity_hours, None)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| PkiError::Sign(common_name.to_string(), e))?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A leaf signed by `ca` (PEM certificate and PKCS#8 key): AKI = the CA's SKI, `CA:FALSE`,
/// digitalSignature + keyEncipherment, serverAuth and/or clientAuth. Never outlives the CA.
pub fn issue(ca: &CertKey, leaf: &Leaf) -> Result<CertKey, PkiError> {
    let ca_der = cert_der(&ca.cert_pem)?;
    let ca_cert = parse_der(&ca_der)?;
    if !ca_cert.is_ca() {
        return Err(PkiError::NotCa(subject_cn(&ca_cert)));
    }
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(PkiError::Key)?;
    if ca_key.subject_public_key_info() != ca_cert.tbs_certificate.subject_pki.raw {
        return Err(PkiError::KeyMismatch);
    }
    let ca_end = unix_time(ca_cert.validity().not_after.timestamp());
    let issuer = Issuer::from_ca_cert_der(&ca_der.as_slice().into(), ca_key)
        .map_err(|_| PkiError::CertDer)?;

    let key = generate()?;
    let mut params = base_params(
        leaf.common_name,
        leaf.organization,
        leaf.validity_hours,
        Some(ca_end),
    )?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match leaf.usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    for name in leaf.dns {
        let dns = Some(name.as_str())
            .filter(|n| dns_name_ok(n))
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| PkiError::DnsName(name.clone()))?;
        params.subject_alt_names.push(SanType::DnsName(dns));
    }
    params
        .subject_alt_names
        .extend(leaf.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| PkiError::Sign(leaf.common_name.to_string(), e))?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A bare key pair (e.g. the service-account signing key): `cert_pem` holds the public key
/// (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo), `key_pem` the PKCS#8 private key.
pub fn new_key_pair() -> Result<CertKey, PkiError> {
    let key = generate()?;
    Ok(CertKey {
        cert_pem: key.public_key_pem(),
        key_pem: key.serialize_pem(),
    })
}

/// kubeadm's `--discovery-token-ca-cert-hash`: `sha256:` + hex of the SHA-256 of the
/// certificate's SubjectPublicKeyInfo DER.
pub fn ca_cert_hash(cert_pem: &str) -> Result<String, PkiError> {
    let der = cert_der(cert_pem)?;
    let cert = parse_der(&der)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    Ok(format!("sha256:{}", hex(digest.as_ref())))
}

/// When the certificate stops being valid.
pub fn not_after(cert_pem: &str) -> Result<SystemTime, PkiError> {
    let der = cert_der(cert_pem)?;
    let cert = parse_der(&der)?;
    Ok(unix_time(cert.validity().not_after.timestamp()))
}

/// Fills `buf` from the operating system's CSPRNG (getrandom).
pub fn random_bytes(buf: &mut [u8]) -> Result<(), PkiError> {
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| PkiError::Random)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A host name for a SAN: dot-separated labels of letters, digits and inner hyphens, an
/// optional leading `*.` wildcard.
fn dns_name_ok(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

fn generate() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)
}

/// Subject, validity (from an hour ago to `hours` from now, capped at `cap`) and a random
/// positive 128-bit serial.
fn base_params(
    common_name: &str,
    organization: Option<&str>,
    hours: u32,
    cap: Option<SystemTime>,
) -> Result<CertificateParams, PkiError> {
    if hours == 0 {
        return Err(PkiError::Validity);
    }
    let now = SystemTime::now();
    let mut end = now + Duration::from_secs(u64::from(hours) * 3600);
    if let Some(cap) = cap {
        end = end.min(cap);
    }
    let mut serial = [0u8; 16];
    random_bytes(&mut serial)?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.not_before = (now - BACKDATE).into();
    params.not_after = end.into();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

fn cert_der(cert_pem: &str) -> Result<Vec<u8>, PkiError> {
    match x509_parser::pem::parse_x509_pem(cert_pem.trim_start().as_bytes()) {
        Ok((_, pem)) if pem.label == "CERTIFICATE" => Ok(pem.contents),
        _ => Err(PkiError::CertPem),
    }
}

fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(PkiError::CertDer),
    }
}

fn subject_cn(cert: &X509Certificate) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string()
}

fn unix_time(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
#[path = "pki_tests.rs"]
mod tests;
