//! OpenStack ConfigDrive (`config-2` volume, `openstack/latest/`): `meta_data.json`
//! (uuid, hostname, public_keys) and `network_data.json` (links, networks, services).
//!
//! meta_data.json is mostly information about the instance (availability zone, project,
//! devices…); keys listed in `INFORMATIONAL` are ignored on purpose, any other key is
//! reported as `meta_data.<key>`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::doc::{self, DocError};
use super::netconfig::address_with_mask;
use super::network::{parse_ip, Interface, Match, NetworkConfig, NetworkError, Route};
use super::open::{Extras, Unsupported};
use super::types::{DnsName, Mac, SshKey};

const INFORMATIONAL: &[&str] = &[
    "availability_zone",
    "project_id",
    "launch_index",
    "devices",
    "dedicated_cpus",
    "random_seed",
    "name",
    "meta",
    "keys",
];

#[derive(Debug, Deserialize)]
struct MetaJson {
    uuid: Option<String>,
    hostname: Option<DnsName>,
    #[serde(default)]
    public_keys: BTreeMap<String, SshKey>,
    #[serde(flatten)]
    extra: Extras,
}

/// What meta_data.json contributes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub instance_id: Option<String>,
    pub hostname: Option<DnsName>,
    pub keys: Vec<SshKey>,
    pub unsupported: Unsupported,
}

pub fn parse_meta(bytes: &[u8]) -> Result<Meta, DocError> {
    let m: MetaJson = doc::json(bytes)?;
    let mut unsupported = Unsupported::default();
    for key in m
        .extra
        .keys()
        .filter(|k| !INFORMATIONAL.contains(&k.as_str()))
    {
        unsupported.push(format!("meta_data.{key}"));
    }
    Ok(Meta {
        instance_id: m.uuid.filter(|u| !u.trim().is_empty()),
        hostname: m.hostname,
        keys: m.public_keys.into_values().collect(),
        unsupported,
    })
}

#[derive(Debug, Deserialize)]
struct NetworkJson {
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    networks: Vec<Network>,
    #[serde(default)]
    services: Vec<Service>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct Link {
    id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    ethernet_mac_address: Option<Mac>,
    mtu: Option<u32>,
    #[serde(default, rename = "vif_id")]
    _vif_id: Option<serde::de::IgnoredAny>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct Network {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    link: String,
    ip_address: Option<String>,
    netmask: Option<String>,
    #[serde(default)]
    routes: Vec<CdRoute>,
    #[serde(default)]
    services: Vec<Service>,
    #[serde(default, rename = "network_id")]
    _network_id: Option<serde::de::IgnoredAny>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct CdRoute {
    network: String,
    netmask: String,
    gateway: IpAddr,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct Service {
    #[serde(rename = "type")]
    kind: String,
    address: String,
    #[serde(flatten)]
    extra: Extras,
}

/// Physical-ish link types; VLANs and bonds are not supported.
const PHYSICAL: &[&str] = &[
    "phy",
    "ethernet",
    "bridge",
    "ovs",
    "tap",
    "vif",
    "hw_veb",
    "dvs",
    "vhostuser",
    "vrouter",
];

pub fn parse_network(bytes: &[u8]) -> Result<(NetworkConfig, Unsupported), NetworkError> {
    let doc: NetworkJson = doc::json(bytes)?;
    let mut un = Unsupported::default();
    un.extras("network_data", &doc.extra);
    let mut net = NetworkConfig {
        interfaces: Vec::new(),
        ..NetworkConfig::default()
    };
    let mut by_link: Vec<(String, Interface)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for l in doc.links {
        let kind = l.kind.as_deref().unwrap_or("phy");
        if !PHYSICAL.contains(&kind) {
            un.push(format!("network_data.links.{kind}"));
            skipped.push(l.id);
            continue;
        }
        un.extras("network_data.links", &l.extra);
        let iface = Interface {
            r#match: Match {
                name: None,
                mac: l.ethernet_mac_address,
            },
            mtu: l.mtu,
            ..Interface::default()
        };
        by_link.push((l.id, iface));
    }
    for n in doc.networks {
        un.extras("network_data.networks", &n.extra);
        let Some((_, iface)) = by_link.iter_mut().find(|(id, _)| *id == n.link) else {
            if skipped.contains(&n.link) {
                continue;
            }
            return Err(NetworkError::UnknownLink {
                network: n.id,
                link: n.link,
            });
        };
        match n.kind.as_str() {
            "ipv4_dhcp" => iface.dhcp4 = true,
            "ipv4" | "ipv6" => {
                let ip = n.ip_address.as_deref().ok_or_else(|| NetworkError::Value {
                    what: format!("network {}", n.id),
                    reason: "no ip_address".into(),
                })?;
                iface
                    .addresses
                    .push(address_with_mask(ip, n.netmask.as_deref())?);
                for r in n.routes {
                    un.extras("network_data.networks.routes", &r.extra);
                    iface.routes.push(Route {
                        to: address_with_mask(&r.network, Some(&r.netmask))?,
                        via: r.gateway,
                        metric: None,
                    });
                }
            }
            other => un.push(format!("network_data.networks.{other}")),
        }
        add_services(&mut net, &n.services, &mut un)?;
    }
    add_services(&mut net, &doc.services, &mut un)?;
    for (id, iface) in by_link {
        if iface.dhcp4 || !iface.addresses.is_empty() {
            net.interfaces.push(iface);
        } else {
            un.push(format!("network.link-only:{id}"));
        }
    }
    net.validate()?;
    Ok((net, un))
}

fn add_services(
    net: &mut NetworkConfig,
    services: &[Service],
    un: &mut Unsupported,
) -> Result<(), NetworkError> {
    for s in services {
        un.extras("network_data.services", &s.extra);
        if s.kind == "dns" {
            net.add_dns(&[parse_ip("dns service", &s.address)?], &[]);
        } else {
            un.push(format!("network_data.services.{}", s.kind));
        }
    }
    Ok(())
}
