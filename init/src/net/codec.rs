//! DHCPv4 message codec (RFC 2131 header, RFC 2132 options, RFC 3442 classless routes,
//! RFC 3396 long options split over several instances).
//!
//! Owns the byte layout only: no policy about which options to send or accept. Option
//! overload (52) is not interpreted: `sname` and `file` are kept as raw bytes.

use std::net::Ipv4Addr;

/// Size of the fixed BOOTP header before the magic cookie.
pub const HEADER_LEN: usize = 236;
/// RFC 2131 magic cookie.
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
/// The broadcast bit of the `flags` field.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Decoding failures; each names what was malformed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("DHCP message truncated: {0} bytes")]
    Truncated(usize),
    #[error("DHCP magic cookie missing")]
    BadCookie,
    #[error("DHCP option {code} truncated")]
    OptionTruncated { code: u8 },
    #[error("DHCP option {code} has invalid length {len}")]
    OptionLength { code: u8, len: usize },
}

/// Option 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }
}

/// One classless static route (option 121): `dst/prefix` via `gateway` (0.0.0.0 = on-link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClasslessRoute {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// The options Kiln understands; anything else is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpOption {
    SubnetMask(Ipv4Addr),
    Router(Vec<Ipv4Addr>),
    DnsServers(Vec<Ipv4Addr>),
    Hostname(String),
    DomainName(String),
    InterfaceMtu(u16),
    RequestedIp(Ipv4Addr),
    LeaseTime(u32),
    MessageType(MessageType),
    ServerId(Ipv4Addr),
    ParamRequestList(Vec<u8>),
    RenewalTime(u32),
    RebindingTime(u32),
    ClientId(Vec<u8>),
    ClasslessRoutes(Vec<ClasslessRoute>),
    Other(u8, Vec<u8>),
}

/// A whole DHCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpMessage {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub sname: [u8; 64],
    pub file: [u8; 128],
    pub options: Vec<DhcpOption>,
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl DhcpMessage {
    /// An empty BOOTREQUEST from Ethernet address `mac`.
    pub fn request(mac: [u8; 6], xid: u32) -> Self {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac);
        Self {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: [0; 64],
            file: [0; 128],
            options: Vec::new(),
        }
    }

    /// The Ethernet address in `chaddr`.
    pub fn mac(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.chaddr[..6]);
        mac
    }

    pub fn message_type(&self) -> Option<MessageType> {
        self.options.iter().find_map(|o| match o {
            DhcpOption::MessageType(t) => Some(*t),
            _ => None,
        })
    }

    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.options.iter().find_map(|o| match o {
            DhcpOption::ServerId(a) => Some(*a),
            _ => None,
        })
    }

    /// Encodes the message: header, cookie, options, end, padded to the 300-byte BOOTP
    /// minimum that some relays and servers still expect.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(548);
        out.extend_from_slice(&[self.op, self.htype, self.hlen, self.hops]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.chaddr);
        out.extend_from_slice(&self.sname);
        out.extend_from_slice(&self.file);
        out.extend_from_slice(&MAGIC);
        for option in &self.options {
            encode_option(option, &mut out);
        }
        out.push(255);
        if out.len() < 300 {
            out.resize(300, 0);
        }
        out
    }

    /// Decodes a message (request or reply); unknown options become `Other`.
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        if buf.len() < HEADER_LEN + MAGIC.len() {
            return Err(CodecError::Truncated(buf.len()));
        }
        if buf[HEADER_LEN..HEADER_LEN + 4] != MAGIC {
            return Err(CodecError::BadCookie);
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&buf[28..44]);
        let mut sname = [0u8; 64];
        sname.copy_from_slice(&buf[44..108]);
        let mut file = [0u8; 128];
        file.copy_from_slice(&buf[108..236]);
        let raw = raw_options(&buf[HEADER_LEN + 4..])?;
        let options = raw
            .into_iter()
            .map(|(code, value)| decode_option(code, value))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            op: buf[0],
            htype: buf[1],
            hlen: buf[2],
            hops: buf[3],
            xid: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            secs: u16::from_be_bytes([buf[8], buf[9]]),
            flags: u16::from_be_bytes([buf[10], buf[11]]),
            ciaddr: ip(&buf[12..16]),
            yiaddr: ip(&buf[16..20]),
            siaddr: ip(&buf[20..24]),
            giaddr: ip(&buf[24..28]),
            chaddr,
            sname,
            file,
            options,
        })
    }
}

/// Splits the option area into (code, value), concatenating repeated codes (RFC 3396).
fn raw_options(mut rest: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, CodecError> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            0 => rest = tail,
            255 => break,
            _ => {
                let (&len, tail) = tail
                    .split_first()
                    .ok_or(CodecError::OptionTruncated { code })?;
                let len = usize::from(len);
                if tail.len() < len {
                    return Err(CodecError::OptionTruncated { code });
                }
                let value = &tail[..len];
                match out.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, v)) => v.extend_from_slice(value),
                    None => out.push((code, value.to_vec())),
                }
                rest = &tail[len..];
            }
        }
    }
    Ok(out)
}

fn decode_option(code: u8, v: Vec<u8>) -> Result<DhcpOption, CodecError> {
    let bad = || CodecError::OptionLength { code, len: v.len() };
    let one_ip = || (v.len() == 4).then(|| ip(&v)).ok_or_else(bad);
    let ips = || {
        (!v.is_empty() && v.len().is_multiple_of(4))
            .then(|| v.chunks(4).map(ip).collect())
            .ok_or_else(bad)
    };
    let u32v = || {
        <[u8; 4]>::try_from(v.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| bad())
    };
    let text = || {
        String::from_utf8_lossy(&v)
            .trim_end_matches('\0')
            .to_string()
    };
    Ok(match code {
        1 => DhcpOption::SubnetMask(one_ip()?),
        3 => DhcpOption::Router(ips()?),
        6 => DhcpOption::DnsServers(ips()?),
        12 => DhcpOption::Hostname(text()),
        15 => DhcpOption::DomainName(text()),
        26 => DhcpOption::InterfaceMtu(
            <[u8; 2]>::try_from(v.as_slice())
                .map(u16::from_be_bytes)
                .map_err(|_| bad())?,
        ),
        50 => DhcpOption::RequestedIp(one_ip()?),
        51 => DhcpOption::LeaseTime(u32v()?),
        53 => match v.as_slice() {
            [t] => DhcpOption::MessageType(MessageType::from_u8(*t).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        54 => DhcpOption::ServerId(one_ip()?),
        55 => DhcpOption::ParamRequestList(v),
        58 => DhcpOption::RenewalTime(u32v()?),
        59 => DhcpOption::RebindingTime(u32v()?),
        61 => DhcpOption::ClientId(v),
        121 => DhcpOption::ClasslessRoutes(decode_classless(&v).ok_or_else(bad)?),
        _ => DhcpOption::Other(code, v),
    })
}

/// RFC 3442: width byte, significant destination octets, 4-byte router; repeated.
fn decode_classless(mut v: &[u8]) -> Option<Vec<ClasslessRoute>> {
    let mut routes = Vec::new();
    while let Some((&prefix, tail)) = v.split_first() {
        if prefix > 32 {
            return None;
        }
        let sig = usize::from(prefix).div_ceil(8);
        if tail.len() < sig + 4 {
            return None;
        }
        let mut dst = [0u8; 4];
        dst[..sig].copy_from_slice(&tail[..sig]);
        routes.push(ClasslessRoute {
            dst: Ipv4Addr::from(dst),
            prefix,
            gateway: ip(&tail[sig..sig + 4]),
        });
        v = &tail[sig + 4..];
    }
    (!routes.is_empty()).then_some(routes)
}

fn option_value(option: &DhcpOption) -> (u8, Vec<u8>) {
    let ips = |a: &[Ipv4Addr]| a.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
    match option {
        DhcpOption::SubnetMask(a) => (1, a.octets().to_vec()),
        DhcpOption::Router(a) => (3, ips(a)),
        DhcpOption::DnsServers(a) => (6, ips(a)),
        DhcpOption::Hostname(s) => (12, s.as_bytes().to_vec()),
        DhcpOption::DomainName(s) => (15, s.as_bytes().to_vec()),
        DhcpOption::InterfaceMtu(m) => (26, m.to_be_bytes().to_vec()),
        DhcpOption::RequestedIp(a) => (50, a.octets().to_vec()),
        DhcpOption::LeaseTime(t) => (51, t.to_be_bytes().to_vec()),
        DhcpOption::MessageType(t) => (53, vec![*t as u8]),
        DhcpOption::ServerId(a) => (54, a.octets().to_vec()),
        DhcpOption::ParamRequestList(p) => (55, p.clone()),
        DhcpOption::RenewalTime(t) => (58, t.to_be_bytes().to_vec()),
        DhcpOption::RebindingTime(t) => (59, t.to_be_bytes().to_vec()),
        DhcpOption::ClientId(c) => (61, c.clone()),
        DhcpOption::ClasslessRoutes(routes) => {
            let mut v = Vec::new();
            for r in routes {
                let sig = usize::from(r.prefix.min(32)).div_ceil(8);
                v.push(r.prefix.min(32));
                v.extend_from_slice(&r.dst.octets()[..sig]);
                v.extend_from_slice(&r.gateway.octets());
            }
            (121, v)
        }
        DhcpOption::Other(code, v) => (*code, v.clone()),
    }
}

/// Emits one option, split into 255-byte pieces when longer (RFC 3396).
fn encode_option(option: &DhcpOption, out: &mut Vec<u8>) {
    let (code, value) = option_value(option);
    if value.is_empty() {
        out.extend_from_slice(&[code, 0]);
    }
    for piece in value.chunks(255) {
        out.push(code);
        out.push(piece.len() as u8);
        out.extend_from_slice(piece);
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
