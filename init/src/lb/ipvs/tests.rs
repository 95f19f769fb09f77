//! Golden tests over init/testdata/ipvs: every request kind against its expected bytes,
//! every reply vector through `Exchange` and into `model` types (bad replies are in
//! `error_tests`). The vectors are little-endian, so those tests are too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::Path;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::constants::GENL_ID_CTRL;

use super::*;
use crate::lb::model::{Dest, Forward, IpvsError, Protocol, Service, ServiceKey};

pub(super) const FAMILY: u16 = 36;
const DO: u16 = NLM_F_REQUEST | NLM_F_ACK;
const DUMP: u16 = DO | NLM_F_DUMP;

/// Parses a testdata hex file: `#` comments, whitespace-separated byte pairs, a `---`
/// line between datagrams.
pub(super) fn parse_hex(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = vec![Vec::new()];
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line == "---" {
            out.push(Vec::new());
            continue;
        }
        for tok in line.split_whitespace() {
            let byte = match tok.len() {
                2 => u8::from_str_radix(tok, 16).ok(),
                _ => None,
            };
            let byte = byte.ok_or_else(|| format!("line {}: bad byte {tok:?}", n + 1))?;
            out.last_mut().ok_or("no datagram")?.push(byte);
        }
    }
    Ok(out)
}

pub(super) fn load(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/ipvs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    parse_hex(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(proto: Protocol, addr: &str, port: u16) -> ServiceKey {
    ServiceKey {
        addr: ip(addr),
        port,
        protocol: proto,
    }
}

pub(super) fn svc(k: ServiceKey, sched: &str, flags: u32, timeout: u32, netmask: u32) -> Service {
    Service {
        key: k,
        scheduler: sched.to_string(),
        flags,
        timeout,
        netmask,
        fwmark: 0,
    }
}

pub(super) fn api() -> ServiceKey {
    key(Protocol::Tcp, "10.96.0.1", 443)
}

fn dns6() -> ServiceKey {
    key(Protocol::Udp, "fd00::10", 53)
}

fn fwmark7() -> Service {
    Service {
        fwmark: 7,
        ..svc(key(Protocol::Tcp, "0.0.0.0", 0), "sh", 0, 0, u32::MAX)
    }
}

#[test]
#[cfg(target_endian = "little")]
fn requests_encode_to_expected_bytes() {
    let drained = Dest {
        forward: Forward::DirectRoute,
        u_threshold: 100,
        l_threshold: 10,
        ..Dest::new(ip("10.0.0.12"), 6443, 0)
    };
    let ipvs = |m: IpvsMessage, flags, seq| encode(m, FAMILY, flags, seq);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "req_get_family.hex",
            encode(get_family(), GENL_ID_CTRL, DO, 1),
        ),
        (
            "req_get_services.hex",
            ipvs(bare(Command::GetService), DUMP, 2),
        ),
        (
            "req_get_dests.hex",
            ipvs(service_key(Command::GetDest, &api()), DUMP, 3),
        ),
        (
            "req_new_service_v4.hex",
            ipvs(
                service(Command::NewService, &svc(api(), "rr", 0, 0, u32::MAX)),
                DO,
                4,
            ),
        ),
        (
            "req_set_service_v4.hex",
            ipvs(
                service(Command::SetService, &svc(api(), "sh", 1, 600, 0xffff_ff00)),
                DO,
                5,
            ),
        ),
        (
            "req_new_service_v6.hex",
            ipvs(
                service(Command::NewService, &svc(dns6(), "wrr", 0, 0, 128)),
                DO,
                6,
            ),
        ),
        (
            "req_new_service_fwmark.hex",
            ipvs(service(Command::NewService, &fwmark7()), DO, 7),
        ),
        (
            "req_del_service.hex",
            ipvs(service_key(Command::DelService, &api()), DO, 8),
        ),
        (
            "req_new_dest.hex",
            ipvs(
                dest(
                    Command::NewDest,
                    &api(),
                    &Dest::new(ip("10.0.0.11"), 6443, 1),
                ),
                DO,
                9,
            ),
        ),
        (
            "req_set_dest.hex",
            ipvs(dest(Command::SetDest, &api(), &drained), DO, 10),
        ),
        (
            "req_del_dest.hex",
            ipvs(dest(Command::DelDest, &api(), &drained), DO, 11),
        ),
        (
            "req_new_dest_v6.hex",
            ipvs(
                dest(
                    Command::NewDest,
                    &dns6(),
                    &Dest::new(ip("fd00::a"), 5353, 2),
                ),
                DO,
                12,
            ),
        ),
        ("req_flush.hex", ipvs(bare(Command::Flush), DO, 13)),
    ];
    for (file, got) in cases {
        let want = load(file).concat();
        assert_eq!(hex(&got), hex(&want), "{file}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Feeds every datagram of `file`; returns the items and whether the last one finished.
fn run<F>(file: &str, family: u16, seq: u32) -> Result<Vec<F>, IpvsError>
where
    F: netlink_packet_core::ParseableParametrized<[u8], netlink_packet_generic::GenlHeader>
        + std::fmt::Debug,
{
    let datagrams = load(file);
    let mut ex = Exchange::<F>::new("test", family, seq);
    for (i, d) in datagrams.iter().enumerate() {
        let done = ex.feed(d)?;
        assert_eq!(done, i + 1 == datagrams.len(), "{file}: datagram {}", i + 1);
    }
    Ok(ex.into_items())
}

#[test]
#[cfg(target_endian = "little")]
fn family_lookup_replies() {
    let ok = run::<CtrlMessage>("ctrl_family_ipvs.hex", GENL_ID_CTRL, 1);
    assert_eq!(resolve_family(ok, "test").unwrap(), FAMILY);

    let missing = run::<CtrlMessage>("ctrl_family_enoent.hex", GENL_ID_CTRL, 1);
    assert!(
        matches!(missing, Err(IpvsError::Kernel { errno: -2, .. })),
        "{missing:?}"
    );
    let resolved = resolve_family(missing, "test");
    assert!(
        matches!(resolved, Err(IpvsError::Unsupported)),
        "{resolved:?}"
    );
}

#[test]
#[cfg(target_endian = "little")]
fn service_dump_decodes_to_model() {
    let msgs = run::<IpvsMessage>("get_service_dump.hex", FAMILY, 7).unwrap();
    let got: Vec<Service> = msgs.iter().map(|m| service_from(m, "t").unwrap()).collect();
    let want = vec![
        svc(api(), "rr", 0, 0, u32::MAX),
        svc(dns6(), "wrr", 1, 300, 128),
        fwmark7(),
    ];
    assert_eq!(got, want);

    // A future kernel's attribute is kept, not fatal; the PE name is decoded.
    let CmdAttr::Service(v6) = &msgs[1].attrs[0] else {
        panic!("{:?}", msgs[1]);
    };
    assert!(v6.contains(&ServiceAttr::PeName("sip".into())));
    assert!(v6.contains(&ServiceAttr::Other {
        kind: 13,
        data: 0xdead_beef_u32.to_ne_bytes().to_vec()
    }));
    assert!(msgs.iter().all(|m| m.cmd == Command::NewService as u8));
}

#[test]
#[cfg(target_endian = "little")]
fn dest_dump_decodes_to_model() {
    let msgs = run::<IpvsMessage>("get_dest_dump.hex", FAMILY, 8).unwrap();
    let got: Vec<Dest> = msgs
        .iter()
        .map(|m| dest_from(m, &api(), "t").unwrap())
        .collect();
    let busy = Dest {
        active_conns: 3,
        inactive_conns: 5,
        ..Dest::new(ip("10.0.0.12"), 6443, 0)
    };
    assert_eq!(got, vec![Dest::new(ip("10.0.0.11"), 6443, 1), busy]);
}

#[test]
#[cfg(target_endian = "little")]
fn acks_refusals_and_stale_replies() {
    assert!(run::<IpvsMessage>("ack.hex", FAMILY, 10)
        .unwrap()
        .is_empty());

    // The same ACK answers an older request: ignored, the exchange goes on.
    let mut ex = Exchange::<IpvsMessage>::new("t", FAMILY, 11);
    assert!(!ex.feed(&load("ack.hex")[0]).unwrap());

    match run::<IpvsMessage>("new_service_eexist.hex", FAMILY, 9) {
        Err(IpvsError::Kernel { op, errno, text }) => {
            assert_eq!((op, errno), ("test", -libc::EEXIST));
            assert!(text.contains("File exists"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hexdump_output_reads_back() {
    let datagrams = load("get_service_dump.hex");
    assert_eq!(parse_hex(&hexdump(&datagrams)).unwrap(), datagrams);
}

#[test]
fn hex_parser_rejects_bad_tokens() {
    assert_eq!(
        parse_hex("01 02 # c\n---\n0a").unwrap(),
        vec![vec![1, 2], vec![10]]
    );
    assert!(parse_hex("1 02").is_err());
    assert!(parse_hex("zz").is_err());
}

#[test]
fn decodes_real_kernel_captures() {
    // Taken from Debian's 6.12 kernel in a QEMU guest by `init ipvs-dump` (see the files).
    let vip = key(Protocol::Tcp, "10.103.97.2", 6443);
    let msgs = run::<IpvsMessage>("captured_get_service_dump.hex", 0x23, 2).unwrap();
    let got: Vec<Service> = msgs.iter().map(|m| service_from(m, "t").unwrap()).collect();
    assert_eq!(got, vec![svc(vip, "rr", 0, 0, u32::MAX)]);
    let msgs = run::<IpvsMessage>("captured_get_dest_dump.hex", 0x23, 3).unwrap();
    let got: Vec<Dest> = msgs
        .iter()
        .map(|m| dest_from(m, &vip, "t").unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            Dest::new(ip("192.168.77.12"), 6443, 1),
            Dest::new(ip("192.168.77.11"), 6443, 1)
        ]
    );
}
