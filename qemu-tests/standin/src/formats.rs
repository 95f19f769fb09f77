//! The string formats kubeadm checks: bootstrap tokens, certificate keys, CA pins,
//! `host[:port]` endpoints, DNS-1123 subdomains and CIDRs. Pure predicates and parsers.

use std::net::IpAddr;

/// `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn is_token(t: &str) -> bool {
    let lower = |s: &str, n| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    t.split_once('.')
        .is_some_and(|(id, secret)| lower(id, 6) && lower(secret, 16))
}

/// A hex-encoded 32-byte AES key.
pub fn is_certificate_key(k: &str) -> bool {
    k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `sha256:` and 64 hex digits.
pub fn is_ca_cert_hash(h: &str) -> bool {
    h.strip_prefix("sha256:")
        .is_some_and(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `host[:port]` with host an IP (IPv6 in brackets) or DNS subdomain.
pub fn host_port(s: &str, port_required: bool) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed [ in the address")?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("invalid port")?,
        ),
        None if port_required => return Err("missing port".into()),
        None => None,
    };
    if host.parse::<IpAddr>().is_err() && !dns_subdomain(host) {
        return Err("host is neither an IP address nor a DNS-1123 subdomain".into());
    }
    Ok((host.to_string(), port))
}

/// A lowercase RFC 1123 subdomain.
pub fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Parses `addr/prefix`.
pub fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = s.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keys_and_pins() {
        assert!(is_token("abcdef.0123456789abcdef"));
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde",
        ] {
            assert!(!is_token(bad), "{bad}");
        }
        assert!(is_certificate_key(&"a1".repeat(32)));
        assert!(!is_certificate_key(&"a1".repeat(16)) && !is_certificate_key(&"zz".repeat(32)));
        assert!(is_ca_cert_hash(&format!("sha256:{}", "0f".repeat(32))));
        assert!(!is_ca_cert_hash(&format!("sha1:{}", "0f".repeat(32))));
    }

    #[test]
    fn endpoints_and_cidrs() {
        let ok = |s: &str, req| host_port(s, req);
        assert_eq!(
            ok("apiserver.cluster.local:6443", true),
            Ok(("apiserver.cluster.local".into(), Some(6443)))
        );
        assert_eq!(ok("10.0.0.1", false), Ok(("10.0.0.1".into(), None)));
        assert_eq!(
            ok("[fd00::1]:6443", true),
            Ok(("fd00::1".into(), Some(6443)))
        );
        assert_eq!(ok("fd00::1", false), Ok(("fd00::1".into(), None)));
        assert_eq!(
            ok("apiserver.cluster.local", true),
            Err("missing port".into())
        );
        assert_eq!(ok("host:0", false), Err("invalid port".into()));
        assert!(ok("Bad_Host:1", false).is_err());
        assert!(dns_subdomain("cp-1.kiln") && !dns_subdomain("-cp") && !dns_subdomain("a..b"));
        assert_eq!(
            cidr("10.96.0.0/12"),
            Some((IpAddr::from([10, 96, 0, 0]), 12))
        );
        assert_eq!(cidr("10.96.0.0/33"), None);
        assert_eq!(cidr("10.96.0.0"), None);
        assert!(cidr("fd00::/108").is_some());
    }
}
