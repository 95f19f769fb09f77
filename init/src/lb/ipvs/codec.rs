//! IPVS generic-netlink messages: the payload types (`IpvsMessage`, `CtrlMessage`), the
//! requests Kiln sends, their encoding into complete netlink datagrams, and the mapping of
//! dumped attributes to `model::Service` / `model::Dest`.
//!
//! Pure (no I/O) and panic-free on any input. The nlmsghdr and the 4-byte genlmsghdr are
//! written by netlink-packet-core / netlink-packet-generic; the attributes by `attrs`.
//! Owns the wire conventions that are easy to get wrong: ports in network order, addresses
//! as 16 bytes, IPv4 netmasks as network-order bytes but IPv6 ones as a host-order prefix
//! length, and the kernel-internal `IP_VS_SVC_F_HASHED` flag stripped from dumps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    ParseableParametrized,
};
use netlink_packet_generic::constants::{CTRL_CMD_GETFAMILY, GENL_ID_CTRL};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use super::attrs::{parse_all, DestAttr, ServiceAttr, ADDR_LEN};
use super::nests::{CmdAttr, CtrlAttr};
use crate::lb::model::{Dest, Forward, IpvsError, Protocol, Service, ServiceKey};

/// `IPVS_GENL_NAME` and `IPVS_GENL_VERSION`.
pub const IPVS_GENL_NAME: &str = "IPVS";
pub const IPVS_GENL_VERSION: u8 = 1;

/// Version we put in controller requests (the kernel ignores it; nlctrl is version 2).
const CTRL_VERSION: u8 = 2;

/// `IP_VS_SVC_F_HASHED`: set by the kernel on every service in its table and reported by
/// dumps; not a property a client sets, so it is hidden from `Service::flags`.
pub const IP_VS_SVC_F_HASHED: u32 = 0x0002;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// `IPVS_CMD_*` (the ones Kiln uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    NewService = 1,
    SetService = 2,
    DelService = 3,
    GetService = 4,
    NewDest = 5,
    SetDest = 6,
    DelDest = 7,
    GetDest = 8,
    Flush = 17,
}

/// The payload of an IPVS generic-netlink message (after the genlmsghdr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    /// `IPVS_CMD_*`; a raw byte so replies with commands we do not name still decode.
    pub cmd: u8,
    pub attrs: Vec<CmdAttr>,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Self {
            cmd: header.cmd,
            attrs: parse_all(buf, CmdAttr::parse).context("IPVS attributes")?,
        })
    }
}

/// The payload of a generic-netlink controller message (family lookup only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtrlMessage {
    pub cmd: u8,
    pub attrs: Vec<CtrlAttr>,
}

impl GenlFamily for CtrlMessage {
    fn family_name() -> &'static str {
        "nlctrl"
    }
    fn family_id(&self) -> u16 {
        GENL_ID_CTRL
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        CTRL_VERSION
    }
}

impl Emitable for CtrlMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for CtrlMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Self {
            cmd: header.cmd,
            attrs: parse_all(buf, CtrlAttr::parse).context("nlctrl attributes")?,
        })
    }
}

/// Serializes one request: nlmsghdr (type = `family`, pid 0) + genlmsghdr + payload.
pub fn encode<F>(payload: F, family: u16, flags: u16, seq: u32) -> Vec<u8>
where
    F: GenlFamily + Emitable + std::fmt::Debug,
{
    let mut genl = GenlMessage::from_payload(payload);
    genl.set_resolved_family_id(family);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// `CTRL_CMD_GETFAMILY` for the IPVS family.
pub fn get_family() -> CtrlMessage {
    CtrlMessage {
        cmd: CTRL_CMD_GETFAMILY,
        attrs: vec![CtrlAttr::FamilyName(IPVS_GENL_NAME.to_string())],
    }
}

/// The family id in a controller reply.
pub fn family_id(msg: &CtrlMessage, op: &'static str) -> Result<u16, IpvsError> {
    msg.attrs
        .iter()
        .find_map(|a| match a {
            CtrlAttr::FamilyId(id) => Some(*id),
            _ => None,
        })
        .ok_or_else(|| malformed(op, "no CTRL_ATTR_FAMILY_ID"))
}

/// A message without attributes (`GET_SERVICE` dump, `FLUSH`).
pub fn bare(cmd: Command) -> IpvsMessage {
    IpvsMessage {
        cmd: cmd as u8,
        attrs: Vec::new(),
    }
}

/// A full service (`NEW_SERVICE`, `SET_SERVICE`): identity plus every attribute the kernel
/// requires of a full entry. A fwmark service is identified by AF + FWMARK.
pub fn service(cmd: Command, svc: &Service) -> IpvsMessage {
    let mut attrs = if svc.fwmark != 0 {
        vec![
            ServiceAttr::Af(af(svc.key.addr)),
            ServiceAttr::Fwmark(svc.fwmark),
        ]
    } else {
        key_attrs(&svc.key)
    };
    attrs.extend([
        ServiceAttr::SchedName(svc.scheduler.clone()),
        ServiceAttr::Flags {
            flags: svc.flags,
            mask: u32::MAX,
        },
        ServiceAttr::Timeout(svc.timeout),
        ServiceAttr::Netmask(netmask_to_wire(svc.key.addr, svc.netmask)),
    ]);
    IpvsMessage {
        cmd: cmd as u8,
        attrs: vec![CmdAttr::Service(attrs)],
    }
}

/// A service named by its identity only (`DEL_SERVICE`, `GET_DEST`).
pub fn service_key(cmd: Command, key: &ServiceKey) -> IpvsMessage {
    IpvsMessage {
        cmd: cmd as u8,
        attrs: vec![CmdAttr::Service(key_attrs(key))],
    }
}

/// A destination of a service. `NEW_DEST`/`SET_DEST` carry the full entry, `DEL_DEST`
/// only the identity.
pub fn dest(cmd: Command, key: &ServiceKey, d: &Dest) -> IpvsMessage {
    let mut attrs = vec![DestAttr::Addr(addr_bytes(d.addr)), DestAttr::Port(d.port)];
    if cmd != Command::DelDest {
        attrs.extend([
            DestAttr::FwdMethod(d.forward.code()),
            DestAttr::Weight(d.weight),
            DestAttr::UThresh(d.u_threshold),
            DestAttr::LThresh(d.l_threshold),
        ]);
    }
    attrs.push(DestAttr::AddrFamily(af(d.addr)));
    IpvsMessage {
        cmd: cmd as u8,
        attrs: vec![CmdAttr::Service(key_attrs(key)), CmdAttr::Dest(attrs)],
    }
}

fn key_attrs(key: &ServiceKey) -> Vec<ServiceAttr> {
    vec![
        ServiceAttr::Af(af(key.addr)),
        ServiceAttr::Protocol(key.protocol.number()),
        ServiceAttr::Addr(addr_bytes(key.addr)),
        ServiceAttr::Port(key.port),
    ]
}

fn af(addr: IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

fn addr_bytes(addr: IpAddr) -> [u8; ADDR_LEN] {
    let mut out = [0u8; ADDR_LEN];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

fn addr_from(family: u16, bytes: &[u8; ADDR_LEN], op: &'static str) -> Result<IpAddr, IpvsError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(*bytes))),
        other => Err(malformed(op, format!("unknown address family {other}"))),
    }
}

fn unspecified(family: u16, op: &'static str) -> Result<IpAddr, IpvsError> {
    addr_from(family, &[0u8; ADDR_LEN], op)
}

/// An IPv4 netmask (`0xffffff00` = 255.255.255.0) travels as network-order bytes in a u32
/// the kernel reads raw; an IPv6 one is a prefix length the kernel reads as a host u32.
fn netmask_to_wire(addr: IpAddr, netmask: u32) -> u32 {
    match addr {
        IpAddr::V4(_) => u32::from_ne_bytes(netmask.to_be_bytes()),
        IpAddr::V6(_) => netmask,
    }
}

fn netmask_from_wire(family: u16, raw: u32) -> u32 {
    if family == AF_INET {
        u32::from_be_bytes(raw.to_ne_bytes())
    } else {
        raw
    }
}

pub(crate) fn malformed(op: &'static str, reason: impl Into<String>) -> IpvsError {
    IpvsError::Malformed {
        op,
        reason: reason.into(),
    }
}

fn nested<'a, T>(
    msg: &'a IpvsMessage,
    pick: impl Fn(&'a CmdAttr) -> Option<&'a Vec<T>>,
    what: &str,
    op: &'static str,
) -> Result<&'a [T], IpvsError> {
    msg.attrs
        .iter()
        .find_map(pick)
        .map(Vec::as_slice)
        .ok_or_else(|| malformed(op, format!("message without {what}")))
}

macro_rules! find {
    ($attrs:expr, $pat:pat => $val:expr) => {
        $attrs.iter().find_map(|a| match a {
            $pat => Some($val),
            _ => None,
        })
    };
}

/// One service of a `GET_SERVICE` dump. Fwmark services get the unspecified address of
/// their family, port 0 and (absent PROTOCOL) TCP, as the kernel itself assumes.
pub fn service_from(msg: &IpvsMessage, op: &'static str) -> Result<Service, IpvsError> {
    let a = nested(
        msg,
        |c| match c {
            CmdAttr::Service(v) => Some(v),
            _ => None,
        },
        "IPVS_CMD_ATTR_SERVICE",
        op,
    )?;
    let need = |what: &str| malformed(op, format!("service without {what}"));
    let family = find!(a, ServiceAttr::Af(v) => *v).ok_or_else(|| need("AF"))?;
    let fwmark = find!(a, ServiceAttr::Fwmark(v) => *v).unwrap_or(0);
    let protocol = find!(a, ServiceAttr::Protocol(v) => Protocol::from_number(*v));
    let key = if fwmark != 0 {
        ServiceKey {
            addr: unspecified(family, op)?,
            port: 0,
            protocol: protocol.unwrap_or(Protocol::Tcp),
        }
    } else {
        let addr = find!(a, ServiceAttr::Addr(v) => v).ok_or_else(|| need("ADDR"))?;
        ServiceKey {
            addr: addr_from(family, addr, op)?,
            port: find!(a, ServiceAttr::Port(v) => *v).ok_or_else(|| need("PORT"))?,
            protocol: protocol.ok_or_else(|| need("PROTOCOL"))?,
        }
    };
    let flags =
        find!(a, ServiceAttr::Flags { flags, .. } => *flags).ok_or_else(|| need("FLAGS"))?;
    let netmask = find!(a, ServiceAttr::Netmask(v) => *v).ok_or_else(|| need("NETMASK"))?;
    Ok(Service {
        key,
        scheduler: find!(a, ServiceAttr::SchedName(s) => s.clone())
            .ok_or_else(|| need("SCHED_NAME"))?,
        flags: flags & !IP_VS_SVC_F_HASHED,
        timeout: find!(a, ServiceAttr::Timeout(v) => *v).ok_or_else(|| need("TIMEOUT"))?,
        netmask: netmask_from_wire(family, netmask),
        fwmark,
    })
}

/// One destination of a `GET_DEST` dump of the service `key`. Kernels before 3.18 send no
/// ADDR_FAMILY: then the destination has the service's family.
pub fn dest_from(msg: &IpvsMessage, key: &ServiceKey, op: &'static str) -> Result<Dest, IpvsError> {
    let a = nested(
        msg,
        |c| match c {
            CmdAttr::Dest(v) => Some(v),
            _ => None,
        },
        "IPVS_CMD_ATTR_DEST",
        op,
    )?;
    let need = |what: &str| malformed(op, format!("destination without {what}"));
    let family = find!(a, DestAttr::AddrFamily(v) => *v).unwrap_or_else(|| af(key.addr));
    let addr = find!(a, DestAttr::Addr(v) => v).ok_or_else(|| need("ADDR"))?;
    let u32_or_0 = |v: Option<u32>| v.unwrap_or(0);
    Ok(Dest {
        addr: addr_from(family, addr, op)?,
        port: find!(a, DestAttr::Port(v) => *v).ok_or_else(|| need("PORT"))?,
        weight: find!(a, DestAttr::Weight(v) => *v).ok_or_else(|| need("WEIGHT"))?,
        forward: Forward::from_code(
            find!(a, DestAttr::FwdMethod(v) => *v).ok_or_else(|| need("FWD_METHOD"))?,
        ),
        u_threshold: u32_or_0(find!(a, DestAttr::UThresh(v) => *v)),
        l_threshold: u32_or_0(find!(a, DestAttr::LThresh(v) => *v)),
        active_conns: u32_or_0(find!(a, DestAttr::ActiveConns(v) => *v)),
        inactive_conns: u32_or_0(find!(a, DestAttr::InactConns(v) => *v)),
    })
}
