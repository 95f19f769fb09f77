#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::net::fake::{link, Call, FakeNetlink};
use crate::net::netlink::LinkKind;
use crate::testutil::TempDir;

fn links() -> Vec<Link> {
    vec![
        link(1, "lo", LinkKind::Loopback),
        link(2, "eth0", LinkKind::Ether),
        link(3, "eth1", LinkKind::Ether),
    ]
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

#[test]
fn static_plan_brings_links_up_and_adds_addresses_and_routes() {
    let plan = NetPlan {
        interfaces: vec![IfacePlan {
            name: "eth0".into(),
            addresses: vec![cidr("192.168.1.10/24"), cidr("fd00::10/64")],
            gateway4: Some(Ipv4Addr::new(192, 168, 1, 1)),
            routes: vec![StaticRoute {
                dst: cidr("10.50.0.0/16"),
                via: "192.168.1.254".parse().unwrap(),
                metric: Some(50),
            }],
            mtu: Some(9000),
            ..IfacePlan::default()
        }],
        ..NetPlan::default()
    };
    let mut nl = FakeNetlink::new(links());
    let applied = apply(&plan, &mut nl).unwrap();
    assert_eq!(
        nl.calls(),
        vec![
            Call::SetUp(1),
            Call::SetMtu(2, 9000),
            Call::SetUp(2),
            Call::AddAddress(2, cidr("192.168.1.10/24")),
            Call::AddAddress(2, cidr("fd00::10/64")),
            Call::AddRoute("0.0.0.0/0 via 192.168.1.1 dev 2".into()),
            Call::AddRoute("10.50.0.0/16 via 192.168.1.254 dev 2 metric 50".into()),
        ]
    );
    assert!(applied.dhcp.is_empty());
    assert_eq!(
        applied.addresses,
        vec![(
            "eth0".into(),
            vec![cidr("192.168.1.10/24"), cidr("fd00::10/64")]
        )]
    );
    assert!(applied.failures.is_empty() && applied.missing.is_empty());
}

#[test]
fn dhcp_interfaces_are_matched_by_mac_or_name() {
    let plan = NetPlan {
        interfaces: vec![
            IfacePlan {
                name: "wan".into(),
                mac: Some([0x52, 0x54, 0, 0, 0, 3]),
                dhcp4: true,
                ..IfacePlan::default()
            },
            IfacePlan {
                name: "eth0".into(),
                dhcp4: true,
                mtu: Some(1500),
                ..IfacePlan::default()
            },
            IfacePlan {
                name: "eth9".into(),
                dhcp4: true,
                ..IfacePlan::default()
            },
        ],
        ..NetPlan::default()
    };
    let mut nl = FakeNetlink::new(links());
    let applied = apply(&plan, &mut nl).unwrap();
    let dhcp: Vec<(&str, u32)> = applied
        .dhcp
        .iter()
        .map(|t| (t.name.as_str(), t.index))
        .collect();
    assert_eq!(dhcp, [("eth1", 3), ("eth0", 2)]);
    assert_eq!(applied.missing, ["eth9"]);
    // MTU already 1500: not set again.
    assert_eq!(
        nl.calls(),
        vec![Call::SetUp(1), Call::SetUp(3), Call::SetUp(2)]
    );
}

#[test]
fn failures_are_per_interface_and_do_not_stop_the_rest() {
    let plan = NetPlan {
        interfaces: vec![
            IfacePlan {
                name: "eth0".into(),
                addresses: vec![cidr("10.0.0.2/24")],
                ..IfacePlan::default()
            },
            IfacePlan {
                name: "eth1".into(),
                dhcp4: true,
                ..IfacePlan::default()
            },
        ],
        ..NetPlan::default()
    };
    let mut nl = FakeNetlink::new(links());
    nl.fail_on("add_address");
    let applied = apply(&plan, &mut nl).unwrap();
    assert_eq!(applied.failures.len(), 1);
    assert_eq!(applied.failures[0].0, "eth0");
    assert_eq!(applied.addresses[0], ("eth0".into(), vec![]));
    assert_eq!(applied.dhcp.len(), 1);
}

#[test]
fn listing_links_failure_stops_apply() {
    let mut nl = FakeNetlink::new(links());
    nl.fail_on("links");
    let got = apply(&NetPlan::default(), &mut nl);
    assert!(matches!(got, Err(PlanError::Links(_))), "{got:?}");
}

#[test]
fn default_plan_takes_wired_nics_only() {
    let tmp = TempDir::new("net-sysfs");
    let nic = |name: &str, kind: &str, device: bool, extra: Option<&str>| {
        tmp.write(&format!("class/net/{name}/type"), kind);
        if device {
            tmp.write(&format!("class/net/{name}/device/vendor"), "0x1af4\n");
        }
        if let Some(dir) = extra {
            tmp.write(&format!("class/net/{name}/{dir}/x"), "");
        }
    };
    nic("lo", "772\n", false, None);
    nic("ens3", "1\n", true, None);
    nic("enp0s1", "1\n", true, None);
    nic("veth0", "1\n", false, None);
    nic("wlan0", "1\n", true, Some("wireless"));
    nic("wlp2s0", "1\n", true, Some("phy80211"));
    nic("ib0", "32\n", true, None);
    let plan = default_plan(tmp.path()).unwrap();
    let names: Vec<(&str, bool)> = plan
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), i.dhcp4))
        .collect();
    assert_eq!(names, [("enp0s1", true), ("ens3", true)]);
}

#[test]
fn default_plan_without_sysfs_names_the_path() {
    let tmp = TempDir::new("net-nosysfs");
    let got = default_plan(tmp.path());
    assert!(
        matches!(&got, Err(PlanError::Sysfs(p, _)) if p.ends_with("class/net")),
        "{got:?}"
    );
}

#[test]
fn resolv_conf_text() {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let cases: Vec<(Vec<IpAddr>, Vec<&str>, &str)> = vec![
        (vec![], vec![], "# Generated by kiln-init.\n"),
        (
            vec![ip("10.0.2.3")],
            vec!["example.com"],
            "# Generated by kiln-init.\nnameserver 10.0.2.3\nsearch example.com\n",
        ),
        (
            vec![
                ip("1.1.1.1"),
                ip("1.1.1.1"),
                ip("fd00::53"),
                ip("8.8.8.8"),
                ip("9.9.9.9"),
            ],
            vec!["a.test.", "b.test", "a.test", " ", "bad domain"],
            "# Generated by kiln-init.\nnameserver 1.1.1.1\nnameserver fd00::53\n\
             nameserver 8.8.8.8\nsearch a.test b.test\n",
        ),
    ];
    for (ns, search, want) in cases {
        let search: Vec<String> = search.into_iter().map(String::from).collect();
        assert_eq!(render_resolv_conf(&ns, &search), want);
    }
}

#[test]
fn hosts_text() {
    let common = "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\n\
                  ff02::2\tip6-allrouters\n";
    let cases = [
        ("node-1", None, "127.0.1.1\tnode-1\n"),
        (
            "node-1",
            Some("node-1.example.com"),
            "127.0.1.1\tnode-1.example.com node-1\n",
        ),
        ("node-1", Some("node-1"), "127.0.1.1\tnode-1\n"),
    ];
    for (host, fqdn, line) in cases {
        let want = format!("# Generated by kiln-init.\n127.0.0.1\tlocalhost\n{line}{common}");
        assert_eq!(render_hosts(host, fqdn), want);
    }
}
