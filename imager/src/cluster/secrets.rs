//! secrets.toml: everything needed to make more nodes later. `[cluster]` is the
//! `Topology`; `[secrets]` holds the three CAs with their keys, the service-account key
//! pair, the bootstrap token and the certificate key, all from the operating system's
//! random source. The file is mode 0600 and is read back with the same validated types.

use std::path::Path;

use kiln_init::cluster::settings::{BootstrapToken, CertAndKey, CertificateKey, KeyPair, Pem};
use kiln_init::pki::{self, CertKey};
use serde::{Deserialize, Serialize};

use super::topology::Topology;
use super::GenError;

/// Common names of the three CAs (kubeadm's).
pub const CA_CN: &str = "kubernetes";
pub const ETCD_CA_CN: &str = "etcd-ca";
pub const FRONT_PROXY_CA_CN: &str = "front-proxy-ca";

/// The whole of secrets.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub cluster: Topology,
    pub secrets: Secrets,
}

/// secrets.toml `[secrets]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub bootstrap_token: BootstrapToken,
    pub certificate_key: CertificateKey,
    pub ca: CaPair,
    pub etcd_ca: CaPair,
    pub front_proxy_ca: CaPair,
    /// Service-account signing keys: `private` PKCS#8, `public` SubjectPublicKeyInfo.
    pub service_account: KeyPair,
}

/// A CA certificate and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaPair {
    pub cert: Pem,
    pub key: Pem,
}

impl CaPair {
    fn new(cn: &'static str, hours: u32) -> Result<Self, GenError> {
        let ck = pki::new_ca(cn, hours).map_err(|source| GenError::Pki { what: cn, source })?;
        Ok(Self {
            cert: pem(cn, ck.cert_pem)?,
            key: pem(cn, ck.key_pem)?,
        })
    }

    /// For `pki::issue`.
    pub fn cert_key(&self) -> CertKey {
        CertKey {
            cert_pem: self.cert.as_str().to_string(),
            key_pem: self.key.as_str().to_string(),
        }
    }

    /// With the key (control planes) or certificate only (workers).
    pub fn for_node(&self, with_key: bool) -> CertAndKey {
        CertAndKey {
            cert: self.cert.clone(),
            key: with_key.then(|| self.key.clone()),
        }
    }
}

fn pem(what: &'static str, text: String) -> Result<Pem, GenError> {
    Pem::try_from(text).map_err(|e| GenError::Render {
        what,
        reason: e.to_string(),
    })
}

impl Secrets {
    /// Fresh CAs valid `ca_hours`, keys, token and certificate key.
    pub fn generate(ca_hours: u32) -> Result<Self, GenError> {
        let sa = pki::new_key_pair().map_err(|source| GenError::Pki {
            what: "service-account key pair",
            source,
        })?;
        Ok(Self {
            bootstrap_token: bootstrap_token()?,
            certificate_key: certificate_key()?,
            ca: CaPair::new(CA_CN, ca_hours)?,
            etcd_ca: CaPair::new(ETCD_CA_CN, ca_hours)?,
            front_proxy_ca: CaPair::new(FRONT_PROXY_CA_CN, ca_hours)?,
            service_account: KeyPair {
                private: pem("service-account key", sa.key_pem)?,
                public: pem("service-account key", sa.cert_pem)?,
            },
        })
    }
}

fn random(buf: &mut [u8]) -> Result<(), GenError> {
    pki::random_bytes(buf).map_err(|source| GenError::Pki {
        what: "random bytes",
        source,
    })
}

/// `n` characters of `[a-z0-9]`, uniformly (bytes ≥ 252 are dropped: 252 = 7 × 36).
fn random_chars(n: usize) -> Result<String, GenError> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 32];
        random(&mut buf)?;
        for b in buf.into_iter().filter(|b| *b < 252) {
            if out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    Ok(out)
}

/// kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn bootstrap_token() -> Result<BootstrapToken, GenError> {
    let text = format!("{}.{}", random_chars(6)?, random_chars(16)?);
    BootstrapToken::try_from(text).map_err(|e| GenError::Render {
        what: "bootstrap token",
        reason: e.to_string(),
    })
}

/// 32 random bytes as 64 hex digits.
pub fn certificate_key() -> Result<CertificateKey, GenError> {
    let mut key = [0u8; 32];
    random(&mut key)?;
    CertificateKey::try_from(pki::hex(&key)).map_err(|e| GenError::Render {
        what: "certificate key",
        reason: e.to_string(),
    })
}

impl ClusterFile {
    pub fn to_toml(&self) -> Result<String, GenError> {
        let body = toml::to_string(self).map_err(|e| GenError::Render {
            what: "secrets.toml",
            reason: e.to_string(),
        })?;
        Ok(format!(
            "# Written by `kiln cluster gen`: the cluster's CA keys and tokens. Keep it secret.\n\
             # `kiln cluster add --dir <this folder>` reads it to make more nodes.\n{body}"
        ))
    }

    /// Parses and checks secrets.toml text; errors name the line and column.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, GenError> {
        let file: ClusterFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" at line {line} column {col}")
            });
            GenError::Parse {
                path: origin.to_path_buf(),
                reason: format!("{}{at}", e.message().trim()),
            }
        })?;
        file.cluster.check()?;
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<Self, GenError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }
}
