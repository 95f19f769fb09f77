//! The network part of `NodeConfig` — one shape whatever the input (network-config v1 or
//! v2, ConfigDrive network_data.json, kiln.toml) — its validation, and interface matching.
//!
//! Pure data: bringing links up is the network module's job.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::doc::DocError;
use super::types::{Cidr, DnsName, Mac, NameGlob};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("unsupported network config version {0}")]
    Version(u64),
    #[error("interface {0}: neither dhcp4 nor a static address")]
    NoAddress(String),
    #[error("interface {0}: MTU {1} outside 68-65535")]
    Mtu(String, u32),
    #[error("interface {0}: set-name {1:?} is a pattern")]
    SetName(String, String),
    #[error("interface {0}: route to {1} via {2} mixes IPv4 and IPv6")]
    RouteFamily(String, Cidr, IpAddr),
    #[error("{what}: {value:?} is not an IP address")]
    Address { what: &'static str, value: String },
    #[error("{what}: {reason}")]
    Value { what: String, reason: String },
    #[error("network {network}: no link {link:?}")]
    UnknownLink { network: String, link: String },
}

/// Networking for the node. `Default` is DHCPv4 on every wired NIC: one interface with an
/// empty match (the caller applies it to physical Ethernet links only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub nameservers: Vec<IpAddr>,
    #[serde(default)]
    pub search: Vec<DnsName>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interfaces: vec![Interface {
                dhcp4: true,
                ..Interface::default()
            }],
            nameservers: Vec::new(),
            search: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    #[serde(rename = "match", default)]
    pub r#match: Match,
    /// Rename the matched link (v1 `name` with `mac_address`, v2 `set-name`).
    #[serde(default)]
    pub set_name: Option<NameGlob>,
    #[serde(default)]
    pub dhcp4: bool,
    #[serde(default)]
    pub addresses: Vec<Cidr>,
    #[serde(default)]
    pub gateway4: Option<Ipv4Addr>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// Which links an interface entry applies to; every given criterion must hold, an empty
/// match takes every link.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub name: Option<NameGlob>,
    #[serde(default)]
    pub mac: Option<Mac>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub to: Cidr,
    pub via: IpAddr,
    #[serde(default)]
    pub metric: Option<u32>,
}

impl Match {
    pub fn matches(&self, name: &str, mac: Option<Mac>) -> bool {
        let name_ok = self
            .name
            .as_ref()
            .is_none_or(|g| glob(g.as_str().as_bytes(), name.as_bytes()));
        let mac_ok = self.mac.is_none_or(|m| Some(m) == mac);
        name_ok && mac_ok
    }

    fn describe(&self, index: usize) -> String {
        match (&self.name, &self.mac) {
            (Some(n), _) => n.to_string(),
            (None, Some(m)) => m.to_string(),
            (None, None) => format!("#{index}"),
        }
    }
}

/// Shell-style match with `*` (any run) and `?` (one byte); iterative backtracking.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

impl NetworkConfig {
    /// Checks every interface: something to configure, a sane MTU, a concrete new name,
    /// routes within one address family.
    pub fn validate(&self) -> Result<(), NetworkError> {
        for (i, iface) in self.interfaces.iter().enumerate() {
            let who = iface.r#match.describe(i);
            if !iface.dhcp4 && iface.addresses.is_empty() {
                return Err(NetworkError::NoAddress(who));
            }
            if let Some(mtu) = iface.mtu.filter(|m| !(68..=65535).contains(m)) {
                return Err(NetworkError::Mtu(who, mtu));
            }
            if let Some(n) = iface
                .set_name
                .as_ref()
                .filter(|n| n.as_str().contains(['*', '?']))
            {
                return Err(NetworkError::SetName(who, n.to_string()));
            }
            for r in &iface.routes {
                if r.to.addr.is_ipv4() != r.via.is_ipv4() {
                    return Err(NetworkError::RouteFamily(who, r.to, r.via));
                }
            }
        }
        Ok(())
    }

    /// Adds nameservers and search domains once each, keeping first-seen order.
    pub(crate) fn add_dns(&mut self, servers: &[IpAddr], search: &[DnsName]) {
        for s in servers {
            if !self.nameservers.contains(s) {
                self.nameservers.push(*s);
            }
        }
        for d in search {
            if !self.search.contains(d) {
                self.search.push(d.clone());
            }
        }
    }
}

/// Parses an address that may be `a.b.c.d` or (v1/ConfigDrive) `a.b.c.d/nn`.
pub(crate) fn parse_ip(what: &'static str, value: &str) -> Result<IpAddr, NetworkError> {
    value.parse().map_err(|_| NetworkError::Address {
        what,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        for (p, t, want) in [
            ("en*", "enp0s3", true),
            ("en*", "eth0", false),
            ("eth?", "eth0", true),
            ("eth?", "eth10", false),
            ("*", "", true),
            ("e*0*", "enp0s3", true),
            ("*s3", "enp0s3", true),
            ("a*b", "ab", true),
            ("a*b", "abc", false),
        ] {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), want, "{p} vs {t}");
        }
    }

    #[test]
    fn match_needs_every_criterion() {
        let mac = Mac::try_from("52:54:00:12:34:56".to_string()).unwrap();
        let other = Mac::try_from("52:54:00:12:34:57".to_string()).unwrap();
        let m = Match {
            name: Some(NameGlob::try_from("en*").unwrap()),
            mac: Some(mac),
        };
        assert!(m.matches("ens3", Some(mac)));
        assert!(!m.matches("ens3", Some(other)));
        assert!(!m.matches("ens3", None));
        assert!(!m.matches("eth0", Some(mac)));
        assert!(Match::default().matches("anything", None));
    }

    #[test]
    fn default_is_dhcp_everywhere_and_valid() {
        let d = NetworkConfig::default();
        assert!(d.interfaces[0].dhcp4 && d.interfaces[0].r#match == Match::default());
        d.validate().unwrap();
    }
}
