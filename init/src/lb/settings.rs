//! The load balancer's configuration: the serde shape under `kiln: lb:` (YAML) /
//! `[kiln.lb]` (kiln.toml), and its validation into a `Plan` the runtime acts on.
//!
//! The shape is strict (`deny_unknown_fields`: a typo is a broken config, like the rest of
//! Kiln's schema); the values are checked here, at load-balancer start or reload, so that a
//! bad VIP, port 0, an empty backend list or an unknown scheduler gives an `lb_error` event
//! while the rest of the node keeps running.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::health::HealthConfig;
use super::model::{Protocol, ServiceKey};
use super::probe::{Check, Trust};
use super::reconcile::{Backend, VirtualService};

/// lvscare's address, so that existing kubeadm configs and certificates keep working.
pub const DEFAULT_VIP: &str = "10.103.97.2";
pub const DEFAULT_PORT: u16 = 6443;
/// IPVS schedulers of the Linux kernel (net/netfilter/ipvs/ip_vs_*.c).
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

fn default_vip() -> String {
    DEFAULT_VIP.to_string()
}
fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_scheduler() -> String {
    "rr".to_string()
}
fn default_mode() -> String {
    "auto".to_string()
}

/// `kiln: lb:` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbSettings {
    #[serde(default = "default_vip")]
    pub vip: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Real servers: `ip:port`, or `ip` for `port`.
    #[serde(default)]
    pub backends: Vec<String>,
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    /// `auto` (link when a backend is local, else route), `route` or `link`.
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub check: CheckSettings,
}

fn default_kind() -> String {
    "https".to_string()
}
fn default_path() -> String {
    "/healthz".to_string()
}
fn default_ms() -> u64 {
    1000
}
fn default_two() -> u32 {
    2
}

/// `kiln: lb: check:` as written. Defaults: HTTPS GET /healthz every second, 1 s
/// timeout, 2 to rise, 2 to fall (see health.rs for the failover bound they give).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    /// `https`, `http` or `tcp`.
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default = "default_path")]
    pub path: String,
    /// PEM file of the cluster CA that signs the API servers' certificates.
    #[serde(default)]
    pub ca: Option<String>,
    /// HTTPS without verifying the certificate; only when asked for.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default = "default_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_two")]
    pub rise: u32,
    #[serde(default = "default_two")]
    pub fall: u32,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            kind: default_kind(),
            path: default_path(),
            ca: None,
            insecure: false,
            server_name: None,
            interval_ms: default_ms(),
            timeout_ms: default_ms(),
            rise: default_two(),
            fall: default_two(),
        }
    }
}

/// How the VIP is made reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    Auto,
    Route,
    Link,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub vip: IpAddr,
    pub port: u16,
    pub backends: Vec<SocketAddr>,
    pub scheduler: String,
    pub mode: ModeChoice,
    pub check: Check,
    pub health: HealthConfig,
}

impl Plan {
    pub fn service_key(&self) -> ServiceKey {
        ServiceKey {
            addr: self.vip,
            port: self.port,
            protocol: Protocol::Tcp,
        }
    }

    /// The one virtual service, every backend with weight 1.
    pub fn virtual_service(&self) -> VirtualService {
        VirtualService {
            key: self.service_key(),
            scheduler: self.scheduler.clone(),
            backends: self
                .backends
                .iter()
                .map(|&addr| Backend { addr, weight: 1 })
                .collect(),
        }
    }
}

/// A value the load balancer refuses; the message is the `lb_error` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("lb.vip {0:?} is not an IPv4 or IPv6 address (a CIDR is not a VIP)")]
    Vip(String),
    #[error("lb.vip {0} is not a usable unicast address")]
    VipKind(IpAddr),
    #[error("lb.port must not be 0")]
    Port,
    #[error("lb.backends is empty: the load balancer needs at least one API server")]
    NoBackends,
    #[error("lb.backends: {0:?} is neither ip:port nor ip")]
    Backend(String),
    #[error("lb.backends: {0} has port 0")]
    BackendPort(String),
    #[error("lb.backends: {0} is listed twice")]
    DuplicateBackend(SocketAddr),
    #[error("lb.backends: {0} is the VIP itself")]
    BackendIsVip(SocketAddr),
    #[error("lb.backends: {0} is not the VIP's address family")]
    Family(SocketAddr),
    #[error("lb.scheduler {0:?} is unknown (known: {list})", list = SCHEDULERS.join(", "))]
    Scheduler(String),
    #[error("lb.mode {0:?} is unknown (known: auto, route, link)")]
    Mode(String),
    #[error("lb.check.kind {0:?} is unknown (known: https, http, tcp)")]
    Kind(String),
    #[error("lb.check.path {0:?} must start with /")]
    Path(String),
    #[error("lb.check: https needs `ca` (the cluster CA) or `insecure: true`")]
    Trust,
    #[error("lb.check: read CA {path}: {error}")]
    Ca { path: String, error: String },
    #[error("lb.check.{0} must be greater than zero")]
    Zero(&'static str),
    #[error("lb.check.{0} must be at most 3600000 (an hour)")]
    TooLong(&'static str),
}

/// Checks `s`; `read` reads the CA file (the real one reads the node's filesystem).
pub fn validate(
    s: &LbSettings,
    read: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Plan, SettingsError> {
    let vip: IpAddr = s
        .vip
        .parse()
        .map_err(|_| SettingsError::Vip(s.vip.clone()))?;
    if vip.is_unspecified() || vip.is_loopback() || vip.is_multicast() {
        return Err(SettingsError::VipKind(vip));
    }
    if s.port == 0 {
        return Err(SettingsError::Port);
    }
    if s.backends.is_empty() {
        return Err(SettingsError::NoBackends);
    }
    let mut backends = Vec::new();
    for text in &s.backends {
        let addr = parse_backend(text, s.port)?;
        if addr.ip() == vip {
            return Err(SettingsError::BackendIsVip(addr));
        }
        if addr.is_ipv4() != vip.is_ipv4() {
            return Err(SettingsError::Family(addr));
        }
        if backends.contains(&addr) {
            return Err(SettingsError::DuplicateBackend(addr));
        }
        backends.push(addr);
    }
    if !SCHEDULERS.contains(&s.scheduler.as_str()) {
        return Err(SettingsError::Scheduler(s.scheduler.clone()));
    }
    let mode = match s.mode.as_str() {
        "auto" => ModeChoice::Auto,
        "route" => ModeChoice::Route,
        "link" => ModeChoice::Link,
        other => return Err(SettingsError::Mode(other.to_string())),
    };
    Ok(Plan {
        vip,
        port: s.port,
        backends,
        scheduler: s.scheduler.clone(),
        mode,
        check: check(&s.check, read)?,
        health: health(&s.check)?,
    })
}

fn parse_backend(text: &str, port: u16) -> Result<SocketAddr, SettingsError> {
    let addr = match text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => return Err(SettingsError::Backend(text.to_string())),
        },
    };
    if addr.port() == 0 {
        return Err(SettingsError::BackendPort(text.to_string()));
    }
    Ok(addr)
}

fn check(
    c: &CheckSettings,
    read: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Check, SettingsError> {
    let path_ok = || {
        if c.path.starts_with('/') {
            Ok(c.path.clone())
        } else {
            Err(SettingsError::Path(c.path.clone()))
        }
    };
    match c.kind.as_str() {
        "tcp" => Ok(Check::Tcp),
        "http" => Ok(Check::Http { path: path_ok()? }),
        "https" => {
            let trust = match (&c.ca, c.insecure) {
                (Some(path), _) => Trust::CaPem(read(path).map_err(|e| SettingsError::Ca {
                    path: path.clone(),
                    error: e.to_string(),
                })?),
                (None, true) => Trust::Insecure,
                (None, false) => return Err(SettingsError::Trust),
            };
            Ok(Check::Https {
                path: path_ok()?,
                trust,
                server_name: c.server_name.clone(),
            })
        }
        other => Err(SettingsError::Kind(other.to_string())),
    }
}

fn health(c: &CheckSettings) -> Result<HealthConfig, SettingsError> {
    for (name, zero) in [
        ("interval_ms", c.interval_ms == 0),
        ("timeout_ms", c.timeout_ms == 0),
        ("rise", c.rise == 0),
        ("fall", c.fall == 0),
    ] {
        if zero {
            return Err(SettingsError::Zero(name));
        }
    }
    // A timeout longer than the interval is allowed (lvscare's own defaults are 5 s and
    // 10 s): a backend never has more than one probe in flight.
    for (name, ms) in [("interval_ms", c.interval_ms), ("timeout_ms", c.timeout_ms)] {
        if ms > 3_600_000 {
            return Err(SettingsError::TooLong(name));
        }
    }
    Ok(HealthConfig {
        interval: Duration::from_millis(c.interval_ms),
        timeout: Duration::from_millis(c.timeout_ms),
        rise: c.rise,
        fall: c.fall,
    })
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
