#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn client(fast: bool) -> DhcpClient {
    DhcpClient::new(ClientConfig {
        mac: MAC,
        hostname: Some("node-1".into()),
        fast_start: fast,
        seed: 42,
    })
}

/// A server reply of `kind` to the client's current transaction.
fn reply(c: &DhcpClient, kind: MessageType, addr: Ipv4Addr, lease: u32) -> Vec<u8> {
    let mut m = DhcpMessage::request(MAC, c.xid());
    m.op = BOOTREPLY;
    m.yiaddr = addr;
    m.options = vec![
        DhcpOption::MessageType(kind),
        DhcpOption::ServerId(SERVER),
        DhcpOption::LeaseTime(lease),
        DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
        DhcpOption::Router(vec![SERVER]),
        DhcpOption::DnsServers(vec![Ipv4Addr::new(10, 0, 2, 3)]),
        DhcpOption::InterfaceMtu(1400),
    ];
    m.encode()
}

fn sent(actions: &[Action]) -> Vec<(MessageType, Dest, &DhcpMessage)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { message, dest } => Some((message.message_type()?, *dest, message)),
            _ => None,
        })
        .collect()
}

fn only_send(actions: &[Action]) -> (MessageType, Dest, DhcpMessage) {
    let all = sent(actions);
    assert_eq!(all.len(), 1, "{actions:?}");
    assert_eq!(all.len(), actions.len(), "{actions:?}");
    (all[0].0, all[0].1, all[0].2.clone())
}

const BCAST0: Dest = Dest::Broadcast {
    src: Ipv4Addr::UNSPECIFIED,
};

/// Drives a client to BOUND at t=10 s with a 1000 s lease sent at t=9 s.
fn bound() -> DhcpClient {
    let mut c = client(true);
    c.start(s(0));
    c.on_packet(&reply(&c, MessageType::Offer, ADDR, 1000), s(9));
    let actions = c.on_packet(&reply(&c, MessageType::Ack, ADDR, 1000), s(10));
    assert!(matches!(actions.as_slice(), [Action::Configure(_)]));
    c
}

fn assert_near(got: Option<Duration>, want: Duration, spread: Duration) {
    let got = got.expect("a deadline");
    assert!(
        got + spread >= want && got <= want + spread,
        "deadline {got:?} not within {spread:?} of {want:?}"
    );
}

#[test]
fn start_broadcasts_discover_with_fast_backoff() {
    let mut c = client(true);
    assert_eq!(c.state(), DhcpState::Init);
    let (kind, dest, msg) = only_send(&c.start(s(0)));
    assert_eq!(
        (kind, dest, c.state()),
        (MessageType::Discover, BCAST0, DhcpState::Selecting)
    );
    assert_eq!(msg.xid, c.xid());
    assert!(msg.options.contains(&DhcpOption::Hostname("node-1".into())));
    assert!(msg.options.contains(&DhcpOption::ClientId(vec![
        1, 0x52, 0x54, 0, 0x12, 0x34, 0x56
    ])));
    let mut now = s(0);
    let mut want = Vec::new();
    let mut got = Vec::new();
    for base in [1, 2, 4, 8, 16, 32, 64, 64] {
        let deadline = c.deadline().unwrap();
        got.push(deadline - now);
        want.push(base);
        assert_near(
            Some(deadline - now),
            s(base),
            Duration::from_millis(base.min(4) * 250),
        );
        now = deadline;
        let (kind, _, msg) = only_send(&c.on_timeout(now));
        assert_eq!((kind, msg.xid), (MessageType::Discover, c.xid()));
    }
    assert_eq!(c.state(), DhcpState::Selecting, "{got:?} for {want:?}");
}

#[test]
fn rfc_backoff_starts_at_four_seconds() {
    let mut c = client(false);
    c.start(s(0));
    assert_near(c.deadline(), s(4), s(1));
    let d = c.deadline().unwrap();
    c.on_timeout(d);
    assert_near(c.deadline().map(|x| x - d), s(8), s(1));
}

#[test]
fn early_timeout_does_nothing() {
    let mut c = client(true);
    c.start(s(0));
    assert_eq!(c.on_timeout(Duration::from_millis(500)), vec![]);
}

#[test]
fn offer_leads_to_broadcast_request() {
    let mut c = client(true);
    c.start(s(0));
    let xid = c.xid();
    let (kind, dest, msg) = only_send(&c.on_packet(&reply(&c, MessageType::Offer, ADDR, 60), s(1)));
    assert_eq!(
        (kind, dest, c.state()),
        (MessageType::Request, BCAST0, DhcpState::Requesting)
    );
    assert_eq!(msg.xid, xid, "same transaction");
    assert_eq!(msg.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert!(msg.options.contains(&DhcpOption::RequestedIp(ADDR)));
    assert!(msg.options.contains(&DhcpOption::ServerId(SERVER)));
}

#[test]
fn replies_not_for_us_are_ignored() {
    let mut c = client(true);
    c.start(s(0));
    let good = reply(&c, MessageType::Offer, ADDR, 60);
    let mut wrong_xid = good.clone();
    wrong_xid[4] ^= 1;
    let mut wrong_mac = good.clone();
    wrong_mac[33] ^= 1;
    let mut request_op = good.clone();
    request_op[0] = 1;
    let ack = reply(&c, MessageType::Ack, ADDR, 60);
    let no_addr = reply(&c, MessageType::Offer, Ipv4Addr::UNSPECIFIED, 60);
    let cases: [(&str, &[u8]); 6] = [
        ("wrong xid", &wrong_xid),
        ("wrong chaddr", &wrong_mac),
        ("BOOTREQUEST", &request_op),
        ("ACK while selecting", &ack),
        ("offer of 0.0.0.0", &no_addr),
        ("garbage", b"not dhcp"),
    ];
    for (name, bytes) in cases {
        assert_eq!(c.on_packet(bytes, s(1)), vec![], "{name}");
        assert_eq!(c.state(), DhcpState::Selecting, "{name}");
    }
}

#[test]
fn ack_binds_with_the_whole_lease() {
    let c = bound();
    assert_eq!(c.state(), DhcpState::Bound);
    let lease = c.lease().unwrap();
    assert_eq!(
        (lease.address, lease.prefix, lease.router, lease.mtu),
        (ADDR, 24, Some(SERVER), Some(1400))
    );
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
    // Times count from the REQUEST (t=9), with RFC default T1 = 50 %, T2 = 87.5 %.
    assert_eq!(
        (lease.t1, lease.t2, lease.expiry),
        (Some(s(509)), Some(s(884)), Some(s(1009)))
    );
    assert_eq!(c.deadline(), Some(s(509)));
}

#[test]
fn ack_from_another_server_is_ignored_while_requesting() {
    let mut c = client(true);
    c.start(s(0));
    c.on_packet(&reply(&c, MessageType::Offer, ADDR, 60), s(1));
    let mut other = DhcpMessage::decode(&reply(&c, MessageType::Ack, ADDR, 60)).unwrap();
    other.options[1] = DhcpOption::ServerId(Ipv4Addr::new(10, 0, 2, 99));
    assert_eq!(c.on_packet(&other.encode(), s(2)), vec![]);
    assert_eq!(c.state(), DhcpState::Requesting);
}

#[test]
fn nak_while_requesting_restarts_with_a_new_xid() {
    let mut c = client(true);
    c.start(s(0));
    c.on_packet(&reply(&c, MessageType::Offer, ADDR, 60), s(1));
    let old = c.xid();
    let (kind, dest, msg) = only_send(&c.on_packet(&reply(&c, MessageType::Nak, ADDR, 60), s(2)));
    assert_eq!(
        (kind, dest, c.state()),
        (MessageType::Discover, BCAST0, DhcpState::Selecting)
    );
    assert_ne!(msg.xid, old);
}

#[test]
fn unanswered_requests_restart_discovery() {
    let mut c = client(true);
    c.start(s(0));
    c.on_packet(&reply(&c, MessageType::Offer, ADDR, 60), s(1));
    for _ in 0..REQUEST_RETRIES {
        let d = c.deadline().unwrap();
        assert_eq!(only_send(&c.on_timeout(d)).0, MessageType::Request);
    }
    let d = c.deadline().unwrap();
    assert_eq!(only_send(&c.on_timeout(d)).0, MessageType::Discover);
    assert_eq!(c.state(), DhcpState::Selecting);
}

#[test]
fn t1_renews_by_unicast_and_ack_rebinds_the_timers() {
    let mut c = bound();
    let (kind, dest, msg) = only_send(&c.on_timeout(s(509)));
    assert_eq!(c.state(), DhcpState::Renewing);
    assert_eq!(kind, MessageType::Request);
    assert_eq!(
        dest,
        Dest::Unicast {
            src: ADDR,
            server: SERVER
        }
    );
    assert_eq!(msg.ciaddr, ADDR);
    assert!(!msg
        .options
        .iter()
        .any(|o| matches!(o, DhcpOption::RequestedIp(_) | DhcpOption::ServerId(_))));
    // Retry at half the time left until T2 (884 - 509 = 375 s → 187.5 s).
    assert_eq!(c.deadline(), Some(s(509) + Duration::from_millis(187_500)));
    let actions = c.on_packet(&reply(&c, MessageType::Ack, ADDR, 1000), s(510));
    assert_eq!(c.state(), DhcpState::Bound);
    let [Action::Configure(lease)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(lease.t1, Some(s(1009)), "renewed from the REQUEST at 509 s");
}

#[test]
fn renew_retries_never_closer_than_60_s() {
    let mut c = bound();
    c.on_timeout(s(509));
    c.on_timeout(s(800));
    assert_eq!(c.deadline(), Some(s(860)));
    assert_eq!(c.state(), DhcpState::Renewing);
    // The last retry is clamped to T2.
    c.on_timeout(s(860));
    assert_eq!(c.deadline(), Some(s(884)));
}

#[test]
fn nak_while_renewing_deconfigures_and_restarts() {
    let mut c = bound();
    c.on_timeout(s(509));
    let actions = c.on_packet(&reply(&c, MessageType::Nak, ADDR, 0), s(510));
    assert!(
        matches!(&actions[0], Action::Deconfigure(l) if l.address == ADDR),
        "{actions:?}"
    );
    assert_eq!(sent(&actions)[0].0, MessageType::Discover);
    assert_eq!(c.state(), DhcpState::Selecting);
    assert_eq!(c.lease(), None);
}

#[test]
fn t2_rebinds_by_broadcast_and_a_new_address_replaces_the_old() {
    let mut c = bound();
    c.on_timeout(s(509));
    let (kind, dest, msg) = only_send(&c.on_timeout(s(884)));
    assert_eq!(c.state(), DhcpState::Rebinding);
    assert_eq!(
        (kind, dest, msg.ciaddr),
        (MessageType::Request, Dest::Broadcast { src: ADDR }, ADDR)
    );
    let new = Ipv4Addr::new(10, 0, 2, 16);
    let actions = c.on_packet(&reply(&c, MessageType::Ack, new, 1000), s(885));
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Deconfigure(old), Action::Configure(l)] if old.address == ADDR && l.address == new
        ),
        "{actions:?}"
    );
    assert_eq!(c.state(), DhcpState::Bound);
}

#[test]
fn expiry_removes_the_address_and_restarts() {
    let mut c = bound();
    c.on_timeout(s(509));
    c.on_timeout(s(884));
    let half = Duration::from_millis(62_500);
    assert_eq!(
        c.deadline(),
        Some(s(884) + half),
        "max(60 s, (1009 - 884) / 2)"
    );
    assert_eq!(
        only_send(&c.on_timeout(s(884) + half)).0,
        MessageType::Request
    );
    let actions = c.on_timeout(s(1009));
    assert!(matches!(&actions[0], Action::Deconfigure(l) if l.address == ADDR));
    assert_eq!(sent(&actions)[0].0, MessageType::Discover);
    assert_eq!((c.state(), c.lease()), (DhcpState::Selecting, None));
}

#[test]
fn release_sends_dhcprelease_and_goes_idle() {
    let mut c = bound();
    let actions = c.release(s(20));
    let (kind, dest, msg) = sent(&actions)[0];
    assert_eq!(
        (kind, dest),
        (
            MessageType::Release,
            Dest::Unicast {
                src: ADDR,
                server: SERVER
            }
        )
    );
    assert_eq!(msg.ciaddr, ADDR);
    assert!(msg.options.contains(&DhcpOption::ServerId(SERVER)));
    assert!(matches!(&actions[1], Action::Deconfigure(l) if l.address == ADDR));
    assert_eq!((c.state(), c.deadline()), (DhcpState::Released, None));
    assert_eq!(c.on_timeout(s(10_000)), vec![]);
    assert_eq!(c.release(s(21)), vec![], "second release is a no-op");
}

#[test]
fn release_without_lease_sends_nothing() {
    let mut c = client(true);
    c.start(s(0));
    assert_eq!(c.release(s(1)), vec![]);
    assert_eq!(c.state(), DhcpState::Released);
}

#[test]
fn infinite_lease_never_renews() {
    let mut c = client(true);
    c.start(s(0));
    c.on_packet(&reply(&c, MessageType::Offer, ADDR, u32::MAX), s(1));
    c.on_packet(&reply(&c, MessageType::Ack, ADDR, u32::MAX), s(1));
    assert_eq!((c.state(), c.deadline()), (DhcpState::Bound, None));
    assert_eq!(c.lease().unwrap().expiry, None);
}

#[test]
fn server_t1_t2_are_used_when_consistent() {
    let ack = |t1: u32, t2: u32| {
        let mut c = client(true);
        c.start(s(0));
        c.on_packet(&reply(&c, MessageType::Offer, ADDR, 100), s(0));
        let mut m = DhcpMessage::decode(&reply(&c, MessageType::Ack, ADDR, 100)).unwrap();
        m.options.push(DhcpOption::RenewalTime(t1));
        m.options.push(DhcpOption::RebindingTime(t2));
        c.on_packet(&m.encode(), s(0));
        let l = c.lease().unwrap().clone();
        (l.t1.unwrap().as_secs(), l.t2.unwrap().as_secs())
    };
    assert_eq!(ack(30, 60), (30, 60));
    assert_eq!(ack(70, 60), (50, 60), "T1 after T2 falls back to 50 %");
    assert_eq!(
        ack(30, 200),
        (30, 87),
        "T2 after expiry falls back to 87.5 %"
    );
}
