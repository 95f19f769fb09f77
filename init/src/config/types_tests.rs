#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::config::mode::FileMode;

#[test]
fn dns_names_follow_rfc_1123() {
    for good in [
        "node1",
        "a",
        "node-1.example.org",
        "NODE1.Example.org.",
        "0.pool.ntp.org",
    ] {
        DnsName::try_from(good).unwrap();
    }
    for bad in [
        "",
        "-node",
        "node-",
        "no_de",
        "a..b",
        &"x".repeat(64),
        "node 1",
    ] {
        assert_eq!(
            DnsName::try_from(bad),
            Err(ValueError::Hostname(bad.to_string()))
        );
    }
    let n = DnsName::try_from("Web1.Example.org").unwrap();
    assert_eq!(n.first_label().as_str(), "web1");
    assert!(n.is_qualified());
}

#[test]
fn user_names_paths_owners() {
    for good in ["root", "_apt", "ci-user", "a.b", "machine$"] {
        UserName::try_from(good).unwrap();
    }
    for bad in ["Root", "1abc", "a:b", "", &"a".repeat(33)] {
        assert!(
            matches!(UserName::try_from(bad), Err(ValueError::UserName(_))),
            "{bad}"
        );
    }
    AbsPath::try_from("/etc/kiln/x.conf").unwrap();
    for bad in ["etc/x", "/", "/etc/../shadow", "/a/.."] {
        assert!(
            matches!(AbsPath::try_from(bad), Err(ValueError::Path(_))),
            "{bad}"
        );
    }
    Owner::try_from("root:root").unwrap();
    Owner::try_from("www-data").unwrap();
    assert!(matches!(
        Owner::try_from("root:"),
        Err(ValueError::Owner(_))
    ));
}

#[test]
fn macs_and_cidrs() {
    let m = Mac::try_from("52-54-00-AB-cd-EF".to_string()).unwrap();
    assert_eq!(m.to_string(), "52:54:00:ab:cd:ef");
    for bad in [
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:zz",
        "525400abcdef",
        "52:54:00:ab:cd:eff",
    ] {
        assert!(
            matches!(Mac::try_from(bad.to_string()), Err(ValueError::Mac(_))),
            "{bad}"
        );
    }
    let c = Cidr::try_from("10.0.0.5/24".to_string()).unwrap();
    assert!(c.contains("10.0.0.200".parse().unwrap()));
    assert!(!c.contains("10.0.1.1".parse().unwrap()));
    Cidr::try_from("2001:db8::1/128".to_string()).unwrap();
    for bad in ["10.0.0.5", "10.0.0.5/33", "2001:db8::1/129", "x/24"] {
        assert!(
            matches!(Cidr::try_from(bad.to_string()), Err(ValueError::Cidr(_))),
            "{bad}"
        );
    }
    let ip = "10.1.2.3".parse().unwrap();
    assert_eq!(
        Cidr::from_netmask(ip, "255.255.0.0".parse().unwrap())
            .unwrap()
            .prefix,
        16
    );
    assert!(Cidr::from_netmask(ip, "255.0.255.0".parse().unwrap()).is_err());
}

#[test]
fn file_modes() {
    assert_eq!(FileMode::parse_octal("0644").unwrap(), FileMode(0o644));
    assert_eq!(FileMode::parse_octal("0o755").unwrap(), FileMode(0o755));
    assert_eq!(FileMode::parse_octal("600").unwrap(), FileMode(0o600));
    for bad in ["0899", "", "10000", "rw-r--r--"] {
        assert!(
            matches!(FileMode::parse_octal(bad), Err(ValueError::Mode(_))),
            "{bad}"
        );
    }
    let json: FileMode = serde_json::from_str("420").unwrap();
    assert_eq!(json, FileMode(0o644));
    assert_eq!(serde_json::to_string(&json).unwrap(), "\"0644\"");
    assert!(serde_json::from_str::<FileMode>("4096").is_err());
}

#[test]
fn lines_hosts_timezones() {
    assert!(matches!(
        SshKey::try_from("a\nb"),
        Err(ValueError::Line { .. })
    ));
    assert!(matches!(
        PasswdHash::try_from("a:b"),
        Err(ValueError::Line { .. })
    ));
    Host::try_from("2001:db8::1").unwrap();
    Host::try_from("time.example.org").unwrap();
    assert!(Host::try_from("bad host").is_err());
    Timezone::try_from("America/New_York").unwrap();
    Timezone::try_from("Etc/GMT+3").unwrap();
    assert!(Timezone::try_from("../etc/passwd").is_err());
    NameGlob::try_from("enp*s?").unwrap();
    assert!(NameGlob::try_from("averyveryverylongname").is_err());
}
