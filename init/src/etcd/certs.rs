//! etcd's certificates in kubeadm's layout under `<root>/etc/kubernetes/pki/`: the etcd
//! CA (from the cluster settings), etcd's server and peer certificates, the healthcheck
//! client and the API server's etcd client.
//!
//! Idempotent: a certificate is kept when its key fits, it is signed by the current CA
//! (checked with webpki, as peers will), it says exactly what is wanted (common name,
//! usages, SANs) and it has more than `RENEW_BEFORE` left; otherwise both files are
//! issued anew. Files are written through a temporary file and a rename; keys 0600,
//! certificates 0644, new directories 0755 (as kubeadm does).

use std::collections::BTreeSet;
use std::fs::{self, DirBuilder};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::PublicKeyData;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::EtcdError;
use crate::cluster::ClusterSettings;
use crate::pki::{self, CertKey, Leaf, Usage};

/// A certificate with less than this left is issued anew.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// One leaf certificate to keep in shape.
struct Wanted {
    /// Relative to the pki directory, without `.crt` / `.key`.
    file: &'static str,
    common_name: String,
    usage: Usage,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

fn wanted(settings: &ClusterSettings, node_name: &str) -> Vec<Wanted> {
    let dns = vec![node_name.to_string(), "localhost".to_string()];
    let mut ips = vec![settings.address];
    for ip in [
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
    ] {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let member = |file| Wanted {
        file,
        common_name: node_name.to_string(),
        usage: Usage::ServerAndClient,
        dns: dns.clone(),
        ips: ips.clone(),
    };
    let client = |file, cn: &str| Wanted {
        file,
        common_name: cn.to_string(),
        usage: Usage::Client,
        dns: Vec::new(),
        ips: Vec::new(),
    };
    vec![
        member("etcd/server"),
        member("etcd/peer"),
        client("etcd/healthcheck-client", "kube-etcd-healthcheck-client"),
        client("apiserver-etcd-client", "kube-apiserver-etcd-client"),
    ]
}

/// Makes every etcd certificate exist and be current; returns the files written.
pub fn ensure_certs(
    root: &Path,
    settings: &ClusterSettings,
    node_name: &str,
) -> Result<Vec<PathBuf>, EtcdError> {
    ensure_certs_at(root, settings, node_name, SystemTime::now())
}

pub(super) fn ensure_certs_at(
    root: &Path,
    settings: &ClusterSettings,
    node_name: &str,
    now: SystemTime,
) -> Result<Vec<PathBuf>, EtcdError> {
    let etcd_ca = settings.etcd_ca.as_ref().ok_or(EtcdError::NoCa)?;
    let ca = CertKey {
        cert_pem: etcd_ca.cert.as_str().to_string(),
        key_pem: etcd_ca
            .key
            .as_ref()
            .ok_or(EtcdError::NoCaKey)?
            .as_str()
            .to_string(),
    };
    let pki_dir = root.join("etc/kubernetes/pki");
    let mut written = Vec::new();
    let mut put = |rel: &str, text: &str, mode: u32| -> Result<(), EtcdError> {
        let path = pki_dir.join(rel);
        if write_if_changed(&path, text.as_bytes(), mode)? {
            written.push(path);
        }
        Ok(())
    };
    put("etcd/ca.crt", &ca.cert_pem, 0o644)?;
    put("etcd/ca.key", &ca.key_pem, 0o600)?;
    for want in wanted(settings, node_name) {
        let crt = pki_dir.join(format!("{}.crt", want.file));
        let key = pki_dir.join(format!("{}.key", want.file));
        if is_current(&crt, &key, &ca, &want, settings.address, now) {
            continue;
        }
        let leaf = Leaf {
            common_name: &want.common_name,
            organization: None,
            dns: &want.dns,
            ips: &want.ips,
            usage: want.usage,
            validity_hours: settings.cert_validity_hours,
        };
        let issued = pki::issue(&ca, &leaf).map_err(|source| EtcdError::Issue {
            name: want.file.to_string(),
            source,
        })?;
        // The key first: a crash in between leaves a certificate that no longer fits
        // its key, which the next run reissues.
        put(&format!("{}.key", want.file), &issued.key_pem, 0o600)?;
        put(&format!("{}.crt", want.file), &issued.cert_pem, 0o644)?;
    }
    Ok(written)
}

/// Whether the pair on disk can stay (any doubt means no).
fn is_current(
    crt: &Path,
    key: &Path,
    ca: &CertKey,
    want: &Wanted,
    address: IpAddr,
    now: SystemTime,
) -> bool {
    let (Ok(cert_pem), Ok(key_pem)) = (fs::read_to_string(crt), fs::read_to_string(key)) else {
        return false;
    };
    let long_enough = pki::not_after(&cert_pem).is_ok_and(|end| end > now + RENEW_BEFORE);
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.trim_start().as_bytes()) else {
        return false;
    };
    let Ok(([], cert)) = x509_parser::parse_x509_certificate(&pem.contents) else {
        return false;
    };
    let key_fits = rcgen::KeyPair::from_pem(&key_pem)
        .is_ok_and(|k| k.subject_public_key_info() == cert.tbs_certificate.subject_pki.raw);
    long_enough
        && key_fits
        && says_what_is_wanted(&cert, want)
        && signed_by(&pem.contents, &ca.cert_pem, want.usage, address, now)
}

fn says_what_is_wanted(cert: &X509Certificate, want: &Wanted) -> bool {
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    let (server, client) = match cert.extended_key_usage() {
        Ok(Some(eku)) => (eku.value.server_auth, eku.value.client_auth),
        _ => (false, false),
    };
    let usage_ok = match want.usage {
        Usage::Server => server && !client,
        Usage::Client => client && !server,
        Usage::ServerAndClient => server && client,
    };
    let mut dns = BTreeSet::new();
    let mut ips = BTreeSet::new();
    match cert.subject_alternative_name() {
        Ok(Some(san)) => {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => {
                        dns.insert(d.to_ascii_lowercase());
                    }
                    GeneralName::IPAddress(bytes) => {
                        ips.insert(ip_from_bytes(bytes));
                    }
                    _ => return false,
                }
            }
        }
        Ok(None) => {}
        Err(_) => return false,
    }
    let want_dns: BTreeSet<String> = want.dns.iter().map(|d| d.to_ascii_lowercase()).collect();
    let want_ips: BTreeSet<Option<IpAddr>> = want.ips.iter().map(|ip| Some(*ip)).collect();
    cn == Some(want.common_name.as_str()) && usage_ok && dns == want_dns && ips == want_ips
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Verifies the leaf against the CA as a TLS peer would, for each usage it has.
fn signed_by(leaf: &[u8], ca_pem: &str, usage: Usage, address: IpAddr, now: SystemTime) -> bool {
    use rustls::pki_types::pem::PemObject;
    let Ok(ca) = CertificateDer::from_pem_slice(ca_pem.as_bytes()) else {
        return false;
    };
    let mut roots = RootCertStore::empty();
    if roots.add(ca).is_err() {
        return false;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let leaf = CertificateDer::from(leaf);
    let Ok(since_epoch) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let at = UnixTime::since_unix_epoch(since_epoch);
    let server_ok = || {
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .is_ok_and(|v| {
                let name = ServerName::from(address);
                v.verify_server_cert(&leaf, &[], &name, &[], at).is_ok()
            })
    };
    let client_ok = || {
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .is_ok_and(|v| v.verify_client_cert(&leaf, &[], at).is_ok())
    };
    match usage {
        Usage::Server => server_ok(),
        Usage::Client => client_ok(),
        Usage::ServerAndClient => server_ok() && client_ok(),
    }
}

/// Writes `bytes` at `path` unless it already holds exactly them (mode included).
/// Returns whether it wrote.
fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, EtcdError> {
    let unchanged = fs::read(path).is_ok_and(|old| old == bytes)
        && fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode);
    if unchanged {
        return Ok(false);
    }
    write_atomic(path, bytes, mode).map_err(|source| EtcdError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    crate::atomic::write(path, bytes, mode)
}
