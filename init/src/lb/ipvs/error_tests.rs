//! Bad replies: each must fail with the exact error kind (and a reason naming what was
//! wrong), never a panic or a silently short answer. Built by patching a valid reply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::tests::{api, svc, FAMILY};
use super::*;
use crate::lb::model::{IpvsError, Service};

/// One netlink message with a native-endian header (pid 0).
pub(super) fn nlmsg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + payload.len()).unwrap();
    let mut b = Vec::new();
    b.extend(len.to_ne_bytes());
    b.extend(kind.to_ne_bytes());
    b.extend(flags.to_ne_bytes());
    b.extend(seq.to_ne_bytes());
    b.extend(0u32.to_ne_bytes());
    b.extend(payload);
    b
}

/// NLMSG_DONE of exchange `seq` with dump status `code`.
pub(super) fn done(seq: u32, code: i32) -> Vec<u8> {
    nlmsg(3, 0x2, seq, &code.to_ne_bytes())
}

fn with_done(mut b: Vec<u8>) -> Vec<u8> {
    b.extend(done(1, 0));
    b
}

/// A valid dump reply for seq 1: NEW_SERVICE of the API service, then NLMSG_DONE.
fn service_reply() -> Vec<u8> {
    let svc = service(Command::NewService, &svc(api(), "rr", 0, 0, u32::MAX));
    with_done(encode(svc, FAMILY, 0x2, 1))
}

/// Decodes `datagram` as a complete dump reply for seq 1 and maps it to services.
fn decode_services(datagram: &[u8]) -> Result<Vec<Service>, IpvsError> {
    let mut ex = Exchange::<IpvsMessage>::new("t", FAMILY, 1);
    assert!(ex.feed(datagram)?, "exchange not complete");
    ex.into_items()
        .iter()
        .map(|m| service_from(m, "t"))
        .collect()
}

fn reason(r: Result<Vec<Service>, IpvsError>) -> String {
    match r {
        Err(IpvsError::Malformed { reason, .. }) => reason,
        other => panic!("want Malformed, got {other:?}"),
    }
}

/// The API service's full entry without attribute `kind`, as a reply for seq 1.
fn reply_without(kind: u16) -> Vec<u8> {
    let full = service(Command::NewService, &svc(api(), "rr", 0, 0, u32::MAX));
    let CmdAttr::Service(attrs) = &full.attrs[0] else {
        unreachable!()
    };
    let attrs = attrs
        .iter()
        .filter(|a| netlink_packet_core::Nla::kind(*a) != kind)
        .cloned()
        .collect();
    let msg = IpvsMessage {
        cmd: Command::NewService as u8,
        attrs: vec![CmdAttr::Service(attrs)],
    };
    with_done(encode(msg, FAMILY, 0x2, 1))
}

#[test]
fn bad_replies_are_malformed_with_reason() {
    let valid = service_reply();
    assert_eq!(decode_services(&valid).unwrap().len(), 1);
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = valid.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    // Offsets: 0 nlmsghdr, 16 genlmsghdr, 20 SERVICE nest header, 24 AF header, 28 AF value.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "length beyond datagram",
            patched(0, &0x1ffu16.to_ne_bytes()),
            "length",
        ),
        (
            "length below header",
            patched(0, &8u16.to_ne_bytes()),
            "length",
        ),
        (
            "wrong message type",
            patched(4, &37u16.to_ne_bytes()),
            "message of type 37",
        ),
        ("overrun", patched(4, &4u16.to_ne_bytes()), "NLMSG_OVERRUN"),
        ("no genl header", with_done(nlmsg(FAMILY, 0x2, 1, &[])), ""),
        (
            "AF of 3 bytes",
            patched(24, &7u16.to_ne_bytes()),
            "IPVS_SVC_ATTR_AF",
        ),
        (
            "nest longer than message",
            patched(20, &0xffu16.to_ne_bytes()),
            "",
        ),
        (
            "unknown family",
            patched(28, &7u16.to_ne_bytes()),
            "unknown address family 7",
        ),
        ("no AF", reply_without(1), "service without AF"),
        ("no PROTOCOL", reply_without(2), "service without PROTOCOL"),
        ("no PORT", reply_without(4), "service without PORT"),
        (
            "no SCHED_NAME",
            reply_without(6),
            "service without SCHED_NAME",
        ),
        ("no NETMASK", reply_without(9), "service without NETMASK"),
        (
            "no service nest",
            with_done(encode(bare(Command::NewService), FAMILY, 0x2, 1)),
            "message without IPVS_CMD_ATTR_SERVICE",
        ),
    ];
    for (case, datagram, want) in cases {
        let got = reason(decode_services(&datagram));
        assert!(got.contains(want), "{case}: reason {got:?} lacks {want:?}");
    }
}

#[test]
fn kernel_errors_in_done_and_positive_codes() {
    let mut ex = Exchange::<IpvsMessage>::new("t", FAMILY, 1);
    assert!(ex.feed(&done(1, 0)).unwrap());

    // A dump that failed in the kernel reports its errno in NLMSG_DONE.
    let mut ex = Exchange::<IpvsMessage>::new("t", FAMILY, 1);
    let err = ex.feed(&done(1, -libc::EINVAL));
    assert!(
        matches!(err, Err(IpvsError::Kernel { errno, .. }) if errno == -libc::EINVAL),
        "{err:?}"
    );

    // NLMSG_ERROR codes are 0 or negative; anything else is not a kernel we understand.
    let mut payload = 5i32.to_ne_bytes().to_vec();
    payload.extend([0u8; 16]);
    let mut ex = Exchange::<IpvsMessage>::new("t", FAMILY, 1);
    let err = ex.feed(&nlmsg(2, 0, 1, &payload));
    assert!(matches!(err, Err(IpvsError::Malformed { .. })), "{err:?}");
}
