use std::process::Command;

use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;
use crate::testutil::TempDir;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Parses `pem` and hands the certificate to `f` (x509-parser borrows the DER).
fn with_cert<R>(pem: &str, f: impl FnOnce(&X509Certificate) -> R) -> R {
    let der = ok(cert_der(pem));
    let cert = ok(parse_der(&der));
    f(&cert)
}

fn lifetime(cert: &X509Certificate) -> i64 {
    cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()
}

fn ski(cert: &X509Certificate) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn aki(cert: &X509Certificate) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref(),
            _ => None,
        })
        .map(|k| k.0.to_vec())
}

fn leaf<'a>(dns: &'a [String], ips: &'a [IpAddr], usage: Usage, hours: u32) -> Leaf<'a> {
    Leaf {
        common_name: "kube-apiserver",
        organization: Some("kiln"),
        dns,
        ips,
        usage,
        validity_hours: hours,
    }
}

#[test]
fn ca_is_a_long_lived_self_signed_signing_certificate() {
    let ca = ok(new_ca("kubernetes", 876_000));
    assert!(ca.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    with_cert(&ca.cert_pem, |c| {
        assert_eq!(subject_cn(c), "kubernetes");
        assert_eq!(c.subject().to_string(), c.issuer().to_string());
        let Ok(Some(bc)) = c.basic_constraints() else {
            panic!("no basicConstraints")
        };
        assert!(bc.value.ca && bc.critical);
        let Ok(Some(ku)) = c.key_usage() else {
            panic!("no keyUsage")
        };
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(ku.value.digital_signature() && !ku.value.key_encipherment());
        assert!(ski(c).is_some_and(|k| k.len() == 20));
        let want = 876_000 * 3600 + BACKDATE.as_secs() as i64;
        assert!((lifetime(c) - want).abs() <= 2, "lifetime {}", lifetime(c));
        let start = c.validity().not_before.timestamp();
        let now = ok(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)).as_secs() as i64;
        assert!((now - 3600 - start).abs() <= 2, "starts {start}, now {now}");
    });
}

#[test]
fn leaves_carry_names_usages_and_the_ca_key_id() {
    let ca = ok(new_ca("etcd-ca", 1000));
    let ca_ski = with_cert(&ca.cert_pem, ski);
    let dns = vec!["localhost".to_string(), "cp-1".to_string()];
    let ips: Vec<IpAddr> = vec![
        [10, 0, 0, 11].into(),
        "::1".parse().unwrap_or_else(|e| panic!("{e}")),
    ];
    let cases = [
        (Usage::Server, true, false),
        (Usage::Client, false, true),
        (Usage::ServerAndClient, true, true),
    ];
    for (usage, server, client) in cases {
        let cert = ok(issue(&ca, &leaf(&dns, &ips, usage, 24)));
        assert!(cert.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        with_cert(&cert.cert_pem, |c| {
            assert_eq!(subject_cn(c), "kube-apiserver");
            assert_eq!(c.issuer().to_string(), "CN=etcd-ca");
            assert!(
                c.subject().to_string().contains("O=kiln"),
                "{}",
                c.subject()
            );
            assert!(!c.is_ca());
            let Ok(Some(ku)) = c.key_usage() else {
                panic!("no keyUsage")
            };
            assert!(ku.value.digital_signature() && ku.value.key_encipherment());
            assert!(!ku.value.key_cert_sign());
            let Ok(Some(eku)) = c.extended_key_usage() else {
                panic!("no extendedKeyUsage")
            };
            assert_eq!(
                (eku.value.server_auth, eku.value.client_auth),
                (server, client)
            );
            let Ok(Some(san)) = c.subject_alternative_name() else {
                panic!("no subjectAltName")
            };
            let names: Vec<String> = san
                .value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => d.to_string(),
                    GeneralName::IPAddress(b) => format!("ip:{}", hex(b)),
                    other => format!("{other:?}"),
                })
                .collect();
            let want = [
                "localhost",
                "cp-1",
                "ip:0a00000b",
                "ip:00000000000000000000000000000001",
            ];
            assert_eq!(names, want);
            assert_eq!(aki(c), ca_ski);
            assert!((lifetime(c) - (24 * 3600 + 3600)).abs() <= 2);
        });
    }
}

#[test]
fn serials_are_random_and_leaves_never_outlive_their_ca() {
    let ca = ok(new_ca("kubernetes", 2));
    let a = ok(issue(&ca, &leaf(&[], &[], Usage::Client, 876_000)));
    let b = ok(issue(&ca, &leaf(&[], &[], Usage::Client, 876_000)));
    let serial = |p: &str| with_cert(p, |c| c.raw_serial().to_vec());
    assert_ne!(serial(&a.cert_pem), serial(&b.cert_pem));
    assert_eq!(serial(&a.cert_pem).len(), 16);
    assert_eq!(ok(not_after(&a.cert_pem)), ok(not_after(&ca.cert_pem)));
    let left = ok(ok(not_after(&ca.cert_pem)).duration_since(SystemTime::now()));
    assert!(left > Duration::from_secs(7190) && left <= Duration::from_secs(7200));
}

#[test]
fn bad_inputs_are_refused_with_the_cause() {
    let ca = ok(new_ca("kubernetes", 10));
    let other = ok(new_ca("other", 10));
    let child = ok(issue(&ca, &leaf(&[], &[], Usage::Server, 1)));
    let bad_dns = vec!["bad name".to_string()];
    let bad_label = vec!["-cp.local".to_string()];
    let mismatched = CertKey {
        cert_pem: ca.cert_pem.clone(),
        key_pem: other.key_pem.clone(),
    };
    let no_pem = CertKey {
        cert_pem: "not a certificate".into(),
        key_pem: ca.key_pem.clone(),
    };
    let cases: [(Result<CertKey, PkiError>, &str); 7] = [
        (new_ca("x", 0), "at least 1 hour"),
        (
            issue(&ca, &leaf(&[], &[], Usage::Server, 0)),
            "at least 1 hour",
        ),
        (
            issue(&child, &leaf(&[], &[], Usage::Server, 1)),
            "is not a CA",
        ),
        (
            issue(&mismatched, &leaf(&[], &[], Usage::Server, 1)),
            "does not belong",
        ),
        (
            issue(&no_pem, &leaf(&[], &[], Usage::Server, 1)),
            "certificate PEM",
        ),
        (
            issue(&ca, &leaf(&bad_dns, &[], Usage::Server, 1)),
            "invalid DNS name",
        ),
        (
            issue(&ca, &leaf(&bad_label, &[], Usage::Server, 1)),
            "invalid DNS name",
        ),
    ];
    for (result, want) in cases {
        let Err(e) = result else {
            panic!("accepted, wanted {want:?}")
        };
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
    }
    let Err(e) = ca_cert_hash(&ca.key_pem) else {
        panic!("hashed a key")
    };
    assert!(matches!(e, PkiError::CertPem), "{e}");
}

#[test]
fn key_pairs_are_pkcs8_and_spki() {
    let kp = ok(new_key_pair());
    assert!(kp.cert_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(kp.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key = ok(KeyPair::from_pem(&kp.key_pem));
    assert_eq!(key.public_key_pem(), kp.cert_pem);
    assert_ne!(ok(new_key_pair()).key_pem, kp.key_pem);
}

#[test]
fn ca_cert_hash_is_the_sha256_of_the_public_key_info() {
    let ca = ok(new_ca("kubernetes", 10));
    let hash = ok(ca_cert_hash(&ca.cert_pem));
    // Independently: from the private key's side instead of the certificate's.
    let spki = ok(KeyPair::from_pem(&ca.key_pem)).subject_public_key_info();
    let want = hex(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref());
    assert_eq!(hash, format!("sha256:{want}"));
    assert_eq!(hash.len(), 7 + 64);
}

fn openssl() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        println!("skipped: openssl missing");
    }
    found
}

fn run(cmd: &str, dir: &TempDir) -> String {
    let out = ok(Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir.path())
        .output());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd}: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn openssl_verifies_the_chain_and_reads_the_fields() {
    if !openssl() {
        return;
    }
    let dir = TempDir::new("pki");
    let ca = ok(new_ca("kubernetes", 876_000));
    let dns = vec!["apiserver.cluster.local".to_string()];
    let ips: Vec<IpAddr> = vec![[10, 0, 0, 11].into()];
    let cert = ok(issue(&ca, &leaf(&dns, &ips, Usage::ServerAndClient, 8760)));
    dir.write("ca.crt", &ca.cert_pem);
    dir.write("ca.key", &ca.key_pem);
    dir.write("leaf.crt", &cert.cert_pem);
    dir.write("leaf.key", &cert.key_pem);

    let verified = run("openssl verify -CAfile ca.crt leaf.crt", &dir);
    assert_eq!(verified.trim(), "leaf.crt: OK");
    let text = run("openssl x509 -noout -text -in leaf.crt", &dir);
    for want in [
        "DNS:apiserver.cluster.local, IP Address:10.0.0.11",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "Digital Signature, Key Encipherment",
        "CA:FALSE",
        "Subject: O = kiln, CN = kube-apiserver",
        "Issuer: CN = kubernetes",
        "ecdsa-with-SHA256",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    let ca_text = run("openssl x509 -noout -text -in ca.crt", &dir);
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
    assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");
    // Validity: about 100 years for the CA, one year for the leaf.
    let end_year = |file: &str| -> i32 {
        let line = run(&format!("openssl x509 -noout -enddate -in {file}"), &dir);
        let year = line.split_whitespace().rev().nth(1).unwrap_or("");
        year.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    let this_year = 1970
        + (ok(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)).as_secs() / 31_556_952)
            as i32;
    assert!((end_year("ca.crt") - this_year - 100).abs() <= 1);
    assert!((end_year("leaf.crt") - this_year - 1).abs() <= 1);
    // The key files are what openssl expects and match their certificates.
    let pubkey = |cmd: &str| run(cmd, &dir);
    assert_eq!(
        pubkey("openssl pkey -in leaf.key -pubout"),
        pubkey("openssl x509 -noout -pubkey -in leaf.crt")
    );
    let hash = run(
        "openssl x509 -pubkey -noout -in ca.crt | openssl pkey -pubin -outform der | sha256sum",
        &dir,
    );
    let want = hash.split_whitespace().next().unwrap_or("");
    assert_eq!(ok(ca_cert_hash(&ca.cert_pem)), format!("sha256:{want}"));
}
