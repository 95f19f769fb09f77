//! etcd certificates in a temporary root: what is written, with which modes and
//! contents, and when existing files are kept or issued anew.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use x509_parser::extensions::GeneralName;

use super::certs::ensure_certs_at;
use super::fake::{ok, settings};
use super::*;
use crate::pki::{self, CertKey, Leaf, Usage};
use crate::testutil::TempDir;

const ALL: [&str; 10] = [
    "etcd/ca.crt",
    "etcd/ca.key",
    "etcd/server.key",
    "etcd/server.crt",
    "etcd/peer.key",
    "etcd/peer.crt",
    "etcd/healthcheck-client.key",
    "etcd/healthcheck-client.crt",
    "apiserver-etcd-client.key",
    "apiserver-etcd-client.crt",
];

fn pki_dir(root: &Path) -> PathBuf {
    root.join("etc/kubernetes/pki")
}

fn rel(root: &Path, paths: &[PathBuf]) -> Vec<String> {
    let base = pki_dir(root);
    paths
        .iter()
        .map(|p| p.strip_prefix(&base).unwrap_or(p).display().to_string())
        .collect()
}

fn read(root: &Path, name: &str) -> String {
    ok(std::fs::read_to_string(pki_dir(root).join(name)))
}

/// Common name, (serverAuth, clientAuth), DNS SANs, IP SANs.
fn fields(pem: &str) -> (String, (bool, bool), Vec<String>, Vec<IpAddr>) {
    let (_, p) = ok(x509_parser::pem::parse_x509_pem(pem.as_bytes()));
    let (_, cert) = ok(x509_parser::parse_x509_certificate(&p.contents));
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok());
    let eku = ok(cert.extended_key_usage()).map(|e| (e.value.server_auth, e.value.client_auth));
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Some(san) = ok(cert.subject_alternative_name()) {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()))
                }
                GeneralName::IPAddress(b) => {
                    ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()))
                }
                other => panic!("unexpected SAN {other:?}"),
            }
        }
    }
    (
        cn.unwrap_or("").to_string(),
        eku.unwrap_or_default(),
        dns,
        ips,
    )
}

fn ip(s: &str) -> IpAddr {
    ok(s.parse())
}

#[test]
fn first_run_writes_kubeadms_layout() {
    let root = TempDir::new("etcd-certs");
    let ca = ok(pki::new_ca("etcd-ca", 24 * 400));
    let s = settings("10.0.0.11", Some(&ca));
    let written = ok(ensure_certs(root.path(), &s, "cp-1"));
    assert_eq!(rel(root.path(), &written), ALL);
    for name in ALL {
        let mode = ok(std::fs::metadata(pki_dir(root.path()).join(name))).permissions();
        let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode.mode() & 0o777, want, "{name}");
    }
    assert_eq!(read(root.path(), "etcd/ca.crt"), ca.cert_pem);
    assert_eq!(read(root.path(), "etcd/ca.key"), ca.key_pem);
    let member_sans = (
        vec!["cp-1".to_string(), "localhost".to_string()],
        vec![ip("10.0.0.11"), ip("127.0.0.1"), ip("::1")],
    );
    for name in ["etcd/server.crt", "etcd/peer.crt"] {
        let (cn, eku, dns, ips) = fields(&read(root.path(), name));
        assert_eq!((cn.as_str(), eku), ("cp-1", (true, true)), "{name}");
        assert_eq!((dns, ips), member_sans.clone(), "{name}");
    }
    for (name, want_cn) in [
        (
            "etcd/healthcheck-client.crt",
            "kube-etcd-healthcheck-client",
        ),
        ("apiserver-etcd-client.crt", "kube-apiserver-etcd-client"),
    ] {
        let (cn, eku, dns, ips) = fields(&read(root.path(), name));
        assert_eq!((cn.as_str(), eku), (want_cn, (false, true)), "{name}");
        assert!(dns.is_empty() && ips.is_empty(), "{name}");
    }
    let left: Vec<_> = ok(std::fs::read_dir(pki_dir(root.path()).join("etcd")))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn second_run_keeps_everything() {
    let root = TempDir::new("etcd-certs-again");
    let ca = ok(pki::new_ca("etcd-ca", 24 * 400));
    let s = settings("10.0.0.11", Some(&ca));
    ok(ensure_certs(root.path(), &s, "cp-1"));
    let before = read(root.path(), "etcd/server.crt");
    assert_eq!(
        ok(ensure_certs(root.path(), &s, "cp-1")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(read(root.path(), "etcd/server.crt"), before);
}

#[test]
fn changes_reissue_exactly_what_they_touch() {
    let root = TempDir::new("etcd-certs-change");
    let ca = ok(pki::new_ca("etcd-ca", 24 * 400));
    ok(ensure_certs(
        root.path(),
        &settings("10.0.0.11", Some(&ca)),
        "cp-1",
    ));

    // A new address: server and peer only.
    let moved = settings("10.0.0.21", Some(&ca));
    let written = ok(ensure_certs(root.path(), &moved, "cp-1"));
    assert_eq!(rel(root.path(), &written), &ALL[2..6]);
    assert!(fields(&read(root.path(), "etcd/peer.crt"))
        .3
        .contains(&ip("10.0.0.21")));

    // A new node name: the same two.
    let written = ok(ensure_certs(root.path(), &moved, "cp-9"));
    assert_eq!(rel(root.path(), &written), &ALL[2..6]);

    // A client key that no longer fits its certificate.
    let stray = ok(pki::new_key_pair());
    std::fs::write(
        pki_dir(root.path()).join("apiserver-etcd-client.key"),
        stray.key_pem,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let written = ok(ensure_certs(root.path(), &moved, "cp-9"));
    assert_eq!(rel(root.path(), &written), &ALL[8..]);

    // A certificate of another CA with the same name and fields.
    let other = ok(pki::new_ca("etcd-ca", 24 * 400));
    let dns = ["cp-9".to_string(), "localhost".to_string()];
    let ips = [ip("10.0.0.21"), ip("127.0.0.1"), ip("::1")];
    let forged = ok(pki::issue(&other, &leaf("cp-9", &dns, &ips, 24 * 400)));
    put(root.path(), "etcd/server", &forged);
    let written = ok(ensure_certs(root.path(), &moved, "cp-9"));
    assert_eq!(rel(root.path(), &written), &ALL[2..4]);

    // A new etcd CA: everything.
    let new_ca = ok(pki::new_ca("etcd-ca-2", 24 * 400));
    let written = ok(ensure_certs(
        root.path(),
        &settings("10.0.0.21", Some(&new_ca)),
        "cp-9",
    ));
    assert_eq!(rel(root.path(), &written), ALL);
}

fn leaf<'a>(cn: &'a str, dns: &'a [String], ips: &'a [IpAddr], hours: u32) -> Leaf<'a> {
    Leaf {
        common_name: cn,
        organization: None,
        dns,
        ips,
        usage: Usage::ServerAndClient,
        validity_hours: hours,
    }
}

fn put(root: &Path, file: &str, pair: &CertKey) {
    let dir = pki_dir(root);
    ok(std::fs::write(
        dir.join(format!("{file}.crt")),
        &pair.cert_pem,
    ));
    ok(std::fs::write(
        dir.join(format!("{file}.key")),
        &pair.key_pem,
    ));
}

#[test]
fn certificates_near_their_end_are_renewed() {
    let root = TempDir::new("etcd-certs-renew");
    let ca = ok(pki::new_ca("etcd-ca", 24 * 400));
    let s = settings("10.0.0.11", Some(&ca));
    ok(ensure_certs(root.path(), &s, "cp-1"));
    let dns = ["cp-1".to_string(), "localhost".to_string()];
    let ips = [ip("10.0.0.11"), ip("127.0.0.1"), ip("::1")];
    // 29 days left: renewed now; 31 days left: kept now, renewed 2 days later.
    put(
        root.path(),
        "etcd/peer",
        &ok(pki::issue(&ca, &leaf("cp-1", &dns, &ips, 29 * 24))),
    );
    let written = ok(ensure_certs(root.path(), &s, "cp-1"));
    assert_eq!(rel(root.path(), &written), &ALL[4..6]);
    put(
        root.path(),
        "etcd/peer",
        &ok(pki::issue(&ca, &leaf("cp-1", &dns, &ips, 31 * 24))),
    );
    let now = SystemTime::now();
    assert!(ok(ensure_certs_at(root.path(), &s, "cp-1", now)).is_empty());
    let later = now + Duration::from_secs(2 * 24 * 3600);
    let written = ok(ensure_certs_at(root.path(), &s, "cp-1", later));
    assert_eq!(rel(root.path(), &written), &ALL[4..6]);
}

#[test]
fn settings_without_the_etcd_ca_key_are_refused() {
    let root = TempDir::new("etcd-certs-nokey");
    let Err(e) = ensure_certs(root.path(), &settings("10.0.0.11", None), "cp-1") else {
        panic!("issued without a CA")
    };
    assert_eq!(
        e.to_string(),
        "the cluster settings carry no etcd CA (etcd_ca)"
    );
    let ca = ok(pki::new_ca("etcd-ca", 24));
    let mut s = settings("10.0.0.11", Some(&ca));
    let mut shape: crate::cluster::settings::Shape = s.clone().into();
    if let Some(etcd_ca) = shape.etcd_ca.as_mut() {
        etcd_ca.key = None;
    }
    s = ok(crate::cluster::ClusterSettings::try_from(shape));
    let Err(e) = ensure_certs(root.path(), &s, "cp-1") else {
        panic!("issued without the CA key")
    };
    assert!(matches!(e, EtcdError::NoCaKey), "{e}");
    assert!(!pki_dir(root.path()).exists(), "wrote files before failing");
}

#[test]
fn a_bad_node_name_names_the_certificate() {
    let root = TempDir::new("etcd-certs-badname");
    let ca = ok(pki::new_ca("etcd-ca", 24));
    let Err(e) = ensure_certs(root.path(), &settings("10.0.0.11", Some(&ca)), "bad name") else {
        panic!("issued for an invalid DNS name")
    };
    assert_eq!(
        crate::chain::error_chain(&e),
        "issue etcd/server: invalid DNS name \"bad name\" for a certificate"
    );
}
