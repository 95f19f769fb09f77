//! Turning a DHCP [`Lease`] into netlink operations on one link, and back.
//!
//! Owns the RFC 3442 rule (classless routes replace the router option) and the order of
//! operations; nothing else.

use std::net::IpAddr;

use super::client::Lease;
use super::netlink::{Netlink, NetlinkError, Route};
use super::Cidr;

/// The routes a lease asks for on link `index`.
pub fn routes(lease: &Lease, index: u32) -> Vec<Route> {
    if !lease.routes.is_empty() {
        return lease
            .routes
            .iter()
            .map(|r| Route {
                dst: Cidr::v4(r.dst, r.prefix),
                gateway: Some(IpAddr::V4(r.gateway)).filter(|g| !g.is_unspecified()),
                index,
                metric: None,
            })
            .collect();
    }
    lease
        .router
        .map(|gw| Route {
            dst: Cidr::default_for(IpAddr::V4(gw)),
            gateway: Some(IpAddr::V4(gw)),
            index,
            metric: None,
        })
        .into_iter()
        .collect()
}

/// MTU, address, then routes (a gateway must be reachable before a route uses it).
/// Every step is tried; the failures are returned.
pub fn configure(nl: &mut dyn Netlink, index: u32, lease: &Lease) -> Vec<NetlinkError> {
    let mut errors = Vec::new();
    if let Some(mtu) = lease.mtu {
        errors.extend(nl.set_mtu(index, u32::from(mtu)).err());
    }
    let addr = Cidr::v4(lease.address, lease.prefix);
    errors.extend(nl.add_address(index, addr).err());
    for route in routes(lease, index) {
        errors.extend(nl.add_route(&route).err());
    }
    errors
}

/// Routes, then the address. Routes the kernel already dropped with the address are not
/// an error worth reporting, so only the address removal's failure is returned.
pub fn deconfigure(nl: &mut dyn Netlink, index: u32, lease: &Lease) -> Vec<NetlinkError> {
    for route in routes(lease, index) {
        let _ = nl.del_route(&route);
    }
    let addr = Cidr::v4(lease.address, lease.prefix);
    nl.del_address(index, addr).err().into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::net::codec::ClasslessRoute;
    use crate::net::fake::{Call, FakeNetlink};
    use std::net::Ipv4Addr;

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
            router: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: vec![],
            domain: None,
            hostname: None,
            mtu: Some(1400),
            routes: vec![],
            server: Ipv4Addr::new(10, 0, 2, 2),
            lease_time: None,
            t1: None,
            t2: None,
            expiry: None,
        }
    }

    #[test]
    fn router_lease_configures_mtu_address_default_route() {
        let mut nl = FakeNetlink::new(vec![]);
        assert!(configure(&mut nl, 2, &lease()).is_empty());
        assert_eq!(
            nl.calls(),
            vec![
                Call::SetMtu(2, 1400),
                Call::AddAddress(2, "10.0.2.15/24".parse().unwrap()),
                Call::AddRoute("0.0.0.0/0 via 10.0.2.2 dev 2".into()),
            ]
        );
        assert!(deconfigure(&mut nl, 2, &lease()).is_empty());
        assert_eq!(
            nl.calls()[3..],
            [
                Call::DelRoute("0.0.0.0/0 via 10.0.2.2 dev 2".into()),
                Call::DelAddress(2, "10.0.2.15/24".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn classless_routes_replace_the_router() {
        let mut l = lease();
        l.mtu = None;
        l.routes = vec![
            ClasslessRoute {
                dst: Ipv4Addr::new(10, 9, 0, 0),
                prefix: 16,
                gateway: Ipv4Addr::UNSPECIFIED,
            },
            ClasslessRoute {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Ipv4Addr::new(10, 0, 2, 1),
            },
        ];
        let got: Vec<String> = routes(&l, 3).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.9.0.0/16 dev 3", "0.0.0.0/0 via 10.0.2.1 dev 3"]);
    }

    #[test]
    fn failures_are_collected_and_the_rest_still_runs() {
        let mut nl = FakeNetlink::new(vec![]);
        nl.fail_on("set_mtu");
        let errors = configure(&mut nl, 2, &lease());
        assert_eq!(errors.len(), 1);
        assert_eq!(nl.calls().len(), 3);
    }
}
