//! Ethernet II + IPv4 + UDP framing for the DHCP client, which talks before it has an
//! address and so cannot use a UDP socket (RFC 2131 §4.1).
//!
//! Pure byte work: build a frame with correct IPv4 and UDP checksums; pick the UDP
//! payload to port 68 out of a received frame. The UDP checksum of received frames is
//! not verified: on veth and virtio with offload the kernel hands packet sockets frames
//! whose checksum is not filled in yet (dhclient skips it for the same reason); the IPv4
//! header checksum is always real and is verified.

use std::net::Ipv4Addr;

pub const ETH_HLEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const IP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;

/// The addresses of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// RFC 1071 ones' complement sum, folded and inverted.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds the whole Ethernet frame carrying `payload` in UDP over IPv4 (TTL 64, DF unset).
pub fn build(ep: &Endpoints, payload: &[u8]) -> Vec<u8> {
    let udp_len = (UDP_HLEN + payload.len()) as u16;
    let total = (IP_HLEN + UDP_HLEN + payload.len()) as u16;
    let mut f = Vec::with_capacity(ETH_HLEN + usize::from(total));
    f.extend_from_slice(&ep.dst_mac);
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let mut ip = [0u8; IP_HLEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&ep.src_ip.octets());
    ip[16..20].copy_from_slice(&ep.dst_ip.octets());
    let sum = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);

    let mut udp = [0u8; UDP_HLEN];
    udp[0..2].copy_from_slice(&ep.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&ep.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&ep.src_ip.octets());
    pseudo[4..8].copy_from_slice(&ep.dst_ip.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    let sum = match checksum(&[&pseudo, &udp, payload]) {
        0 => 0xffff, // 0 means "no checksum" in UDP
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&udp);
    f.extend_from_slice(payload);
    f
}

/// The UDP payload of `frame` when it is IPv4/UDP to `dst_port` with a valid IPv4 header;
/// `None` for anything else (other traffic on the wire is normal, not an error).
pub fn udp_payload(frame: &[u8], dst_port: u16) -> Option<&[u8]> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETH_HLEN..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IP_HLEN || ip.len() < ihl || checksum(&[&ip[..ihl]]) != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[9] != 17 || fragmented || total < ihl + UDP_HLEN || ip.len() < total {
        return None;
    }
    let udp = &ip[ihl..total];
    if u16::from_be_bytes([udp[2], udp[3]]) != dst_port {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    udp.get(UDP_HLEN..udp_len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn discover_endpoints() -> Endpoints {
        Endpoints {
            src_mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            dst_mac: BROADCAST_MAC,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2, checksum 220d.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[&[0x01]]), !0x0100);
    }

    #[test]
    fn built_frame_has_valid_checksums_and_layout() {
        let payload = b"hello dhcp";
        let f = build(&discover_endpoints(), payload);
        assert_eq!(f.len(), 14 + 20 + 8 + payload.len());
        assert_eq!(&f[0..6], &BROADCAST_MAC);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(checksum(&[&f[14..34]]), 0, "IPv4 header checksum");
        let mut pseudo = vec![0, 0, 0, 0, 255, 255, 255, 255, 0, 17];
        pseudo.extend_from_slice(&f[38..40]);
        assert_eq!(checksum(&[&pseudo, &f[34..]]), 0, "UDP checksum");
        assert_eq!(&f[34..38], &[0, 68, 0, 67]);
    }

    #[test]
    fn payload_extraction_filters() {
        let mut ep = discover_endpoints();
        ep.dst_port = CLIENT_PORT;
        let good = build(&ep, b"reply");
        assert_eq!(udp_payload(&good, CLIENT_PORT), Some(&b"reply"[..]));
        // Ethernet padding after the IP packet is ignored.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 20]);
        assert_eq!(udp_payload(&padded, CLIENT_PORT), Some(&b"reply"[..]));

        // Edits an IPv4 header field and recomputes the header checksum.
        let edit = |at: usize, value: u8| {
            let mut f = good.clone();
            f[at] = value;
            f[24..26].copy_from_slice(&[0, 0]);
            let sum = checksum(&[&f[14..34]]);
            f[24..26].copy_from_slice(&sum.to_be_bytes());
            f
        };
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut bad_sum = good.clone();
        bad_sum[24] ^= 0xff;
        let cases: [(&str, &[u8]); 7] = [
            ("arp", &arp),
            ("bad ip checksum", &bad_sum),
            ("truncated", &good[..30]),
            ("empty", &[]),
            ("tcp", &edit(23, 6)),
            ("more fragments", &edit(20, 0x20)),
            ("to server port", &build(&discover_endpoints(), b"x")),
        ];
        for (name, frame) in cases {
            assert_eq!(udp_payload(frame, CLIENT_PORT), None, "{name}");
        }
    }
}
