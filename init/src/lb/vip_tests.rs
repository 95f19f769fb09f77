#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::net::fake::{Call, FakeNetlink};
use crate::net::{Link, LinkKind};
use crate::testutil::TempDir;

/// A /proc/net/route as a QEMU guest shows it: slirp default route on eth0, an L2 /24
/// on eth1 (addresses little-endian hex).
const PROC_ROUTE: &str =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth1\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth1\t004EA8C0\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

#[test]
fn parses_proc_net_route() {
    let routes = parse_proc_route(PROC_ROUTE);
    assert_eq!(routes.len(), 3, "the route without RTF_UP is skipped");
    assert_eq!(
        routes[0],
        KernelRoute {
            iface: "eth0".into(),
            dst: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            metric: 0
        }
    );
    assert_eq!(routes[2].dst, Ipv4Addr::new(192, 168, 77, 0));
    assert_eq!(routes[2].prefix, 24);
    assert_eq!(routes[2].gateway, None);
}

#[test]
fn egress_is_longest_prefix() {
    let routes = parse_proc_route(PROC_ROUTE);
    let cases = [
        (Ipv4Addr::new(192, 168, 77, 11), "eth1", None),
        (Ipv4Addr::new(10, 0, 2, 9), "eth0", None),
        (
            Ipv4Addr::new(8, 8, 8, 8),
            "eth0",
            Some(Ipv4Addr::new(10, 0, 2, 2)),
        ),
    ];
    for (ip, iface, gw) in cases {
        let r = egress(ip, &routes).unwrap();
        assert_eq!((r.iface.as_str(), r.gateway), (iface, gw), "{ip}");
    }
    assert_eq!(egress(Ipv4Addr::new(8, 8, 8, 8), &routes[1..]), None);
}

#[test]
fn mode_follows_locality_unless_forced() {
    assert_eq!(choose(ModeChoice::Auto, false), Mode::Route);
    assert_eq!(choose(ModeChoice::Auto, true), Mode::Link);
    assert_eq!(choose(ModeChoice::Route, true), Mode::Route);
    assert_eq!(choose(ModeChoice::Link, false), Mode::Link);
    assert!(is_local("127.0.0.1".parse().unwrap()));
    assert!(!is_local("192.0.2.77".parse().unwrap()));
}

#[test]
fn hosts_file_points_the_api_name_once() {
    let before =
        "127.0.0.1 localhost\n10.0.0.9 apiserver.cluster.local\n::1 localhost ip6-localhost\n";
    let after = hosts_with(before, "10.103.97.2".parse().unwrap());
    assert_eq!(
        after,
        "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.103.97.2 apiserver.cluster.local\n"
    );
    assert_eq!(hosts_with(&after, "10.103.97.2".parse().unwrap()), after);
}

#[test]
fn snat_ruleset_is_idempotent_nft_input() {
    let r = snat_ruleset("10.103.97.2".parse().unwrap());
    assert!(
        r.starts_with("table ip kiln_lb\ndelete table ip kiln_lb\n"),
        "{r}"
    );
    assert!(r.contains("ip saddr 10.103.97.2 oifname != \"kiln-lb0\" masquerade"));
}

#[test]
fn route_mode_installs_the_vip_route_towards_the_backend() {
    let tmp = TempDir::new("vip");
    tmp.write("sys/class/net/eth1/ifindex", "3\n");
    let mut nl = FakeNetlink::new(vec![]);
    let vip: IpAddr = "10.103.97.2".parse().unwrap();
    let got = install_route(
        &mut nl,
        &tmp.path().join("sys"),
        PROC_ROUTE,
        vip,
        "192.168.77.11".parse().unwrap(),
    )
    .unwrap();
    let want = Route {
        dst: Cidr::new(vip, 32).unwrap(),
        gateway: None,
        index: 3,
        metric: None,
    };
    assert_eq!(got, Installed::Route(want));
    assert_eq!(nl.calls(), vec![Call::AddRoute(want.to_string())]);
    let err = install_route(
        &mut nl,
        &tmp.path().join("sys"),
        "",
        vip,
        "192.168.77.11".parse().unwrap(),
    );
    assert!(matches!(err, Err(VipError::NoRoute(_))), "{err:?}");
    let v6 = install_route(
        &mut nl,
        &tmp.path().join("sys"),
        PROC_ROUTE,
        "fd00::1".parse().unwrap(),
        "fd00::2".parse().unwrap(),
    );
    assert!(matches!(v6, Err(VipError::RouteV6)));
}

#[test]
fn link_mode_creates_the_dummy_with_the_vip() {
    let link = Link {
        index: 9,
        name: LINK.into(),
        mac: None,
        up: false,
        mtu: 1500,
        kind: LinkKind::Virtual("dummy".into()),
    };
    let mut nl = FakeNetlink::new(vec![link]);
    let vip: IpAddr = "10.103.97.2".parse().unwrap();
    assert_eq!(
        install_link(&mut nl, vip).unwrap(),
        Installed::Link { index: 9 }
    );
    assert_eq!(
        nl.calls(),
        vec![
            Call::AddDummy(LINK.into()),
            Call::AddAddress(9, Cidr::new(vip, 32).unwrap()),
            Call::SetUp(9),
        ]
    );
}
