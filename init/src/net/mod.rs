//! Networking of a Kiln node: links, static addresses and routes over rtnetlink, our own
//! DHCPv4 client, resolv.conf and /etc/hosts text, and the `network_online` /
//! `network_timeout` events.
//!
//! Layout (host boundary behind narrow traits, everything else pure):
//! - [`netlink`]: the [`Netlink`] trait and [`RtNetlink`], its rtnetlink implementation.
//! - [`plan`]: the validated [`NetPlan`] input, [`apply`], the default plan and the text of
//!   /etc/resolv.conf and /etc/hosts.
//! - [`codec`], [`frame`]: DHCPv4 messages and the Ethernet/IPv4/UDP frames around them.
//! - [`client`]: the DHCP client state machine (no I/O, no clock); [`lease`] turns its
//!   leases into netlink operations.
//! - [`transport`]: the [`DhcpTransport`] trait and its AF_PACKET implementation.
//! - [`runner`]: [`bring_up`] and the [`DhcpKeeper`] that renews and releases leases.
//!
//! This module does not parse cloud-init (the config parser builds the plan), does not
//! write files (the caller writes resolv.conf and hosts atomically) and does not talk to
//! the event port (the caller passes an `emit` callback).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

pub mod client;
pub mod codec;
pub mod frame;
pub mod lease;
pub mod netlink;
pub mod plan;
pub mod runner;
pub mod transport;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod netns_tests;

pub use client::{Action, ClientConfig, DhcpClient, DhcpState, Lease};
pub use netlink::{Link, LinkKind, Netlink, NetlinkError, Route, RtNetlink};
pub use plan::{
    apply, default_plan, render_hosts, render_resolv_conf, Applied, DhcpTarget, IfacePlan, NetPlan,
    PlanError, StaticRoute,
};
pub use runner::{
    bring_up, Clock, DhcpKeeper, IfaceStatus, LeaseUpdate, NetEvent, NetStatus, SystemClock,
};
pub use transport::{Dest, DhcpTransport, RawFactory, TransportFactory};

/// An address with a prefix length, e.g. `10.0.2.15/24` or `fd00::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A prefix longer than the address allows, or text that is not `addr/prefix`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("prefix /{prefix} too long for {addr}")]
    PrefixTooLong { addr: IpAddr, prefix: u8 },
    #[error("parse CIDR {0:?}")]
    Syntax(String),
}

impl Cidr {
    /// `addr/prefix`; the prefix must fit the family (32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::PrefixTooLong { addr, prefix });
        }
        Ok(Self { addr, prefix })
    }

    /// IPv4 `addr/prefix` with the prefix clamped to 32.
    pub fn v4(addr: Ipv4Addr, prefix: u8) -> Self {
        Self {
            addr: IpAddr::V4(addr),
            prefix: prefix.min(32),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The default route of the address family of `addr`.
    pub fn default_for(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::v4(Ipv4Addr::UNSPECIFIED, 0),
            IpAddr::V6(_) => Self {
                addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                prefix: 0,
            },
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || CidrError::Syntax(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        Self::new(addr, prefix)
    }
}

/// Prefix length of a contiguous IPv4 netmask (`None` for e.g. 255.0.255.0).
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cidr_parses_and_rejects() {
        assert_eq!(
            "10.0.2.15/24".parse::<Cidr>().unwrap().to_string(),
            "10.0.2.15/24"
        );
        assert_eq!("fd00::1/64".parse::<Cidr>().unwrap().prefix(), 64);
        assert_eq!(
            "10.0.0.1/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                addr: "10.0.0.1".parse().unwrap(),
                prefix: 33
            })
        );
        for bad in ["10.0.0.1", "x/24", "10.0.0.1/x", ""] {
            assert_eq!(
                bad.parse::<Cidr>(),
                Err(CidrError::Syntax(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn netmask_prefixes() {
        let cases = [
            ("255.255.255.0", Some(24)),
            ("255.255.255.255", Some(32)),
            ("0.0.0.0", Some(0)),
            ("255.255.128.0", Some(17)),
            ("255.0.255.0", None),
        ];
        for (mask, want) in cases {
            assert_eq!(mask_to_prefix(mask.parse().unwrap()), want, "{mask}");
        }
    }
}
