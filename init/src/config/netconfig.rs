//! NoCloud `network-config`: cloud-init network config version 1 and version 2
//! (netplan-like), with or without a top-level `network:` key, turned into
//! `NetworkConfig`. Bonds, bridges, VLANs, DHCPv6 and the like are reported unsupported;
//! entries left with nothing to configure (no DHCPv4, no address) are dropped and reported
//! as `network.link-only:<name>`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use super::doc;
use super::network::{parse_ip, Interface, Match, NetworkConfig, NetworkError, Route};
use super::open::{Extras, ListOrWord, StrList, Unsupported};
use super::types::{Cidr, DnsName, Mac, NameGlob};

#[derive(Debug, Default, Deserialize)]
struct NetDoc {
    network: Option<Box<NetDoc>>,
    version: Option<u64>,
    config: Option<ListOrWord<V1Entry>>,
    ethernets: Option<BTreeMap<String, V2Ethernet>>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct V1Entry {
    #[serde(rename = "type")]
    kind: String,
    name: Option<NameGlob>,
    mac_address: Option<Mac>,
    mtu: Option<u32>,
    #[serde(default)]
    subnets: Vec<V1Subnet>,
    #[serde(default)]
    address: StrList,
    #[serde(default)]
    search: Vec<DnsName>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct V1Subnet {
    #[serde(rename = "type")]
    kind: String,
    address: Option<String>,
    netmask: Option<String>,
    gateway: Option<IpAddr>,
    #[serde(default)]
    dns_nameservers: Vec<IpAddr>,
    #[serde(default)]
    dns_search: Vec<DnsName>,
    #[serde(default)]
    routes: Vec<V1Route>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct V1Route {
    #[serde(alias = "destination")]
    network: String,
    netmask: Option<String>,
    gateway: IpAddr,
    metric: Option<u32>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct V2Ethernet {
    #[serde(rename = "match")]
    r#match: Option<V2Match>,
    #[serde(rename = "set-name")]
    set_name: Option<NameGlob>,
    #[serde(default)]
    dhcp4: bool,
    #[serde(default)]
    dhcp6: bool,
    #[serde(default)]
    addresses: Vec<Cidr>,
    gateway4: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    routes: Vec<V2Route>,
    nameservers: Option<V2Nameservers>,
    mtu: Option<u32>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct V2Match {
    macaddress: Option<Mac>,
    name: Option<NameGlob>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct V2Route {
    to: String,
    via: IpAddr,
    metric: Option<u32>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct V2Nameservers {
    #[serde(default)]
    addresses: Vec<IpAddr>,
    #[serde(default)]
    search: Vec<DnsName>,
    #[serde(flatten)]
    extra: Extras,
}

/// Parses a network-config document. `Ok(None)`: empty, or `config: disabled` (reported).
pub fn parse(text: &str) -> Result<(Option<NetworkConfig>, Unsupported), NetworkError> {
    let mut un = Unsupported::default();
    let Some(mut doc) = doc::yaml::<NetDoc>(text)? else {
        return Ok((None, un));
    };
    if let Some(inner) = doc.network.take() {
        un.extras("network-config", &doc.extra);
        doc = *inner;
    }
    un.extras("network", &doc.extra);
    let net = match doc.version {
        Some(1) => match doc.config {
            Some(ListOrWord::Word(w)) => {
                un.push(format!("network.config:{w}"));
                None
            }
            Some(ListOrWord::List(entries)) => Some(v1(entries, &mut un)?),
            None => None,
        },
        Some(2) => Some(v2(doc.ethernets.unwrap_or_default(), &mut un)?),
        Some(v) => return Err(NetworkError::Version(v)),
        None if matches!(doc.config, Some(ListOrWord::Word(_))) => {
            un.push("network.config:disabled");
            None
        }
        None => return Err(NetworkError::Version(0)),
    };
    if let Some(n) = &net {
        n.validate()?;
    }
    Ok((net, un))
}

fn v1(entries: Vec<V1Entry>, un: &mut Unsupported) -> Result<NetworkConfig, NetworkError> {
    let mut net = NetworkConfig {
        interfaces: Vec::new(),
        ..NetworkConfig::default()
    };
    for e in entries {
        match e.kind.as_str() {
            "physical" => {
                un.extras("network.config.physical", &e.extra);
                let who = e.name.as_ref().map_or("?".into(), |n| n.to_string());
                let mut iface = Interface {
                    r#match: match e.mac_address {
                        Some(mac) => Match {
                            name: None,
                            mac: Some(mac),
                        },
                        None => Match {
                            name: e.name.clone(),
                            mac: None,
                        },
                    },
                    set_name: e.mac_address.and(e.name),
                    mtu: e.mtu,
                    ..Interface::default()
                };
                for s in e.subnets {
                    v1_subnet(s, &mut iface, &mut net, un)?;
                }
                push_or_report(&mut net, iface, &who, un);
            }
            "nameserver" => {
                un.extras("network.config.nameserver", &e.extra);
                let servers = e
                    .address
                    .0
                    .iter()
                    .map(|a| parse_ip("nameserver address", a))
                    .collect::<Result<Vec<_>, _>>()?;
                net.add_dns(&servers, &e.search);
            }
            other => un.push(format!("network.config.{other}")),
        }
    }
    Ok(net)
}

fn v1_subnet(
    s: V1Subnet,
    iface: &mut Interface,
    net: &mut NetworkConfig,
    un: &mut Unsupported,
) -> Result<(), NetworkError> {
    un.extras("network.config.subnets", &s.extra);
    match s.kind.as_str() {
        "dhcp" | "dhcp4" => iface.dhcp4 = true,
        "static" | "static6" => {
            let address = s.address.as_deref().ok_or_else(|| NetworkError::Value {
                what: "static subnet".into(),
                reason: "no address".into(),
            })?;
            iface
                .addresses
                .push(address_with_mask(address, s.netmask.as_deref())?);
            match s.gateway {
                Some(IpAddr::V4(gw)) => iface.gateway4 = Some(gw),
                Some(gw @ IpAddr::V6(_)) => iface.routes.push(Route {
                    to: Cidr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).map_err(value)?,
                    via: gw,
                    metric: None,
                }),
                None => {}
            }
        }
        "manual" => {}
        other => un.push(format!("network.config.subnets.{other}")),
    }
    net.add_dns(&s.dns_nameservers, &s.dns_search);
    for r in s.routes {
        un.extras("network.config.subnets.routes", &r.extra);
        iface.routes.push(Route {
            to: address_with_mask(&r.network, r.netmask.as_deref())?,
            via: r.gateway,
            metric: r.metric,
        });
    }
    Ok(())
}

/// `10.0.0.5/24`, or `10.0.0.5` with a netmask; a bare host address gets a full prefix.
pub(crate) fn address_with_mask(
    address: &str,
    netmask: Option<&str>,
) -> Result<Cidr, NetworkError> {
    if address.contains('/') {
        return Cidr::try_from(address.to_string()).map_err(value);
    }
    let addr = parse_ip("address", address)?;
    match netmask {
        Some(m) if m.contains('.') || m.contains(':') => {
            Cidr::from_netmask(addr, parse_ip("netmask", m)?).map_err(value)
        }
        Some(m) => Cidr::try_from(format!("{address}/{m}")).map_err(value),
        None => Cidr::new(addr, if addr.is_ipv4() { 32 } else { 128 }).map_err(value),
    }
}

fn value(e: super::types::ValueError) -> NetworkError {
    NetworkError::Value {
        what: "address".into(),
        reason: e.to_string(),
    }
}

fn push_or_report(net: &mut NetworkConfig, iface: Interface, who: &str, un: &mut Unsupported) {
    if iface.dhcp4 || !iface.addresses.is_empty() {
        net.interfaces.push(iface);
    } else {
        un.push(format!("network.link-only:{who}"));
    }
}

fn v2(
    ethernets: BTreeMap<String, V2Ethernet>,
    un: &mut Unsupported,
) -> Result<NetworkConfig, NetworkError> {
    let mut net = NetworkConfig {
        interfaces: Vec::new(),
        ..NetworkConfig::default()
    };
    for (id, e) in ethernets {
        un.extras("network.ethernets", &e.extra);
        if e.dhcp6 {
            un.push("network.ethernets.dhcp6");
        }
        let r#match = match e.r#match {
            Some(m) => {
                un.extras("network.ethernets.match", &m.extra);
                Match {
                    name: m.name,
                    mac: m.macaddress,
                }
            }
            None => Match {
                name: Some(NameGlob::try_from(id.clone()).map_err(value)?),
                mac: None,
            },
        };
        let mut routes = Vec::new();
        if let Some(gw) = e.gateway6 {
            routes.push(Route {
                to: Cidr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).map_err(value)?,
                via: IpAddr::V6(gw),
                metric: None,
            });
        }
        for r in e.routes {
            un.extras("network.ethernets.routes", &r.extra);
            let to = match r.to.as_str() {
                "default" if r.via.is_ipv4() => Cidr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                "default" => Cidr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
                other => Cidr::try_from(other.to_string()),
            }
            .map_err(value)?;
            routes.push(Route {
                to,
                via: r.via,
                metric: r.metric,
            });
        }
        if let Some(ns) = &e.nameservers {
            un.extras("network.ethernets.nameservers", &ns.extra);
            net.add_dns(&ns.addresses, &ns.search);
        }
        let iface = Interface {
            r#match,
            set_name: e.set_name,
            dhcp4: e.dhcp4,
            addresses: e.addresses,
            gateway4: e.gateway4,
            routes,
            mtu: e.mtu,
        };
        push_or_report(&mut net, iface, &id, un);
    }
    Ok(net)
}
