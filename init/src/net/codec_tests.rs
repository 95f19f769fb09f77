#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A QEMU user-networking (slirp) DHCPOFFER written byte by byte from the RFC 2131
/// layout: server 10.0.2.2 offers 10.0.2.15/24, router 10.0.2.2, DNS 10.0.2.3, 1 day.
fn slirp_offer() -> Vec<u8> {
    let head = "02 01 06 00  3903f326  0000 0000
                00000000  0a00020f  0a000202  00000000
                525400123456 00000000000000000000";
    let options = "63825363
                   350102
                   36040a000202
                   330400015180
                   0104ffffff00
                   03040a000202
                   06040a000203
                   ff";
    let mut bytes = unhex(head);
    bytes.extend(std::iter::repeat_n(0u8, 64 + 128));
    bytes.extend(unhex(options));
    bytes.resize(300, 0);
    bytes
}

#[test]
fn decodes_a_slirp_offer() {
    let bytes = slirp_offer();
    assert_eq!(bytes.len(), 300);
    let msg = DhcpMessage::decode(&bytes).unwrap();
    assert_eq!(msg.op, BOOTREPLY);
    assert_eq!(msg.xid, 0x3903_f326);
    assert_eq!(msg.yiaddr, Ipv4Addr::new(10, 0, 2, 15));
    assert_eq!(msg.siaddr, Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(msg.mac(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(msg.message_type(), Some(MessageType::Offer));
    assert_eq!(msg.server_id(), Some(Ipv4Addr::new(10, 0, 2, 2)));
    assert_eq!(
        msg.options,
        vec![
            DhcpOption::MessageType(MessageType::Offer),
            DhcpOption::ServerId(Ipv4Addr::new(10, 0, 2, 2)),
            DhcpOption::LeaseTime(86400),
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 2, 2)]),
            DhcpOption::DnsServers(vec![Ipv4Addr::new(10, 0, 2, 3)]),
        ]
    );
    // Our encoder reproduces the same bytes (same option order, same padding).
    assert_eq!(msg.encode(), bytes);
}

#[test]
fn encodes_a_discover_byte_exact() {
    let mut msg = DhcpMessage::request([0x52, 0x54, 0, 0x12, 0x34, 0x56], 0xdead_beef);
    msg.flags = FLAG_BROADCAST;
    msg.options = vec![
        DhcpOption::MessageType(MessageType::Discover),
        DhcpOption::ParamRequestList(vec![1, 3, 6, 15, 26, 121]),
        DhcpOption::ClientId(vec![1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
    ];
    let bytes = msg.encode();
    let mut want = unhex("01010600 deadbeef 0000 8000 00000000 00000000 00000000 00000000");
    want.extend(unhex("525400123456"));
    want.resize(236, 0);
    want.extend(unhex(
        "63825363 350101 3706 0103060f1a79 3d07 01525400123456 ff",
    ));
    want.resize(300, 0);
    assert_eq!(bytes, want);
}

#[test]
fn classless_routes_and_split_options() {
    // RFC 3442 encoding: 10.0.2.0/24 via 10.0.2.2, 0.0.0.0/0 via 10.0.2.1, 10.17.0.0/17
    // on-link; option 6 split over two instances (RFC 3396).
    let mut bytes = slirp_offer();
    bytes.truncate(240);
    bytes.extend(unhex(
        "350105
         7915 180a0002 0a000202 00 0a000201 110a1100 00000000
         0604 01010101  0604 08080808
         1a02 05dc  0c04 6e6f6465  0f07 6578616d706c65
         ff",
    ));
    let msg = DhcpMessage::decode(&bytes).unwrap();
    let route = |d: [u8; 4], p, g: [u8; 4]| ClasslessRoute {
        dst: d.into(),
        prefix: p,
        gateway: g.into(),
    };
    assert_eq!(
        msg.options,
        vec![
            DhcpOption::MessageType(MessageType::Ack),
            DhcpOption::ClasslessRoutes(vec![
                route([10, 0, 2, 0], 24, [10, 0, 2, 2]),
                route([0, 0, 0, 0], 0, [10, 0, 2, 1]),
                route([10, 17, 0, 0], 17, [0, 0, 0, 0]),
            ]),
            DhcpOption::DnsServers(vec![[1, 1, 1, 1].into(), [8, 8, 8, 8].into()]),
            DhcpOption::InterfaceMtu(1500),
            DhcpOption::Hostname("node".into()),
            DhcpOption::DomainName("example".into()),
        ]
    );
    let again = DhcpMessage::decode(&msg.encode()).unwrap();
    assert_eq!(again, msg);
}

#[test]
fn long_option_is_split_on_encode() {
    let mut msg = DhcpMessage::request([2; 6], 1);
    msg.options = vec![DhcpOption::Other(224, vec![7; 300])];
    let bytes = msg.encode();
    assert_eq!(&bytes[240..242], &[224, 255]);
    assert_eq!(&bytes[497..499], &[224, 45]);
    assert_eq!(DhcpMessage::decode(&bytes).unwrap().options, msg.options);
}

#[test]
fn bad_messages_name_the_problem() {
    let good = slirp_offer();
    let with_options = |opts: &str| {
        let mut b = good[..240].to_vec();
        b.extend(unhex(opts));
        b
    };
    let mut bad_cookie = good.clone();
    bad_cookie[236] = 0;
    let cases: Vec<(Vec<u8>, CodecError)> = vec![
        (good[..239].to_vec(), CodecError::Truncated(239)),
        (vec![], CodecError::Truncated(0)),
        (bad_cookie, CodecError::BadCookie),
        (
            with_options("3304 0001"),
            CodecError::OptionTruncated { code: 51 },
        ),
        (with_options("35"), CodecError::OptionTruncated { code: 53 }),
        (
            with_options("0103 ffffff ff"),
            CodecError::OptionLength { code: 1, len: 3 },
        ),
        (
            with_options("350109 ff"),
            CodecError::OptionLength { code: 53, len: 1 },
        ),
        (
            with_options("0300 ff"),
            CodecError::OptionLength { code: 3, len: 0 },
        ),
        (
            with_options("7903 21 0a0a ff"),
            CodecError::OptionLength { code: 121, len: 3 },
        ),
        (
            with_options("7905 19 0a000001 ff"),
            CodecError::OptionLength { code: 121, len: 5 },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(DhcpMessage::decode(&bytes), Err(want.clone()), "{want}");
    }
}

#[test]
fn pads_and_missing_end_are_accepted() {
    let mut b = slirp_offer()[..240].to_vec();
    b.extend(unhex("00 00 350105 00"));
    let msg = DhcpMessage::decode(&b).unwrap();
    assert_eq!(msg.message_type(), Some(MessageType::Ack));
}
