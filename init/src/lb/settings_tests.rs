#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn settings(yaml: &str) -> LbSettings {
    serde_saphyr::from_str(yaml).unwrap()
}

fn no_files(_: &str) -> std::io::Result<Vec<u8>> {
    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
}

#[test]
fn defaults_follow_lvscare_addresses_and_fast_checks() {
    let s = settings("backends: [10.0.0.11, '10.0.0.12:6444']\ncheck: {insecure: true}\n");
    let plan = validate(&s, &no_files).unwrap();
    assert_eq!(plan.vip, "10.103.97.2".parse::<IpAddr>().unwrap());
    assert_eq!(plan.port, 6443);
    assert_eq!(
        plan.backends,
        vec![
            "10.0.0.11:6443".parse::<SocketAddr>().unwrap(),
            "10.0.0.12:6444".parse().unwrap()
        ]
    );
    assert_eq!(plan.scheduler, "rr");
    assert_eq!(plan.mode, ModeChoice::Auto);
    assert_eq!(
        plan.check,
        Check::Https {
            path: "/healthz".into(),
            trust: Trust::Insecure,
            server_name: None
        }
    );
    assert_eq!(plan.health, HealthConfig::default());
    let vs = plan.virtual_service();
    assert_eq!(vs.backends.len(), 2);
    assert_eq!(vs.key.port, 6443);
}

#[test]
fn ca_file_is_read_through_the_callback() {
    let s = settings("backends: [10.0.0.11]\ncheck: {ca: /etc/kubernetes/pki/ca.crt}\n");
    let read = |p: &str| -> std::io::Result<Vec<u8>> {
        assert_eq!(p, "/etc/kubernetes/pki/ca.crt");
        Ok(b"PEM".to_vec())
    };
    let plan = validate(&s, &read).unwrap();
    assert!(matches!(plan.check, Check::Https { trust: Trust::CaPem(ref p), .. } if p == b"PEM"));
    let err = validate(&s, &no_files).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("lb.check: read CA /etc/kubernetes/pki/ca.crt"));
}

#[test]
fn bad_values_name_the_cause() {
    let ok = "backends: [10.0.0.11]\ncheck: {kind: tcp}\n";
    validate(&settings(ok), &no_files).unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "vip: 10.0.0.0/24\nbackends: [10.0.0.11]\ncheck: {kind: tcp}\n",
            "is not an IPv4 or IPv6 address",
        ),
        (
            "vip: 0.0.0.0\nbackends: [10.0.0.11]\ncheck: {kind: tcp}\n",
            "not a usable unicast",
        ),
        (
            "port: 0\nbackends: [10.0.0.11]\ncheck: {kind: tcp}\n",
            "lb.port must not be 0",
        ),
        ("check: {kind: tcp}\n", "lb.backends is empty"),
        (
            "backends: [nope]\ncheck: {kind: tcp}\n",
            "\"nope\" is neither ip:port nor ip",
        ),
        (
            "backends: ['10.0.0.1:0']\ncheck: {kind: tcp}\n",
            "has port 0",
        ),
        (
            "backends: [10.0.0.1, '10.0.0.1:6443']\ncheck: {kind: tcp}\n",
            "listed twice",
        ),
        (
            "backends: [10.103.97.2]\ncheck: {kind: tcp}\n",
            "is the VIP itself",
        ),
        (
            "backends: ['[fd00::1]:6443']\ncheck: {kind: tcp}\n",
            "address family",
        ),
        (
            "backends: [10.0.0.1]\nscheduler: fastest\ncheck: {kind: tcp}\n",
            "lb.scheduler \"fastest\" is unknown",
        ),
        (
            "backends: [10.0.0.1]\nmode: bgp\ncheck: {kind: tcp}\n",
            "lb.mode \"bgp\"",
        ),
        (
            "backends: [10.0.0.1]\ncheck: {kind: icmp}\n",
            "lb.check.kind \"icmp\"",
        ),
        (
            "backends: [10.0.0.1]\ncheck: {kind: http, path: healthz}\n",
            "must start with /",
        ),
        ("backends: [10.0.0.1]\n", "needs `ca`"),
        (
            "backends: [10.0.0.1]\ncheck: {kind: tcp, rise: 0}\n",
            "lb.check.rise must be greater than zero",
        ),
        (
            "backends: [10.0.0.1]\ncheck: {kind: tcp, timeout_ms: 3600001}\n",
            "timeout_ms must be at most",
        ),
    ];
    for (yaml, want) in cases {
        let err = validate(&settings(yaml), &no_files)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{yaml}: {err}");
    }
}

#[test]
fn unknown_keys_are_a_schema_error() {
    let got: Result<LbSettings, _> = serde_saphyr::from_str("backend: [10.0.0.1]\n");
    assert!(got.is_err());
}
