//! Maps the validated network config (cloud-init v1/v2, ConfigDrive, kiln.toml) onto the
//! links this machine has, producing the plan the network runner applies.
//!
//! Owns matching (name globs, MACs) against real links; it must not touch the network.
//! The default config (DHCP everywhere) becomes DHCP on every wired NIC.

use std::path::Path;

use crate::config::{Mac, NetworkConfig};
use crate::net::{Cidr, IfacePlan, NetPlan, StaticRoute};

/// A link as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub mac: Option<[u8; 6]>,
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .trim()
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

/// Every link except loopback, sorted by name.
pub fn links(sys_root: &Path) -> Vec<LinkInfo> {
    let Ok(rd) = std::fs::read_dir(sys_root.join("class/net")) else {
        return Vec::new();
    };
    let mut out: Vec<LinkInfo> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .map(|name| {
            let addr =
                std::fs::read_to_string(sys_root.join("class/net").join(&name).join("address"));
            LinkInfo {
                mac: addr.ok().as_deref().and_then(parse_mac),
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Renames `set_name` asks for (v1 `name` with a `mac_address`, v2 `set-name`): `(current,
/// new)` for each link whose first matching interface entry names it differently.
pub fn renames(cfg: &NetworkConfig, links: &[LinkInfo]) -> Vec<(String, String)> {
    links
        .iter()
        .filter_map(|link| {
            let entry = cfg
                .interfaces
                .iter()
                .find(|i| i.r#match.matches(&link.name, link.mac.map(Mac)))?;
            let new = entry.set_name.as_ref()?.as_str();
            (new != link.name).then(|| (link.name.clone(), new.to_string()))
        })
        .collect()
}

/// The plan for `cfg` on `links`: each link takes the first interface entry matching it;
/// links no entry matches stay down. `None` for the default config (caller uses
/// [`crate::net::default_plan`]).
pub fn plan(cfg: &NetworkConfig, links: &[LinkInfo], hostname: Option<String>) -> Option<NetPlan> {
    if *cfg == NetworkConfig::default() {
        return None;
    }
    let mut interfaces = Vec::new();
    for link in links {
        let Some(i) = cfg
            .interfaces
            .iter()
            .find(|i| i.r#match.matches(&link.name, link.mac.map(Mac)))
        else {
            continue;
        };
        let cidr = |c: &crate::config::Cidr| Cidr::new(c.addr, c.prefix).ok();
        interfaces.push(IfacePlan {
            name: link.name.clone(),
            mac: link.mac,
            dhcp4: i.dhcp4,
            addresses: i.addresses.iter().filter_map(cidr).collect(),
            gateway4: i.gateway4,
            routes: i
                .routes
                .iter()
                .filter_map(|r| {
                    Some(StaticRoute {
                        dst: cidr(&r.to)?,
                        via: r.via,
                        metric: r.metric,
                    })
                })
                .collect(),
            mtu: i.mtu,
        });
    }
    Some(NetPlan {
        interfaces,
        nameservers: cfg.nameservers.clone(),
        search: cfg.search.iter().map(|s| s.as_str().to_string()).collect(),
        hostname,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{assemble, Sources};

    fn net_of(yaml: &str) -> NetworkConfig {
        let src = Sources {
            network_config: Some(yaml.as_bytes().to_vec()),
            ..Sources::default()
        };
        assemble(&src, "test").unwrap().network
    }

    fn link(name: &str, mac: &str) -> LinkInfo {
        LinkInfo {
            name: name.into(),
            mac: parse_mac(mac),
        }
    }

    #[test]
    fn renames_follow_set_name() {
        let v1 = "version: 1\nconfig:\n  - type: physical\n    name: lan0\n    mac_address: '52:54:00:00:00:01'\n    subnets: [{type: dhcp}]\n  - type: physical\n    name: keep0\n    mac_address: '52:54:00:00:00:02'\n    subnets: [{type: dhcp}]\n";
        let cfg = net_of(v1);
        let links = [
            link("enp0s2", "52:54:00:00:00:01"),
            link("keep0", "52:54:00:00:00:02"),
            link("enp0s4", "52:54:00:00:00:03"),
        ];
        assert_eq!(
            renames(&cfg, &links),
            vec![("enp0s2".to_string(), "lan0".to_string())]
        );
        let v2 = "version: 2\nethernets:\n  e:\n    match: {name: 'en*'}\n    dhcp4: true\n";
        assert!(renames(&net_of(v2), &links).is_empty());
    }

    #[test]
    fn v2_static_by_mac_and_dhcp_by_name() {
        let cfg = net_of(
            "version: 2\nethernets:\n  lan:\n    match: {macaddress: '52:54:00:12:34:56'}\n    addresses: [192.168.50.11/24]\n    gateway4: 192.168.50.1\n    nameservers: {addresses: [192.168.50.1]}\n  wan:\n    match: {name: 'eth1'}\n    dhcp4: true\n",
        );
        let links = [
            link("eth0", "52:54:00:12:34:56"),
            link("eth1", "52:54:00:00:00:02"),
            link("eth2", "52:54:00:00:00:03"),
        ];
        let p = plan(&cfg, &links, Some("n1".into())).unwrap();
        let names: Vec<_> = p
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i.dhcp4))
            .collect();
        assert_eq!(names, [("eth0", false), ("eth1", true)]);
        assert_eq!(p.interfaces[0].addresses[0].to_string(), "192.168.50.11/24");
        assert_eq!(
            p.interfaces[0].gateway4,
            Some("192.168.50.1".parse().unwrap())
        );
        assert_eq!(
            p.nameservers,
            vec!["192.168.50.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(p.hostname.as_deref(), Some("n1"));
    }

    #[test]
    fn default_config_defers_to_wired_default() {
        assert_eq!(
            plan(
                &NetworkConfig::default(),
                &[link("eth0", "52:54:00:00:00:01")],
                None
            ),
            None
        );
    }

    #[test]
    fn sysfs_links_skip_loopback() {
        let tmp = crate::testutil::TempDir::new("netmap");
        tmp.write("class/net/lo/address", "00:00:00:00:00:00\n");
        tmp.write("class/net/eth0/address", "52:54:00:12:34:56\n");
        assert_eq!(links(tmp.path()), vec![link("eth0", "52:54:00:12:34:56")]);
    }
}
