//! The load balancer's vocabulary: IPVS virtual services and their real servers (as the
//! kernel sees them) and the narrow `Ipvs` trait that is the host boundary. The netlink
//! implementation lives in `ipvs/`, the fake in `fake.rs`; the reconciler only sees this.

use std::net::IpAddr;

/// Transport protocol of a virtual service (IPPROTO_* numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    /// A protocol number we do not name (foreign services may use it).
    Other(u16),
}

impl Protocol {
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u16,
            Protocol::Udp => libc::IPPROTO_UDP as u16,
            Protocol::Sctp => libc::IPPROTO_SCTP as u16,
            Protocol::Other(n) => n,
        }
    }

    pub fn from_number(n: u16) -> Self {
        match i32::from(n) {
            libc::IPPROTO_TCP => Protocol::Tcp,
            libc::IPPROTO_UDP => Protocol::Udp,
            libc::IPPROTO_SCTP => Protocol::Sctp,
            _ => Protocol::Other(n),
        }
    }
}

/// What identifies a virtual service (address-based services only; fwmark services
/// are foreign to Kiln and are reported with `fwmark` set in `Service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    /// Scheduler name as the kernel knows it: "rr", "wrr", "lc", "sh", ...
    pub scheduler: String,
    /// IP_VS_SVC_F_* flags.
    pub flags: u32,
    /// Persistence timeout in seconds (0 = none).
    pub timeout: u32,
    /// Netmask for persistence granularity (0xffffffff for IPv4 /32).
    pub netmask: u32,
    /// Firewall mark of a fwmark service (then `key.addr` is unspecified); 0 otherwise.
    pub fwmark: u32,
}

/// Packet forwarding method of a real server (IP_VS_CONN_F_* low bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    Masquerade,
    Local,
    Tunnel,
    DirectRoute,
    Bypass,
    Other(u32),
}

impl Forward {
    pub fn code(self) -> u32 {
        match self {
            Forward::Masquerade => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::DirectRoute => 3,
            Forward::Bypass => 4,
            Forward::Other(n) => n,
        }
    }

    pub fn from_code(n: u32) -> Self {
        match n & 0x7 {
            0 => Forward::Masquerade,
            1 => Forward::Local,
            2 => Forward::Tunnel,
            3 => Forward::DirectRoute,
            4 => Forward::Bypass,
            _ => Forward::Other(n),
        }
    }
}

/// A real server (destination) behind a virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub forward: Forward,
    /// Upper/lower connection thresholds (0 = none).
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// Active and inactive connection counters as dumped (ignored on writes).
    pub active_conns: u32,
    pub inactive_conns: u32,
}

impl Dest {
    pub fn new(addr: IpAddr, port: u16, weight: u32) -> Self {
        Self {
            addr,
            port,
            weight,
            forward: Forward::Masquerade,
            u_threshold: 0,
            l_threshold: 0,
            active_conns: 0,
            inactive_conns: 0,
        }
    }
}

/// Errors crossing the IPVS boundary.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The kernel has no IPVS generic-netlink family (ip_vs not built or not loaded).
    #[error("the kernel has no IPVS support (generic netlink family \"IPVS\" not found)")]
    Unsupported,
    #[error("netlink {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered with an error code (negative errno in NLMSG_ERROR).
    #[error("IPVS {op}: kernel error {errno} ({text})")]
    Kernel {
        op: &'static str,
        errno: i32,
        text: String,
    },
    #[error("IPVS {op}: malformed reply: {reason}")]
    Malformed { op: &'static str, reason: String },
}

/// The host boundary: one IPVS table. Implementations: `ipvs::Netlink` (the kernel) and
/// `fake::FakeIpvs` (tests). Every method is one kernel round trip.
pub trait Ipvs {
    fn services(&mut self) -> Result<Vec<Service>, IpvsError>;
    fn dests(&mut self, service: &ServiceKey) -> Result<Vec<Dest>, IpvsError>;
    fn new_service(&mut self, service: &Service) -> Result<(), IpvsError>;
    fn set_service(&mut self, service: &Service) -> Result<(), IpvsError>;
    fn del_service(&mut self, service: &ServiceKey) -> Result<(), IpvsError>;
    fn new_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError>;
    fn set_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError>;
    fn del_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError>;
}
