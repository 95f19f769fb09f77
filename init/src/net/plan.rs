//! The network plan (already validated; the config parser builds it) and its application
//! through [`Netlink`]: links up (loopback too), MTU, static addresses and routes. Also the
//! default plan (DHCPv4 on every wired NIC) and the text of /etc/resolv.conf and
//! /etc/hosts, which the caller writes atomically.
//!
//! Owns "what to configure", not how: no sockets here, no files written.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::netlink::{Link, Netlink, NetlinkError, Route};
use super::Cidr;

/// Everything the node's network should look like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPlan {
    pub interfaces: Vec<IfacePlan>,
    /// Static resolvers; DHCP resolvers are appended after them.
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    /// Sent to DHCP servers as option 12.
    pub hostname: Option<String>,
}

/// One interface, matched by `mac` when given, else by `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfacePlan {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub dhcp4: bool,
    pub addresses: Vec<Cidr>,
    pub gateway4: Option<Ipv4Addr>,
    pub routes: Vec<StaticRoute>,
    pub mtu: Option<u32>,
}

/// `dst` via `via`, with an optional metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    pub dst: Cidr,
    pub via: IpAddr,
    pub metric: Option<u32>,
}

/// An interface that needs a DHCP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpTarget {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
}

/// What [`apply`] did. Per-interface failures do not stop the other interfaces.
#[derive(Debug, Default)]
pub struct Applied {
    /// Interfaces that still need DHCP, in plan order.
    pub dhcp: Vec<DhcpTarget>,
    /// Static addresses configured, per interface name (plan order).
    pub addresses: Vec<(String, Vec<Cidr>)>,
    /// Planned interfaces not present on this machine.
    pub missing: Vec<String>,
    /// Operations that failed: the interface name and the error.
    pub failures: Vec<(String, NetlinkError)>,
}

/// Errors that stop [`apply`] or [`default_plan`] as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("list network links")]
    Links(#[source] NetlinkError),
    #[error("read {0}")]
    Sysfs(PathBuf, #[source] io::Error),
}

fn find<'a>(links: &'a [Link], iface: &IfacePlan) -> Option<&'a Link> {
    match iface.mac {
        Some(mac) => links.iter().find(|l| l.mac == Some(mac)),
        None => links.iter().find(|l| l.name == iface.name),
    }
}

/// Applies the static part of `plan`; returns the interfaces that need DHCP.
pub fn apply(plan: &NetPlan, nl: &mut dyn Netlink) -> Result<Applied, PlanError> {
    let links = nl.links().map_err(PlanError::Links)?;
    let mut applied = Applied::default();
    if let Some(lo) = links.iter().find(|l| l.name == "lo") {
        if !lo.up {
            // The kernel adds 127.0.0.1/8 and ::1 itself when lo goes up.
            if let Err(e) = nl.set_up(lo.index) {
                applied.failures.push(("lo".into(), e));
            }
        }
    }
    for iface in &plan.interfaces {
        let Some(link) = find(&links, iface) else {
            applied.missing.push(iface.name.clone());
            continue;
        };
        let ops = apply_iface(nl, link, iface);
        for e in ops.errors {
            applied.failures.push((link.name.clone(), e));
        }
        if iface.dhcp4 {
            match link.mac {
                Some(mac) => applied.dhcp.push(DhcpTarget {
                    name: link.name.clone(),
                    index: link.index,
                    mac,
                }),
                None => applied.failures.push((
                    link.name.clone(),
                    NetlinkError::Kernel(
                        format!("DHCP on {}", link.name),
                        io::Error::other("link has no Ethernet address"),
                    ),
                )),
            }
        }
        applied.addresses.push((link.name.clone(), ops.addresses));
    }
    Ok(applied)
}

struct IfaceOps {
    addresses: Vec<Cidr>,
    errors: Vec<NetlinkError>,
}

fn apply_iface(nl: &mut dyn Netlink, link: &Link, iface: &IfacePlan) -> IfaceOps {
    let mut ops = IfaceOps {
        addresses: Vec::new(),
        errors: Vec::new(),
    };
    let mut run = |r: Result<(), NetlinkError>| match r {
        Ok(()) => true,
        Err(e) => {
            ops.errors.push(e);
            false
        }
    };
    if let Some(mtu) = iface.mtu.filter(|&m| m != link.mtu) {
        run(nl.set_mtu(link.index, mtu));
    }
    if !link.up {
        run(nl.set_up(link.index));
    }
    for &addr in &iface.addresses {
        if run(nl.add_address(link.index, addr)) {
            ops.addresses.push(addr);
        }
    }
    let gateway = iface.gateway4.map(|gw| Route {
        dst: Cidr::default_for(IpAddr::V4(gw)),
        gateway: Some(IpAddr::V4(gw)),
        index: link.index,
        metric: None,
    });
    let routes = iface.routes.iter().map(|r| Route {
        dst: r.dst,
        gateway: Some(r.via).filter(|v| !v.is_unspecified()),
        index: link.index,
        metric: r.metric,
    });
    for route in gateway.into_iter().chain(routes) {
        run(nl.add_route(&route));
    }
    ops
}

/// DHCPv4 on every wired NIC under `sysfs_root`/class/net, sorted by name: ARPHRD_ETHER
/// (`type` 1), backed by a device (`device` link: not veth, bridge, tun …) and not
/// wireless (`wireless` or `phy80211`).
pub fn default_plan(sysfs_root: &Path) -> Result<NetPlan, PlanError> {
    let dir = sysfs_root.join("class/net");
    let entries = std::fs::read_dir(&dir).map_err(|e| PlanError::Sysfs(dir.clone(), e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PlanError::Sysfs(dir.clone(), e))?;
        let path = entry.path();
        let kind = std::fs::read_to_string(path.join("type")).unwrap_or_default();
        let wired = kind.trim() == "1"
            && path.join("device").exists()
            && !path.join("wireless").exists()
            && !path.join("phy80211").exists();
        if wired {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let interfaces = names
        .into_iter()
        .map(|name| IfacePlan {
            name,
            dhcp4: true,
            ..IfacePlan::default()
        })
        .collect();
    Ok(NetPlan {
        interfaces,
        ..NetPlan::default()
    })
}

/// glibc and musl read at most three `nameserver` lines (MAXNS).
pub const MAX_NAMESERVERS: usize = 3;

/// /etc/resolv.conf: the first three distinct nameservers and the distinct search domains.
pub fn render_resolv_conf(nameservers: &[IpAddr], search: &[String]) -> String {
    let mut out = String::from("# Generated by kiln-init.\n");
    let mut seen: Vec<IpAddr> = Vec::new();
    for ns in nameservers {
        if !seen.contains(ns) && seen.len() < MAX_NAMESERVERS {
            seen.push(*ns);
            out.push_str(&format!("nameserver {ns}\n"));
        }
    }
    let mut domains: Vec<&str> = Vec::new();
    for d in search.iter().map(|d| d.trim().trim_end_matches('.')) {
        if !d.is_empty() && !d.contains(char::is_whitespace) && !domains.contains(&d) {
            domains.push(d);
        }
    }
    if !domains.is_empty() {
        out.push_str(&format!("search {}\n", domains.join(" ")));
    }
    out
}

/// /etc/hosts in the Debian layout: the hostname (and FQDN first when known) on 127.0.1.1.
pub fn render_hosts(hostname: &str, fqdn: Option<&str>) -> String {
    let names = match fqdn {
        Some(f) if !f.is_empty() && f != hostname => format!("{f} {hostname}"),
        _ => hostname.to_string(),
    };
    format!(
        "# Generated by kiln-init.\n\
         127.0.0.1\tlocalhost\n\
         127.0.1.1\t{names}\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n"
    )
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
