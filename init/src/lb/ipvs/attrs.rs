//! The attributes inside IPVS's service and destination nests as typed enums: one variant
//! per attribute of `include/uapi/linux/ip_vs.h`, `Other` for the rest, so a newer
//! kernel's additions never break decoding. The first-level nests are in `nests`.
//!
//! Pure: encoding is the `Nla` trait of netlink-packet-core, decoding never panics (every
//! attribute buffer comes from `NlasIterator`, which checks lengths, and every value is
//! length-checked before use). Knows nothing about `model` types; `codec` maps them.

use netlink_packet_core::{
    parse_u16, parse_u16_be, parse_u32, parse_u8, DecodeError, ErrorContext, Nla, NlaBuffer,
    NlasIterator,
};

// IPVS_SVC_ATTR_*: inside IPVS_CMD_ATTR_SERVICE.
pub const IPVS_SVC_ATTR_AF: u16 = 1;
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
pub const IPVS_SVC_ATTR_STATS: u16 = 10;
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

// IPVS_DEST_ATTR_*: inside IPVS_CMD_ATTR_DEST.
pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const IPVS_DEST_ATTR_STATS: u16 = 10;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

/// `sizeof(union nf_inet_addr)`: addresses always travel as 16 bytes, IPv4 in the first 4.
pub const ADDR_LEN: usize = 16;

/// An attribute inside `IPVS_CMD_ATTR_SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAttr {
    Af(u16),
    Protocol(u16),
    Addr([u8; ADDR_LEN]),
    /// Network byte order on the wire; host order here.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    /// `struct ip_vs_flags`: only the bits in `mask` are applied by the kernel.
    Flags {
        flags: u32,
        mask: u32,
    },
    Timeout(u32),
    /// The raw `u32` as the kernel stores it: for IPv4 a mask whose *bytes* are in network
    /// order, for IPv6 a prefix length. `codec` does the per-family conversion.
    Netmask(u32),
    /// Nested statistics, kept opaque (Kiln does not read them).
    Stats(Vec<u8>),
    PeName(String),
    Stats64(Vec<u8>),
    Other {
        kind: u16,
        data: Vec<u8>,
    },
}

/// An attribute inside `IPVS_CMD_ATTR_DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestAttr {
    Addr([u8; ADDR_LEN]),
    /// Network byte order on the wire; host order here.
    Port(u16),
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Vec<u8>),
    AddrFamily(u16),
    Stats64(Vec<u8>),
    TunType(u8),
    /// Network byte order on the wire; host order here.
    TunPort(u16),
    TunFlags(u16),
    Other {
        kind: u16,
        data: Vec<u8>,
    },
}

/// Parses a run of attributes with `one`; the first bad one fails the whole run.
pub fn parse_all<T>(
    buf: &[u8],
    one: impl Fn(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    NlasIterator::new(buf)
        .map(|nla| nla.and_then(|nla| one(&nla)))
        .collect()
}

fn addr(v: &[u8]) -> Result<[u8; ADDR_LEN], DecodeError> {
    let mut out = [0u8; ADDR_LEN];
    match v.len() {
        // Some clients send bare IPv4 addresses; the kernel zero-fills (nla_memcpy).
        4 | ADDR_LEN => {
            out[..v.len()].copy_from_slice(v);
            Ok(out)
        }
        n => Err(DecodeError::from(format!(
            "address of {n} bytes (want 4 or 16)"
        ))),
    }
}

/// A NUL-terminated string; bytes after the first NUL are ignored as the kernel does.
pub(super) fn string(v: &[u8]) -> Result<String, DecodeError> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8(v[..end].to_vec()).map_err(|_| DecodeError::from("string is not UTF-8"))
}

fn flags(v: &[u8]) -> Result<(u32, u32), DecodeError> {
    match (v.get(0..4), v.get(4..8), v.len()) {
        (Some(f), Some(m), 8) => Ok((parse_u32(f)?, parse_u32(m)?)),
        _ => Err(DecodeError::from(format!(
            "ip_vs_flags of {} bytes (want 8)",
            v.len()
        ))),
    }
}

pub(super) fn put_str(buf: &mut [u8], s: &str) {
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
}

impl ServiceAttr {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            IPVS_SVC_ATTR_AF => Self::Af(parse_u16(v).context("IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => {
                Self::Protocol(parse_u16(v).context("IPVS_SVC_ATTR_PROTOCOL")?)
            }
            IPVS_SVC_ATTR_ADDR => Self::Addr(addr(v).context("IPVS_SVC_ATTR_ADDR")?),
            IPVS_SVC_ATTR_PORT => Self::Port(parse_u16_be(v).context("IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => Self::Fwmark(parse_u32(v).context("IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => {
                Self::SchedName(string(v).context("IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                let (flags, mask) = flags(v).context("IPVS_SVC_ATTR_FLAGS")?;
                Self::Flags { flags, mask }
            }
            IPVS_SVC_ATTR_TIMEOUT => Self::Timeout(parse_u32(v).context("IPVS_SVC_ATTR_TIMEOUT")?),
            IPVS_SVC_ATTR_NETMASK => Self::Netmask(parse_u32(v).context("IPVS_SVC_ATTR_NETMASK")?),
            IPVS_SVC_ATTR_STATS => Self::Stats(v.to_vec()),
            IPVS_SVC_ATTR_PE_NAME => Self::PeName(string(v).context("IPVS_SVC_ATTR_PE_NAME")?),
            IPVS_SVC_ATTR_STATS64 => Self::Stats64(v.to_vec()),
            kind => Self::Other {
                kind,
                data: v.to_vec(),
            },
        })
    }
}

impl Nla for ServiceAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Af(_) | Self::Protocol(_) | Self::Port(_) => 2,
            Self::Addr(_) => ADDR_LEN,
            Self::Fwmark(_) | Self::Timeout(_) | Self::Netmask(_) => 4,
            Self::SchedName(s) | Self::PeName(s) => s.len() + 1,
            Self::Flags { .. } => 8,
            Self::Stats(d) | Self::Stats64(d) | Self::Other { data: d, .. } => d.len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Af(_) => IPVS_SVC_ATTR_AF,
            Self::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Self::Addr(_) => IPVS_SVC_ATTR_ADDR,
            Self::Port(_) => IPVS_SVC_ATTR_PORT,
            Self::Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            Self::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Self::Flags { .. } => IPVS_SVC_ATTR_FLAGS,
            Self::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Self::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Self::Stats(_) => IPVS_SVC_ATTR_STATS,
            Self::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Self::Stats64(_) => IPVS_SVC_ATTR_STATS64,
            Self::Other { kind, .. } => *kind,
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Self::Af(v) | Self::Protocol(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Self::Port(v) => buf.copy_from_slice(&v.to_be_bytes()),
            Self::Addr(a) => buf.copy_from_slice(a),
            Self::Fwmark(v) | Self::Timeout(v) | Self::Netmask(v) => {
                buf.copy_from_slice(&v.to_ne_bytes())
            }
            Self::SchedName(s) | Self::PeName(s) => put_str(buf, s),
            Self::Flags { flags, mask } => {
                buf[..4].copy_from_slice(&flags.to_ne_bytes());
                buf[4..8].copy_from_slice(&mask.to_ne_bytes());
            }
            Self::Stats(d) | Self::Stats64(d) | Self::Other { data: d, .. } => {
                buf.copy_from_slice(d)
            }
        }
    }
}

impl DestAttr {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let v = nla.value();
        let u32_of = |what: &'static str| parse_u32(v).context(what);
        Ok(match nla.kind() {
            IPVS_DEST_ATTR_ADDR => Self::Addr(addr(v).context("IPVS_DEST_ATTR_ADDR")?),
            IPVS_DEST_ATTR_PORT => Self::Port(parse_u16_be(v).context("IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => Self::FwdMethod(u32_of("IPVS_DEST_ATTR_FWD_METHOD")?),
            IPVS_DEST_ATTR_WEIGHT => Self::Weight(u32_of("IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => Self::UThresh(u32_of("IPVS_DEST_ATTR_U_THRESH")?),
            IPVS_DEST_ATTR_L_THRESH => Self::LThresh(u32_of("IPVS_DEST_ATTR_L_THRESH")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                Self::ActiveConns(u32_of("IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => Self::InactConns(u32_of("IPVS_DEST_ATTR_INACT_CONNS")?),
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                Self::PersistConns(u32_of("IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => Self::Stats(v.to_vec()),
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                Self::AddrFamily(parse_u16(v).context("IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => Self::Stats64(v.to_vec()),
            IPVS_DEST_ATTR_TUN_TYPE => {
                Self::TunType(parse_u8(v).context("IPVS_DEST_ATTR_TUN_TYPE")?)
            }
            IPVS_DEST_ATTR_TUN_PORT => {
                Self::TunPort(parse_u16_be(v).context("IPVS_DEST_ATTR_TUN_PORT")?)
            }
            IPVS_DEST_ATTR_TUN_FLAGS => {
                Self::TunFlags(parse_u16(v).context("IPVS_DEST_ATTR_TUN_FLAGS")?)
            }
            kind => Self::Other {
                kind,
                data: v.to_vec(),
            },
        })
    }
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Addr(_) => ADDR_LEN,
            Self::Port(_) | Self::AddrFamily(_) | Self::TunPort(_) | Self::TunFlags(_) => 2,
            Self::TunType(_) => 1,
            Self::FwdMethod(_)
            | Self::Weight(_)
            | Self::UThresh(_)
            | Self::LThresh(_)
            | Self::ActiveConns(_)
            | Self::InactConns(_)
            | Self::PersistConns(_) => 4,
            Self::Stats(d) | Self::Stats64(d) | Self::Other { data: d, .. } => d.len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Addr(_) => IPVS_DEST_ATTR_ADDR,
            Self::Port(_) => IPVS_DEST_ATTR_PORT,
            Self::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Self::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            Self::UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            Self::LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            Self::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            Self::InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            Self::PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Self::Stats(_) => IPVS_DEST_ATTR_STATS,
            Self::AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Self::Stats64(_) => IPVS_DEST_ATTR_STATS64,
            Self::TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            Self::TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            Self::TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Self::Other { kind, .. } => *kind,
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Self::Addr(a) => buf.copy_from_slice(a),
            Self::Port(v) | Self::TunPort(v) => buf.copy_from_slice(&v.to_be_bytes()),
            Self::AddrFamily(v) | Self::TunFlags(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Self::TunType(v) => buf.copy_from_slice(&[*v]),
            Self::FwdMethod(v)
            | Self::Weight(v)
            | Self::UThresh(v)
            | Self::LThresh(v)
            | Self::ActiveConns(v)
            | Self::InactConns(v)
            | Self::PersistConns(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Self::Stats(d) | Self::Stats64(d) | Self::Other { data: d, .. } => {
                buf.copy_from_slice(d)
            }
        }
    }
}
