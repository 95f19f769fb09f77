//! The [`Netlink`] boundary (links, addresses, routes) and [`RtNetlink`], its
//! implementation over a synchronous rtnetlink socket (netlink-sys, no async runtime).
//!
//! Owns the translation of our plain requests into RTM_* messages and of kernel errors
//! into [`NetlinkError`]. Adds are idempotent (NLM_F_REPLACE), so re-applying a plan or
//! renewing a lease never fails with "File exists". No policy lives here.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::Cidr;

/// What a link is, as far as choosing a default plan is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Loopback,
    /// ARPHRD_ETHER without an IFLA_INFO_KIND: a physical (or paravirtual) NIC.
    Ether,
    /// A software link with its IFLA_INFO_KIND, e.g. `veth`, `bridge`.
    Virtual(String),
    /// Any other ARPHRD type.
    Other(u16),
}

/// One network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub up: bool,
    pub mtu: u32,
    pub kind: LinkKind,
}

/// One route in the main table: `dst` via `gateway` (none: on-link) out of link `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: Cidr,
    pub gateway: Option<IpAddr>,
    pub index: u32,
    pub metric: Option<u32>,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        write!(f, " dev {}", self.index)?;
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        Ok(())
    }
}

/// Failures of a netlink request; each says what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("open rtnetlink socket")]
    Open(#[source] io::Error),
    #[error("send {0} request")]
    Send(&'static str, #[source] io::Error),
    #[error("receive {0} reply")]
    Recv(&'static str, #[source] io::Error),
    #[error("decode {0} reply: {1}")]
    Decode(&'static str, String),
    #[error("kernel refused {0}")]
    Kernel(String, #[source] io::Error),
}

impl NetlinkError {
    /// The kernel said EEXIST (the object is there already).
    pub fn is_exists(&self) -> bool {
        matches!(self, NetlinkError::Kernel(_, e) if e.raw_os_error() == Some(libc::EEXIST))
    }
}

/// The host operations the network code needs. Implemented by [`RtNetlink`] and by the
/// recording fake of the unit tests.
pub trait Netlink {
    fn links(&mut self) -> Result<Vec<Link>, NetlinkError>;
    fn set_up(&mut self, index: u32) -> Result<(), NetlinkError>;
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetlinkError>;
    /// Renames a link (it must be down).
    fn set_name(&mut self, index: u32, name: &str) -> Result<(), NetlinkError>;
    /// Creates a dummy link (EEXIST when it is there already).
    fn add_dummy(&mut self, name: &str) -> Result<(), NetlinkError>;
    fn add_address(&mut self, index: u32, addr: Cidr) -> Result<(), NetlinkError>;
    fn del_address(&mut self, index: u32, addr: Cidr) -> Result<(), NetlinkError>;
    fn add_route(&mut self, route: &Route) -> Result<(), NetlinkError>;
    fn del_route(&mut self, route: &Route) -> Result<(), NetlinkError>;
}

/// rtnetlink over a blocking netlink socket.
pub struct RtNetlink {
    socket: Socket,
    seq: u32,
}

impl RtNetlink {
    pub fn new() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Open)?;
        socket.bind_auto().map_err(NetlinkError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Open)?;
        Ok(Self { socket, seq: 0 })
    }

    /// Sends one request and collects the replies up to the ACK or the end of the dump.
    fn request(
        &mut self,
        what: &'static str,
        detail: impl FnOnce() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| NetlinkError::Send(what, e))?;

        let mut out = Vec::new();
        loop {
            let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
            let n = self
                .socket
                .recv(&mut buf, 0)
                .map_err(|e| NetlinkError::Recv(what, e))?;
            let mut rest = &buf[..n.min(buf.len())];
            while !rest.is_empty() {
                let len = NetlinkBuffer::new_checked(rest)
                    .map_err(|e| NetlinkError::Decode(what, e.to_string()))?
                    .length() as usize;
                if len < 16 || len > rest.len() {
                    return Err(NetlinkError::Decode(what, format!("message length {len}")));
                }
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    .map_err(|e| NetlinkError::Decode(what, e.to_string()))?;
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out),
                        Some(_) => return Err(NetlinkError::Kernel(detail(), e.to_io())),
                    },
                    _ => {}
                }
            }
        }
    }

    fn ack(
        &mut self,
        what: &'static str,
        detail: impl FnOnce() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NetlinkError> {
        self.request(what, detail, msg, NLM_F_ACK | flags).map(drop)
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address_message(index: u32, cidr: Cidr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(cidr.addr());
    msg.header.prefix_len = cidr.prefix();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(cidr.addr()));
    msg.attributes.push(AddressAttribute::Address(cidr.addr()));
    if let IpAddr::V4(a) = cidr.addr() {
        if cidr.prefix() < 31 {
            let host = u32::MAX.checked_shr(u32::from(cidr.prefix())).unwrap_or(0);
            let brd = std::net::Ipv4Addr::from(u32::from(a) | host);
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
    }
    msg
}

fn route_message(route: &Route) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(route.dst.addr());
    msg.header.destination_prefix_length = route.dst.prefix();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.scope = if route.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    msg.header.kind = RouteType::Unicast;
    if route.dst.prefix() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route.dst.addr().into()));
    }
    if let Some(gw) = route.gateway {
        msg.attributes.push(RouteAttribute::Gateway(gw.into()));
    }
    msg.attributes.push(RouteAttribute::Oif(route.index));
    if let Some(metric) = route.metric {
        msg.attributes.push(RouteAttribute::Priority(metric));
    }
    msg
}

fn link_from(msg: LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        kind: match msg.header.link_layer_type {
            LinkLayerType::Loopback => LinkKind::Loopback,
            LinkLayerType::Ether => LinkKind::Ether,
            other => LinkKind::Other(u16::from(other)),
        },
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        if link.kind != LinkKind::Loopback {
                            link.kind = LinkKind::Virtual(kind.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    link
}

impl Netlink for RtNetlink {
    fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let req = RouteNetlinkMessage::GetLink(LinkMessage::default());
        let replies = self.request("link dump", String::new, req, NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })
            .collect())
    }

    fn set_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        let detail = || format!("set link {index} up");
        self.ack("link", detail, RouteNetlinkMessage::SetLink(msg), 0)
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        let detail = || format!("set mtu {mtu} on link {index}");
        self.ack("link", detail, RouteNetlinkMessage::SetLink(msg), 0)
    }

    fn set_name(&mut self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let detail = || format!("rename link {index} to {name}");
        self.ack("link", detail, RouteNetlinkMessage::SetLink(msg), 0)
    }

    fn add_dummy(&mut self, name: &str) -> Result<(), NetlinkError> {
        use netlink_packet_route::link::InfoKind;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Dummy,
            )]));
        let detail = || format!("create dummy link {name}");
        let flags = netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL;
        self.ack("link", detail, RouteNetlinkMessage::NewLink(msg), flags)
    }

    fn add_address(&mut self, index: u32, addr: Cidr) -> Result<(), NetlinkError> {
        let msg = RouteNetlinkMessage::NewAddress(address_message(index, addr));
        let detail = || format!("add address {addr} to link {index}");
        self.ack("address", detail, msg, NLM_F_CREATE | NLM_F_REPLACE)
    }

    fn del_address(&mut self, index: u32, addr: Cidr) -> Result<(), NetlinkError> {
        let msg = RouteNetlinkMessage::DelAddress(address_message(index, addr));
        let detail = || format!("delete address {addr} from link {index}");
        self.ack("address", detail, msg, 0)
    }

    fn add_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        let msg = RouteNetlinkMessage::NewRoute(route_message(route));
        let detail = || format!("add route {route}");
        self.ack("route", detail, msg, NLM_F_CREATE | NLM_F_REPLACE)
    }

    fn del_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        let msg = RouteNetlinkMessage::DelRoute(route_message(route));
        let detail = || format!("delete route {route}");
        self.ack("route", detail, msg, 0)
    }
}
