//! Robustness: decoding must never panic, whatever the kernel (or anything pretending to
//! be it) sends. Every truncation of every reply vector, byte flips of the vectors, random
//! datagrams and random attributes inside well-framed messages go through `Exchange` and
//! the model mapping. Deterministic: a fixed-seed xorshift generator, no new crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use netlink_packet_generic::constants::GENL_ID_CTRL;

use super::error_tests::{done, nlmsg};
use super::tests::{api, load, FAMILY};
use super::*;
use crate::lb::model::IpvsError;

/// xorshift64* (Vigna): plenty for shaking a decoder, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

/// (file, nlmsg_type of its data messages, sequence number)
const REPLIES: &[(&str, u16, u32)] = &[
    ("ctrl_family_ipvs.hex", GENL_ID_CTRL, 1),
    ("ctrl_family_enoent.hex", GENL_ID_CTRL, 1),
    ("get_service_dump.hex", FAMILY, 7),
    ("get_dest_dump.hex", FAMILY, 8),
    ("ack.hex", FAMILY, 10),
    ("new_service_eexist.hex", FAMILY, 9),
];

/// Everything a datagram can go through; returns the exchange outcome.
fn decode_all(datagram: &[u8], family: u16, seq: u32) -> Result<bool, IpvsError> {
    let mut ctrl = Exchange::<CtrlMessage>::new("fuzz", family, seq);
    if let Ok(true) = ctrl.feed(datagram) {
        let _ = resolve_family(Ok(ctrl.into_items()), "fuzz");
    }
    let mut ex = Exchange::<IpvsMessage>::new("fuzz", family, seq);
    let outcome = ex.feed(datagram);
    for msg in ex.into_items() {
        let _ = service_from(&msg, "fuzz");
        let _ = dest_from(&msg, &api(), "fuzz");
    }
    outcome
}

/// Runs `decode_all`, turning a panic into a failure that shows the input.
fn no_panic(datagram: &[u8], family: u16, seq: u32) -> Result<bool, IpvsError> {
    match catch_unwind(AssertUnwindSafe(|| decode_all(datagram, family, seq))) {
        Ok(outcome) => outcome,
        Err(_) => panic!("decoder panicked on {datagram:02x?}"),
    }
}

/// Offsets at which a netlink message of `datagram` starts (and its end).
fn boundaries(datagram: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = vec![0];
    while at + 4 <= datagram.len() {
        let len = u32::from_ne_bytes(datagram[at..at + 4].try_into().unwrap());
        at += usize::try_from(len).unwrap().next_multiple_of(4);
        out.push(at);
    }
    out
}

#[test]
#[cfg(target_endian = "little")]
fn every_truncation_is_malformed_or_incomplete() {
    for &(file, family, seq) in REPLIES {
        for (i, datagram) in load(file).iter().enumerate() {
            let cuts = boundaries(datagram);
            for cut in 0..datagram.len() {
                let outcome = no_panic(&datagram[..cut], family, seq);
                let at_boundary = cuts.contains(&cut);
                match outcome {
                    Ok(false) if at_boundary => {}
                    Err(IpvsError::Malformed { .. }) if !at_boundary => {}
                    other => panic!("{file} datagram {} cut at {cut}: {other:?}", i + 1),
                }
            }
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for &(file, family, seq) in REPLIES {
        for datagram in load(file) {
            for _ in 0..2000 {
                let mut d = datagram.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(d.len());
                    d[at] = rng.bytes(1)[0];
                }
                let _ = no_panic(&d, family, seq);
            }
        }
    }
}

#[test]
fn random_datagrams_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..5000 {
        let n = rng.below(256);
        let d = rng.bytes(n);
        let _ = no_panic(&d, FAMILY, 1);
    }
}

/// Random attribute soup inside well-framed messages, so the attribute and model layers
/// (not just the framing) see garbage: random kinds and lengths, with and without a
/// SERVICE/DEST nest around them.
#[test]
fn random_attributes_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..5000 {
        let mut attrs = Vec::new();
        for _ in 0..rng.below(8) {
            let len = rng.below(24);
            let kind = u16::try_from(rng.below(18)).unwrap();
            attrs.extend(u16::try_from(len + 4).unwrap().to_ne_bytes());
            attrs.extend(kind.to_ne_bytes());
            attrs.extend(rng.bytes(len));
            attrs.resize(attrs.len().next_multiple_of(4), 0);
        }
        let mut payload = vec![1, 1, 0, 0]; // genlmsghdr: NEW_SERVICE v1
        if rng.below(4) != 0 {
            let nest = u16::try_from(rng.below(3)).unwrap(); // 0, SERVICE or DEST
            payload.extend(u16::try_from(attrs.len() + 4).unwrap().to_ne_bytes());
            payload.extend(nest.to_ne_bytes());
        }
        payload.extend(&attrs);
        let mut d = nlmsg(FAMILY, 0x2, 1, &payload);
        d.extend(done(1, 0));
        let outcome = no_panic(&d, FAMILY, 1);
        assert!(
            matches!(outcome, Ok(true) | Err(IpvsError::Malformed { .. })),
            "{outcome:?}"
        );
    }
}
