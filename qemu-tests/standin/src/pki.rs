//! The certificates kubeadm issues, signed by CAs found on disk (PEM; the CA key must be
//! PKCS#8, which is what `ring` reads). New leaf keys are ECDSA P-256 whatever
//! `encryptionAlgorithm` says (ring cannot generate RSA keys). Also the discovery hash:
//! `sha256:` + hex of the CA certificate's SubjectPublicKeyInfo.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context as _, Result};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
};
use ring::rand::SecureRandom as _;
use rustls::pki_types::CertificateDer;

use super::Root;

/// kubeadm backdates certificates by five minutes for clock skew.
const BACKDATE: Duration = Duration::from_secs(300);

/// A CA certificate and its private key.
pub struct Ca {
    pub cert_pem: String,
    der: Vec<u8>,
    key: KeyPair,
    pub spki: Vec<u8>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca { … }")
    }
}

/// The DER of the first certificate in `pem`.
pub fn cert_der(pem: &str) -> Result<Vec<u8>> {
    match x509_parser::pem::parse_x509_pem(pem.trim_start().as_bytes()) {
        Ok((_, p)) if p.label == "CERTIFICATE" => Ok(p.contents),
        _ => bail!("not a PEM certificate (-----BEGIN CERTIFICATE-----)"),
    }
}

/// The SubjectPublicKeyInfo (DER) of a PEM certificate, and whether it is a CA.
pub fn cert_spki(pem: &str) -> Result<(Vec<u8>, bool)> {
    let der = cert_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow!("parse the certificate: {e}"))?;
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    Ok((cert.tbs_certificate.subject_pki.raw.to_vec(), is_ca))
}

/// kubeadm's `caCertHashes` form of a public key.
pub fn ca_cert_hash(spki: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Loads `cert`/`key` (absolute node paths) and checks they are a CA and its key.
pub fn load_ca(root: &Root, cert: &str, key: &str) -> Result<Ca> {
    let cert_pem = root.read(cert)?;
    let (spki, is_ca) = cert_spki(&cert_pem).with_context(|| format!("read {cert}"))?;
    if !is_ca {
        bail!("{cert} is not a CA certificate (basicConstraints CA:TRUE missing)");
    }
    let key_pem = root.read(key)?;
    let key_pair = KeyPair::from_pem(&key_pem).map_err(|e| {
        anyhow!("read {key}: {e} (kube-standin reads PKCS#8 keys, -----BEGIN PRIVATE KEY-----)")
    })?;
    if key_pair.subject_public_key_info() != spki {
        bail!("{cert} and {key} do not form a pair (the key is not the certificate's)");
    }
    Ok(Ca {
        der: cert_der(&cert_pem)?,
        cert_pem,
        key: key_pair,
        spki,
    })
}

/// What a leaf certificate says.
#[derive(Debug, Clone, Default)]
pub struct LeafSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub server: bool,
    pub validity: Duration,
}

/// Issues a leaf for `spec` signed by `ca`: (certificate PEM, PKCS#8 key PEM).
pub fn issue(ca: &Ca, spec: &LeafSpec) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|e| anyhow!("generate a key: {e}"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in &spec.organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, spec.common_name.as_str());
    params.distinguished_name = dn;
    for name in &spec.dns {
        let ia5 = name
            .as_str()
            .try_into()
            .map_err(|e| anyhow!("DNS name {name:?} for a certificate: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if spec.server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.use_authority_key_identifier_extension = true;
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + spec.validity).into();
    let mut serial = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| anyhow!("read randomness for a serial number"))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let der = CertificateDer::from(ca.der.as_slice());
    let issuer = Issuer::from_ca_cert_der(&der, &ca.key)
        .map_err(|e| anyhow!("read the CA certificate as an issuer: {e}"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| anyhow!("sign the {:?} certificate: {e}", spec.common_name))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
pub mod testing {
    //! A throwaway CA for tests.
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

    /// (certificate PEM, PKCS#8 key PEM) of a new self-signed CA.
    pub fn new_ca(cn: &str) -> (String, String) {
        let Ok(key) = KeyPair::generate() else {
            panic!("generate a CA key");
        };
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("self-sign {cn}: {e}"));
        (cert.pem(), key.serialize_pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    fn root_with(files: &[(&str, &str)]) -> (TempDir, Root) {
        let dir = TempDir::new("pki");
        let root = Root::new(dir.path());
        for (path, text) in files {
            root.write(path, text.as_bytes(), 0o600)
                .unwrap_or_else(|e| panic!("{e:#}"));
        }
        (dir, root)
    }

    #[test]
    fn loads_a_ca_and_issues_a_leaf_it_signed() {
        let (cert, key) = testing::new_ca("kubernetes");
        let (_d, root) = root_with(&[("/pki/ca.crt", &cert), ("/pki/ca.key", &key)]);
        let ca = load_ca(&root, "/pki/ca.crt", "/pki/ca.key").unwrap_or_else(|e| panic!("{e:#}"));
        let spec = LeafSpec {
            common_name: "kube-apiserver".into(),
            dns: vec!["kubernetes.default".into()],
            ips: vec![IpAddr::from([10, 96, 0, 1])],
            server: true,
            validity: Duration::from_secs(3600),
            ..LeafSpec::default()
        };
        let (leaf, _) = issue(&ca, &spec).unwrap_or_else(|e| panic!("{e:#}"));
        let der = cert_der(&leaf).unwrap_or_else(|e| panic!("{e:#}"));
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&der) else {
            panic!("parse the leaf");
        };
        let ca_der = cert_der(&cert).unwrap_or_else(|e| panic!("{e:#}"));
        let Ok((_, ca_parsed)) = x509_parser::parse_x509_certificate(&ca_der) else {
            panic!("parse the CA");
        };
        assert_eq!(parsed.issuer(), ca_parsed.subject());
        assert!(parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .is_ok());
        assert!(ca_cert_hash(&ca.spki).starts_with("sha256:"));
        assert_eq!(ca_cert_hash(&ca.spki).len(), 7 + 64);
    }

    #[test]
    fn refuses_a_key_of_another_ca_and_a_non_ca() {
        let (cert, _) = testing::new_ca("one");
        let (_, other_key) = testing::new_ca("two");
        let (_d, root) = root_with(&[("/ca.crt", &cert), ("/ca.key", &other_key)]);
        let Err(e) = load_ca(&root, "/ca.crt", "/ca.key") else {
            panic!("a foreign key accepted");
        };
        assert!(e.to_string().contains("do not form a pair"), "{e:#}");

        let (ca_cert, ca_key) = testing::new_ca("ca");
        let (_d2, root2) = root_with(&[("/ca.crt", &ca_cert), ("/ca.key", &ca_key)]);
        let ca = load_ca(&root2, "/ca.crt", "/ca.key").unwrap_or_else(|e| panic!("{e:#}"));
        let spec = LeafSpec {
            common_name: "leaf".into(),
            validity: Duration::from_secs(60),
            ..LeafSpec::default()
        };
        let (leaf, leaf_key) = issue(&ca, &spec).unwrap_or_else(|e| panic!("{e:#}"));
        let (_d3, root3) = root_with(&[("/l.crt", &leaf), ("/l.key", &leaf_key)]);
        let Err(e) = load_ca(&root3, "/l.crt", "/l.key") else {
            panic!("a leaf accepted as a CA");
        };
        assert!(e.to_string().contains("not a CA"), "{e:#}");
    }
}
