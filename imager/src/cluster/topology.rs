//! The non-secret half of a cluster: its name, version, networks, flags and nodes, as
//! given to `kiln cluster gen` and as kept in secrets.toml `[cluster]`, and the checks
//! every combination must pass before anything is generated (`gen` and `add` run the same
//! checks over the whole node list).
//!
//! Values use init's own validated types, so a name or version the node would refuse is
//! refused here first.

use std::net::IpAddr;

use kiln_init::cluster::settings::{overlaps, KubeVersion, Member};
use kiln_init::config::{Cidr, Hostname, NameGlob, Role};
use serde::{Deserialize, Serialize};

use super::GenError;

/// How workers' load balancers check the API servers (`kiln: lb: check: kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbCheck {
    /// HTTPS GET /healthz, verified against the cluster CA.
    Https,
    Tcp,
}

/// secrets.toml `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub name: Hostname,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<KubeVersion>,
    pub pod_cidr: Cidr,
    pub service_cidr: Cidr,
    /// The workers' load-balancer address for the API servers.
    pub vip: IpAddr,
    /// Prefix length of every node's static address.
    pub prefix: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The interface that gets the static address.
    pub interface: NameGlob,
    #[serde(default)]
    pub dhcp_interfaces: Vec<NameGlob>,
    #[serde(default)]
    pub debug_exec: bool,
    pub lb_check: LbCheck,
    pub ca_validity_hours: u32,
    /// Leaf validity (`kiln: cluster: cert_validity_hours`): the CA's, at most 100 years.
    pub cert_validity_hours: u32,
    /// The control planes the cluster was created with: every seed's `control_planes`.
    pub control_planes: Vec<Member>,
    /// Every node generated so far, in order (initial and added).
    pub nodes: Vec<NodeEntry>,
}

/// One generated node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: Hostname,
    pub role: Role,
    pub address: IpAddr,
}

/// `kiln cluster gen`'s values, as typed (checked by `Topology::from_options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    pub name: String,
    pub control_planes: Vec<String>,
    pub workers: Vec<String>,
    pub kubernetes_version: Option<String>,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub vip: String,
    pub prefix: String,
    pub gateway: Option<String>,
    pub interface: String,
    pub dhcp_interfaces: Vec<String>,
    pub ca_validity_hours: String,
    pub debug_exec: bool,
    pub lb_check: String,
    /// An etcd snapshot for the first control plane to restore (`--etcd-restore`).
    pub etcd_restore: Option<std::path::PathBuf>,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            name: String::new(),
            control_planes: Vec::new(),
            workers: Vec::new(),
            kubernetes_version: None,
            pod_cidr: kiln_init::cluster::settings::DEFAULT_POD_CIDR.into(),
            service_cidr: kiln_init::cluster::settings::DEFAULT_SERVICE_CIDR.into(),
            vip: kiln_init::lb::settings::DEFAULT_VIP.into(),
            prefix: "24".into(),
            gateway: None,
            interface: "eth0".into(),
            dhcp_interfaces: Vec::new(),
            ca_validity_hours: kiln_init::cluster::settings::DEFAULT_VALIDITY_HOURS.to_string(),
            debug_exec: false,
            lb_check: "https".into(),
            etcd_restore: None,
        }
    }
}

fn bad(what: &'static str, value: &str, reason: impl ToString) -> GenError {
    GenError::Value {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn ip(what: &'static str, value: &str) -> Result<IpAddr, GenError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(what, value, "not an IP address"))
}

/// Comma-separated lists may come as one argument or several; empty items are dropped.
fn addresses(what: &'static str, list: &[String]) -> Result<Vec<IpAddr>, GenError> {
    list.iter()
        .flat_map(|a| a.split(','))
        .filter(|a| !a.trim().is_empty())
        .map(|a| ip(what, a))
        .collect()
}

/// Names `cp-1`, `worker-1`, … for a role.
pub fn name_prefix(role: Role) -> &'static str {
    match role {
        Role::ControlPlane => "cp",
        _ => "worker",
    }
}

/// The next free name for `role`: one past the highest number used so far.
pub fn next_name(nodes: &[NodeEntry], role: Role) -> Result<Hostname, GenError> {
    let prefix = format!("{}-", name_prefix(role));
    let last = nodes
        .iter()
        .filter_map(|n| n.name.as_str().strip_prefix(&prefix))
        .filter_map(|n| n.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    let name = format!("{prefix}{}", last + 1);
    Hostname::try_from(name.as_str()).map_err(|e| bad("node name", &name, e))
}

impl Topology {
    /// Parses and checks `kiln cluster gen`'s values; nodes are named cp-1…, worker-1….
    pub fn from_options(o: &GenOptions) -> Result<Topology, GenError> {
        let name = Hostname::try_from(o.name.as_str()).map_err(|e| bad("name", &o.name, e))?;
        let kubernetes_version = o
            .kubernetes_version
            .as_ref()
            .map(|v| KubeVersion::try_from(v.clone()).map_err(|e| bad("version", v, e)))
            .transpose()?;
        let cidr = |what, v: &String| Cidr::try_from(v.clone()).map_err(|e| bad(what, v, e));
        let hours: u32 = o
            .ca_validity_hours
            .parse()
            .ok()
            .filter(|h| *h > 0)
            .ok_or_else(|| bad("CA validity", &o.ca_validity_hours, "expected hours ≥ 1"))?;
        let glob = |v: &String| NameGlob::try_from(v.as_str()).map_err(|e| bad("interface", v, e));
        let lb_check = match o.lb_check.as_str() {
            "https" => LbCheck::Https,
            "tcp" => LbCheck::Tcp,
            other => return Err(bad("--lb-check", other, "expected https or tcp")),
        };
        let mut topo = Topology {
            name,
            kubernetes_version,
            pod_cidr: cidr("pod CIDR", &o.pod_cidr)?,
            service_cidr: cidr("service CIDR", &o.service_cidr)?,
            vip: ip("VIP", &o.vip)?,
            prefix: o
                .prefix
                .trim()
                .parse()
                .map_err(|_| bad("prefix", &o.prefix, "expected a prefix length"))?,
            gateway: o.gateway.as_deref().map(|g| ip("gateway", g)).transpose()?,
            interface: glob(&o.interface)?,
            dhcp_interfaces: o
                .dhcp_interfaces
                .iter()
                .map(glob)
                .collect::<Result<_, _>>()?,
            debug_exec: o.debug_exec,
            lb_check,
            ca_validity_hours: hours,
            cert_validity_hours: hours.min(kiln_init::cluster::settings::DEFAULT_VALIDITY_HOURS),
            control_planes: Vec::new(),
            nodes: Vec::new(),
        };
        let cps = addresses("control-plane address", &o.control_planes)?;
        if cps.is_empty() {
            return Err(GenError::NoControlPlanes);
        }
        for (role, list) in [
            (Role::ControlPlane, cps),
            (Role::Worker, addresses("worker address", &o.workers)?),
        ] {
            for address in list {
                let name = next_name(&topo.nodes, role)?;
                topo.nodes.push(NodeEntry {
                    name,
                    role,
                    address,
                });
            }
        }
        topo.control_planes = topo
            .nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .map(|n| Member {
                name: n.name.clone(),
                address: n.address,
            })
            .collect();
        topo.check()?;
        Ok(topo)
    }

    /// Every rule over the whole cluster: CIDRs apart, addresses usable, distinct (VIP
    /// included), node addresses and the VIP outside the pod and service CIDRs, all of the VIP's
    /// family, a prefix that fits, the gateway on every node's network.
    pub fn check(&self) -> Result<(), GenError> {
        if overlaps(&self.pod_cidr, &self.service_cidr) {
            return Err(GenError::Overlap(self.pod_cidr, self.service_cidr));
        }
        if self.control_planes.is_empty() {
            return Err(GenError::NoControlPlanes);
        }
        let max = if self.vip.is_ipv4() { 32 } else { 128 };
        if self.prefix == 0 || self.prefix > max {
            return Err(bad(
                "prefix",
                &self.prefix.to_string(),
                format!("expected 1-{max}"),
            ));
        }
        let mut seen: Vec<(IpAddr, String)> = vec![(self.vip, "the VIP".into())];
        for n in &self.nodes {
            let who = n.name.to_string();
            self.check_address(n.address, &who, &seen)?;
            seen.push((n.address, who));
        }
        self.check_address(self.vip, "the VIP", &[])?;
        if let Some(gw) = self.gateway {
            self.check_gateway(gw)?;
        }
        let mut ifaces = vec![&self.interface];
        for d in &self.dhcp_interfaces {
            if ifaces.contains(&d) {
                return Err(GenError::InterfaceTwice(d.to_string()));
            }
            ifaces.push(d);
        }
        Ok(())
    }

    fn check_address(
        &self,
        a: IpAddr,
        who: &str,
        seen: &[(IpAddr, String)],
    ) -> Result<(), GenError> {
        let unusable = a.is_unspecified()
            || a.is_loopback()
            || a.is_multicast()
            || matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
        if unusable {
            return Err(GenError::Unusable(who.to_string(), a));
        }
        if a.is_ipv4() != self.vip.is_ipv4() {
            return Err(GenError::Family(who.to_string(), a, self.vip));
        }
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == a) {
            return Err(GenError::Duplicate(a, other.clone(), who.to_string()));
        }
        // The VIP too: a Service handed the VIP as its ClusterIP would collide with it
        // (Kiln's default service CIDR is a /16 for this reason).
        for (which, cidr) in [("pod", &self.pod_cidr), ("service", &self.service_cidr)] {
            if cidr.contains(a) {
                return Err(GenError::InCidr(who.to_string(), a, which, *cidr));
            }
        }
        Ok(())
    }

    fn check_gateway(&self, gw: IpAddr) -> Result<(), GenError> {
        if gw.is_ipv4() != self.vip.is_ipv4() {
            return Err(GenError::Family("the gateway".into(), gw, self.vip));
        }
        for n in &self.nodes {
            let net = Cidr {
                addr: n.address,
                prefix: self.prefix,
            };
            if n.address == gw || !net.contains(gw) {
                return Err(GenError::Gateway(gw, n.name.to_string(), net));
            }
        }
        Ok(())
    }

    /// Addresses of every control plane generated so far (initial and added).
    pub fn control_plane_addresses(&self) -> Vec<IpAddr> {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .map(|n| n.address)
            .collect()
    }
}

/// `control-plane` / `worker`, as in the seeds.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::ControlPlane => "control-plane",
        Role::Worker => "worker",
        Role::Standalone => "standalone",
    }
}
