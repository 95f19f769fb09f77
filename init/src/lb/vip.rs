//! Making the VIP reachable on this node, in one of two modes:
//! - route: a `VIP/32` route out of the interface (and via the gateway) that reaches the
//!   first backend; no interface holds the VIP, IPVS catches the connections in
//!   LOCAL_OUT and rewrites the destination (lvscare's mode; right for workers);
//! - link: a dummy link `kiln-lb0` holds the VIP (connections are local, IPVS serves them
//!   in LOCAL_IN), and an nftables rule masquerades what leaves with the VIP as source,
//!   so remote backends answer to a routable address while a local backend works too.
//!
//! `auto` picks link when a backend is one of this node's addresses, else route.
//!
//! Owns the plans (pure) and their application through `Netlink` and `nft`; it does not
//! touch IPVS itself (reconcile.rs does).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::net::{Cidr, Netlink, Route};

use super::settings::ModeChoice;

/// The dummy link of link mode.
pub const LINK: &str = "kiln-lb0";
/// nftables table holding link mode's masquerade rule.
pub const NFT_TABLE: &str = "kiln_lb";
/// The name kubeadm configs use for the API endpoint.
pub const API_NAME: &str = "apiserver.cluster.local";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Route,
    Link,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Route => "route",
            Mode::Link => "link",
        }
    }
}

/// The mode for `choice` given whether some backend is local.
pub fn choose(choice: ModeChoice, local_backend: bool) -> Mode {
    match choice {
        ModeChoice::Route => Mode::Route,
        ModeChoice::Link => Mode::Link,
        ModeChoice::Auto if local_backend => Mode::Link,
        ModeChoice::Auto => Mode::Route,
    }
}

/// True when `ip` is one of this node's addresses (binding to it succeeds).
pub fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// One IPv4 route of /proc/net/route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub iface: String,
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub metric: u32,
}

/// Parses /proc/net/route (addresses are little-endian hex on every architecture Kiln
/// targets: the kernel prints the raw __be32 as a host-order number).
pub fn parse_proc_route(text: &str) -> Vec<KernelRoute> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_le_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dst, gw, flags, metric, mask) = (
                f.first()?,
                f.get(1)?,
                f.get(2)?,
                f.get(3)?,
                f.get(6)?,
                f.get(7)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            if flags & 0x1 == 0 {
                return None; // not RTF_UP
            }
            let gateway = hex(gw).filter(|g| !g.is_unspecified() && flags & 0x2 != 0);
            let mask = u32::from_be_bytes(hex(mask)?.octets());
            Some(KernelRoute {
                iface: (*iface).to_string(),
                dst: hex(dst)?,
                prefix: u8::try_from(mask.count_ones()).ok()?,
                gateway,
                metric: metric.parse().ok()?,
            })
        })
        .collect()
}

/// The route the kernel would use for `ip`: longest prefix, then lowest metric.
pub fn egress(ip: Ipv4Addr, routes: &[KernelRoute]) -> Option<&KernelRoute> {
    let ip = u32::from(ip);
    routes
        .iter()
        .filter(|r| {
            let mask = if r.prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(r.prefix))
            };
            ip & mask == u32::from(r.dst) & mask
        })
        .max_by(|a, b| a.prefix.cmp(&b.prefix).then(b.metric.cmp(&a.metric)))
}

/// /etc/hosts with `name` pointing at `addr` (earlier lines for the name dropped).
pub fn hosts_with(existing: &str, addr: IpAddr) -> String {
    let mut out: String = existing
        .lines()
        .filter(|l| !l.split_whitespace().skip(1).any(|n| n == API_NAME))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{addr} {API_NAME}\n"));
    out
}

/// nftables ruleset of link mode: masquerade what IPVS sends out with the VIP as source.
pub fn snat_ruleset(vip: IpAddr) -> String {
    let family = if vip.is_ipv4() { "ip" } else { "ip6" };
    format!(
        "table {family} {NFT_TABLE}\ndelete table {family} {NFT_TABLE}\ntable {family} {NFT_TABLE} {{\n  chain post {{\n    type nat hook postrouting priority srcnat; policy accept;\n    {family} saddr {vip} oifname != \"{LINK}\" masquerade\n  }}\n}}\n"
    )
}

/// Errors making the VIP reachable.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("route mode supports IPv4 VIPs only")]
    RouteV6,
    #[error("no route to backend {0} (is the network up?)")]
    NoRoute(IpAddr),
    #[error("interface {0}: no ifindex")]
    Ifindex(String),
    #[error("no link {LINK} after creating it")]
    NoLink,
    #[error("netlink")]
    Netlink(#[source] crate::net::NetlinkError),
    #[error("nft: {0}")]
    Nft(String),
}

/// What was set up, to undo at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Route(Route),
    Link { index: u32 },
}

/// Route mode: `vip/32` the way the kernel reaches `backend`.
pub fn install_route(
    nl: &mut dyn Netlink,
    sys_root: &Path,
    proc_route: &str,
    vip: IpAddr,
    backend: IpAddr,
) -> Result<Installed, VipError> {
    let (IpAddr::V4(_), IpAddr::V4(b4)) = (vip, backend) else {
        return Err(VipError::RouteV6);
    };
    let routes = parse_proc_route(proc_route);
    let via = egress(b4, &routes).ok_or(VipError::NoRoute(backend))?;
    let index = ifindex(sys_root, &via.iface)?;
    let route = Route {
        dst: Cidr::new(vip, 32).map_err(|_| VipError::RouteV6)?,
        gateway: via.gateway.map(IpAddr::V4),
        index,
        metric: None,
    };
    match nl.add_route(&route) {
        Ok(()) => Ok(Installed::Route(route)),
        Err(e) if e.is_exists() => Ok(Installed::Route(route)),
        Err(e) => Err(VipError::Netlink(e)),
    }
}

/// Link mode: the dummy link with the VIP, up.
pub fn install_link(nl: &mut dyn Netlink, vip: IpAddr) -> Result<Installed, VipError> {
    match nl.add_dummy(LINK) {
        Ok(()) => {}
        Err(e) if e.is_exists() => {}
        Err(e) => return Err(VipError::Netlink(e)),
    }
    let links = nl.links().map_err(VipError::Netlink)?;
    let index = links
        .iter()
        .find(|l| l.name == LINK)
        .map(|l| l.index)
        .ok_or(VipError::NoLink)?;
    let prefix = if vip.is_ipv4() { 32 } else { 128 };
    let cidr = Cidr::new(vip, prefix).map_err(|_| VipError::NoLink)?;
    nl.add_address(index, cidr).map_err(VipError::Netlink)?;
    nl.set_up(index).map_err(VipError::Netlink)?;
    Ok(Installed::Link { index })
}

/// Undoes `installed` (best effort at shutdown).
pub fn uninstall(nl: &mut dyn Netlink, installed: &Installed, vip: IpAddr) {
    match installed {
        Installed::Route(route) => {
            let _ = nl.del_route(route);
        }
        Installed::Link { index } => {
            let prefix = if vip.is_ipv4() { 32 } else { 128 };
            if let Ok(cidr) = Cidr::new(vip, prefix) {
                let _ = nl.del_address(*index, cidr);
            }
        }
    }
}

fn ifindex(sys_root: &Path, iface: &str) -> Result<u32, VipError> {
    let path = sys_root.join("class/net").join(iface).join("ifindex");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| VipError::Ifindex(iface.to_string()))
}

#[cfg(test)]
#[path = "vip_tests.rs"]
mod tests;
