#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::net::codec::MessageType;
use crate::net::fake::{link, offered, Call, FakeClock, FakeFactory, FakeNetlink, Mode, SERVER_IP};
use crate::net::netlink::LinkKind;
use crate::net::plan::IfacePlan;
use crate::net::transport::Dest;

fn links() -> Vec<crate::net::Link> {
    vec![
        link(1, "lo", LinkKind::Loopback),
        link(2, "eth0", LinkKind::Ether),
        link(3, "eth1", LinkKind::Ether),
        link(4, "broken0", LinkKind::Ether),
    ]
}

fn dhcp(name: &str) -> IfacePlan {
    IfacePlan {
        name: name.into(),
        dhcp4: true,
        ..IfacePlan::default()
    }
}

fn run(
    plan: &NetPlan,
    nl: &FakeNetlink,
    factory: &FakeFactory,
    timeout: Duration,
) -> (NetStatus, Vec<NetEvent>) {
    let mut events = Vec::new();
    let status = bring_up(
        plan,
        Box::new(nl.clone()),
        factory,
        Arc::new(factory.clock.clone()),
        &mut |e: &NetEvent| events.push(e.clone()),
        timeout,
    );
    (status, events)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn static_only_is_online_at_once() {
    let plan = NetPlan {
        interfaces: vec![IfacePlan {
            name: "eth0".into(),
            addresses: vec!["192.168.1.10/24".parse().unwrap()],
            ..IfacePlan::default()
        }],
        nameservers: vec!["192.168.1.1".parse().unwrap()],
        ..NetPlan::default()
    };
    let factory = FakeFactory::new(Mode::Answer, 3600, FakeClock::default());
    let (status, events) = run(
        &plan,
        &FakeNetlink::new(links()),
        &factory,
        Duration::from_secs(5),
    );
    let online = NetEvent::Online {
        interfaces: vec![IfaceStatus {
            name: "eth0".into(),
            addresses: vec!["192.168.1.10/24".into()],
        }],
    };
    assert_eq!(events, vec![online]);
    assert!(status.online);
    assert_eq!(status.nameservers, plan.nameservers);
    assert_eq!(
        events[0].fields().to_string(),
        r#"{"interfaces":[{"addresses":["192.168.1.10/24"],"name":"eth0"}]}"#
    );
}

#[test]
fn dhcp_on_two_links_then_release_all() {
    let plan = NetPlan {
        interfaces: vec![dhcp("eth0"), dhcp("eth1")],
        nameservers: vec!["1.1.1.1".parse().unwrap()],
        search: vec!["corp.test".into()],
        hostname: Some("node-1".into()),
    };
    let nl = FakeNetlink::new(links());
    let factory = FakeFactory::new(Mode::Answer, 3600, FakeClock::default());
    let (mut status, events) = run(&plan, &nl, &factory, Duration::from_secs(10));
    assert!(status.online, "{:?}", status.failures);
    let NetEvent::Online { interfaces } = &events[0] else {
        panic!("{events:?}")
    };
    let mut got: Vec<(String, Vec<String>)> = interfaces
        .iter()
        .map(|i| (i.name.clone(), i.addresses.clone()))
        .collect();
    got.sort();
    let addr = |i: u8| format!("{}/24", offered([0x52, 0x54, 0, 0, 0, i]));
    assert_eq!(
        got,
        vec![
            ("eth0".into(), vec![addr(2)]),
            ("eth1".into(), vec![addr(3)])
        ]
    );
    assert_eq!(status.nameservers[0], "1.1.1.1".parse::<IpAddr>().unwrap());
    assert!(status.nameservers.contains(&"10.0.2.3".parse().unwrap()));
    assert!(status.search.contains(&"example.test".into()));
    assert!(nl
        .calls()
        .contains(&Call::AddRoute("0.0.0.0/0 via 10.0.2.2 dev 2".into())));

    assert_eq!(status.keeper.release_all(), 2);
    let releases: Vec<(String, Dest)> = factory
        .seen()
        .into_iter()
        .filter(|(_, kind, _)| *kind == MessageType::Release)
        .map(|(name, _, dest)| (name, dest))
        .collect();
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(releases.contains(&(
        "eth0".into(),
        Dest::Unicast {
            src: offered([0x52, 0x54, 0, 0, 0, 2]),
            server: SERVER_IP
        }
    )));
    let calls = nl.calls();
    let removed = Call::DelAddress(2, addr(2).parse().unwrap());
    assert!(calls.contains(&removed), "{calls:?}");
    let lost = status.keeper.updates();
    assert_eq!(
        lost.iter()
            .filter(|u| matches!(u, LeaseUpdate::Lost { .. }))
            .count(),
        2
    );
}

#[test]
fn silent_server_times_out_naming_the_interface() {
    let plan = NetPlan {
        interfaces: vec![dhcp("eth0")],
        ..NetPlan::default()
    };
    let factory = FakeFactory::new(Mode::Silent, 3600, FakeClock::default());
    let (mut status, events) = run(
        &plan,
        &FakeNetlink::new(links()),
        &factory,
        Duration::from_millis(300),
    );
    assert_eq!(
        events,
        vec![NetEvent::Timeout {
            waiting: vec!["eth0".into()]
        }]
    );
    assert_eq!(events[0].fields().to_string(), r#"{"waiting":["eth0"]}"#);
    assert!(!status.online);
    // DISCOVER was retransmitted with the fast schedule while we waited.
    let discovers = factory
        .seen()
        .iter()
        .filter(|s| s.1 == MessageType::Discover)
        .count();
    assert!(discovers >= 3, "{discovers}");
    assert_eq!(status.keeper.release_all(), 1);
    let releases = factory
        .seen()
        .iter()
        .filter(|s| s.1 == MessageType::Release)
        .count();
    assert_eq!(releases, 0, "nothing to release without a lease");
}

#[test]
fn keeper_renews_at_t1_by_unicast() {
    let plan = NetPlan {
        interfaces: vec![dhcp("eth0")],
        ..NetPlan::default()
    };
    let factory = FakeFactory::new(Mode::Answer, 20, FakeClock::default());
    let (mut status, _) = run(
        &plan,
        &FakeNetlink::new(links()),
        &factory,
        Duration::from_secs(10),
    );
    assert!(status.online);
    let renews = || {
        factory
            .seen()
            .iter()
            .filter(|(_, k, d)| *k == MessageType::Request && matches!(d, Dest::Unicast { .. }))
            .count()
    };
    wait_for("two renewals", || renews() >= 2);
    assert!(status
        .keeper
        .updates()
        .iter()
        .any(|u| matches!(u, LeaseUpdate::Bound { name, .. } if name == "eth0")));
    assert_eq!(status.keeper.release_all(), 1);
}

#[test]
fn unopenable_socket_and_missing_link_are_reported() {
    let plan = NetPlan {
        interfaces: vec![dhcp("eth0"), dhcp("broken0"), dhcp("eth7")],
        ..NetPlan::default()
    };
    let factory = FakeFactory::new(Mode::Answer, 3600, FakeClock::default());
    let start = Instant::now();
    let (mut status, events) = run(
        &plan,
        &FakeNetlink::new(links()),
        &factory,
        Duration::from_secs(30),
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "no wait for a dead interface"
    );
    assert_eq!(
        events,
        vec![NetEvent::Timeout {
            waiting: vec!["broken0".into()]
        }]
    );
    assert_eq!(status.missing, ["eth7"]);
    assert!(
        status.failures[0].starts_with("broken0: open DHCP socket"),
        "{:?}",
        status.failures
    );
    assert_eq!(status.keeper.release_all(), 1);
}

#[test]
fn unlistable_links_time_out_everything() {
    let plan = NetPlan {
        interfaces: vec![dhcp("eth0")],
        ..NetPlan::default()
    };
    let nl = FakeNetlink::new(links());
    nl.fail_on("links");
    let factory = FakeFactory::new(Mode::Answer, 3600, FakeClock::default());
    let (status, events) = run(&plan, &nl, &factory, Duration::from_secs(1));
    assert_eq!(
        events,
        vec![NetEvent::Timeout {
            waiting: vec!["eth0".into()]
        }]
    );
    assert!(status.failures[0].starts_with("list network links"));
}

#[test]
fn nak_restarts_discovery_until_timeout() {
    let plan = NetPlan {
        interfaces: vec![dhcp("eth0")],
        ..NetPlan::default()
    };
    let factory = FakeFactory::new(Mode::Nak, 3600, FakeClock::default());
    let (mut status, events) = run(
        &plan,
        &FakeNetlink::new(links()),
        &factory,
        Duration::from_millis(300),
    );
    assert!(
        matches!(&events[..], [NetEvent::Timeout { .. }]),
        "{events:?}"
    );
    assert_eq!(status.keeper.release_all(), 1);
    let kinds: Vec<MessageType> = factory.seen().iter().map(|s| s.1).collect();
    assert_eq!(
        &kinds[..4],
        [
            MessageType::Discover,
            MessageType::Request,
            MessageType::Discover,
            MessageType::Request
        ]
    );
}
