//! Desired vs observed IPVS state, diffed into operations.
//!
//! Owns the virtual services Kiln configures and the set of keys Kiln owns (every key
//! it has desired and not yet deleted). It only ever reads, changes or deletes owned
//! services: anything else in the table (kube-proxy's services, an operator's, fwmark
//! services) is foreign and left alone, and its real servers are never even dumped.
//! A configured key is Kiln's even if something else created it first.
//! Health comes in as states from health.rs; the kernel is reached only through `Ipvs`.
//!
//! Weights from health: Up gets its configured weight, Draining weight 0 (no new
//! connections, established ones continue), Down is removed. Unknown (no result yet)
//! counts as Up, so a fresh node has a working VIP at once instead of one or two probe
//! intervals later; a dead backend is drained by its first failed probe anyway.
//! When no backend of a service would carry traffic, all of them get their configured
//! weight (fail open, like Envoy's panic threshold): if they really are all down the
//! clients fail either way, and if the health check is what is broken (wrong CA, a
//! network policy on /healthz) the cluster keeps its API.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::health::State;
use super::model::{Dest, Forward, Ipvs, IpvsError, Service, ServiceKey};

/// Kernel-internal service flag reported in dumps but not settable.
const IP_VS_SVC_F_HASHED: u32 = 0x0002;

/// One configured real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddr,
    pub weight: u32,
}

/// One configured virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    pub key: ServiceKey,
    /// Kernel scheduler name ("rr", "wrr", "lc", ...).
    pub scheduler: String,
    pub backends: Vec<Backend>,
}

/// A configuration the reconciler refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("virtual service {0} is configured twice")]
    DuplicateService(String),
    #[error("virtual service {service}: backend {backend} is listed twice")]
    DuplicateBackend {
        service: String,
        backend: SocketAddr,
    },
    #[error("virtual service {service}: backend {backend} weight {weight} exceeds {max}", max = i32::MAX)]
    Weight {
        service: String,
        backend: SocketAddr,
        weight: u32,
    },
    #[error("virtual service {0}: invalid scheduler name {1:?}")]
    Scheduler(String, String),
}

/// Errors of one reconcile round.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("read the IPVS table")]
    Observe(#[source] IpvsError),
}

/// A service and its real servers, as desired or as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub service: Service,
    pub dests: Vec<Dest>,
}

/// What the table should hold for Kiln's services.
pub type Desired = BTreeMap<ServiceKey, Entry>;
/// What the table holds for the services Kiln looked at.
pub type Observed = BTreeMap<ServiceKey, Entry>;

/// One IPVS change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    NewService(Service),
    SetService(Service),
    DelService(ServiceKey),
    NewDest(ServiceKey, Dest),
    SetDest(ServiceKey, Dest),
    DelDest(ServiceKey, Dest),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let svc = |k: &ServiceKey| {
            let proto = format!("{:?}", k.protocol).to_lowercase();
            format!("{proto} {}", SocketAddr::new(k.addr, k.port))
        };
        let dst = |d: &Dest| format!("{} weight {}", SocketAddr::new(d.addr, d.port), d.weight);
        match self {
            Op::NewService(s) => write!(f, "add service {} ({})", svc(&s.key), s.scheduler),
            Op::SetService(s) => write!(f, "edit service {} ({})", svc(&s.key), s.scheduler),
            Op::DelService(k) => write!(f, "delete service {}", svc(k)),
            Op::NewDest(k, d) => write!(f, "add {} to {}", dst(d), svc(k)),
            Op::SetDest(k, d) => write!(f, "set {} in {}", dst(d), svc(k)),
            Op::DelDest(k, d) => write!(f, "delete {} from {}", dst(d), svc(k)),
        }
    }
}

/// The operations that turn `observed` into `desired`, touching only `owned` and
/// desired keys. Order: services first, then new and changed real servers, then pruned
/// ones (a service never passes through an empty state), then unwanted services.
pub fn plan(desired: &Desired, observed: &Observed, owned: &BTreeSet<ServiceKey>) -> Vec<Op> {
    let mut ops = Vec::new();
    for (key, want) in desired {
        let Some(have) = observed.get(key) else {
            ops.push(Op::NewService(want.service.clone()));
            ops.extend(want.dests.iter().map(|d| Op::NewDest(*key, d.clone())));
            continue;
        };
        if service_differs(&want.service, &have.service) {
            ops.push(Op::SetService(want.service.clone()));
        }
        let same = |a: &Dest, b: &Dest| a.addr == b.addr && a.port == b.port;
        for dest in &want.dests {
            match have.dests.iter().find(|h| same(h, dest)) {
                None => ops.push(Op::NewDest(*key, dest.clone())),
                Some(h) if dest_differs(dest, h) => ops.push(Op::SetDest(*key, dest.clone())),
                Some(_) => {}
            }
        }
        for dest in &have.dests {
            if !want.dests.iter().any(|w| same(w, dest)) {
                ops.push(Op::DelDest(*key, dest.clone()));
            }
        }
    }
    for key in owned {
        if !desired.contains_key(key) && observed.contains_key(key) {
            ops.push(Op::DelService(*key));
        }
    }
    ops
}

fn service_differs(want: &Service, have: &Service) -> bool {
    want.scheduler != have.scheduler
        || want.timeout != have.timeout
        || want.flags & !IP_VS_SVC_F_HASHED != have.flags & !IP_VS_SVC_F_HASHED
}

fn dest_differs(want: &Dest, have: &Dest) -> bool {
    // The kernel turns a masquerade real server that is a local address into "Local"
    // (ip_vs_ctl.c, __ip_vs_update_dest): that is the same thing, not drift.
    let kernel_local = want.forward == Forward::Masquerade && have.forward == Forward::Local;
    want.weight != have.weight
        || (want.forward != have.forward && !kernel_local)
        || want.u_threshold != have.u_threshold
        || want.l_threshold != have.l_threshold
}

/// Dumps the services named in `keys` (those present) with their real servers.
pub fn observe(ipvs: &mut dyn Ipvs, keys: &BTreeSet<ServiceKey>) -> Result<Observed, IpvsError> {
    let mut observed = Observed::new();
    for service in ipvs.services()? {
        if service.fwmark != 0 || !keys.contains(&service.key) {
            continue;
        }
        let dests = ipvs.dests(&service.key)?;
        observed.insert(service.key, Entry { service, dests });
    }
    Ok(observed)
}

/// What `apply` did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<Op>,
    pub failed: Vec<(Op, IpvsError)>,
}

/// Applies every operation, continuing past failures (the next round retries them).
pub fn apply(ipvs: &mut dyn Ipvs, ops: &[Op]) -> Outcome {
    let mut outcome = Outcome::default();
    for op in ops {
        let result = match op {
            Op::NewService(s) => ipvs.new_service(s),
            Op::SetService(s) => ipvs.set_service(s),
            Op::DelService(k) => ipvs.del_service(k),
            Op::NewDest(k, d) => ipvs.new_dest(k, d),
            Op::SetDest(k, d) => ipvs.set_dest(k, d),
            Op::DelDest(k, d) => ipvs.del_dest(k, d),
        };
        match result {
            Ok(()) => outcome.applied.push(op.clone()),
            Err(e) => outcome.failed.push((op.clone(), e)),
        }
    }
    outcome
}

/// Configured services plus ownership; run `reconcile` every interval, on every
/// configuration change and on every health transition.
#[derive(Debug, Default)]
pub struct Reconciler {
    services: Vec<VirtualService>,
    owned: BTreeSet<ServiceKey>,
}

impl Reconciler {
    pub fn new(services: Vec<VirtualService>) -> Result<Self, ConfigError> {
        let mut reconciler = Self::default();
        reconciler.set_services(services)?;
        Ok(reconciler)
    }

    /// Replaces the configuration. Services no longer configured stay owned until a
    /// reconcile has deleted them.
    pub fn set_services(&mut self, services: Vec<VirtualService>) -> Result<(), ConfigError> {
        validate(&services)?;
        self.owned.extend(services.iter().map(|s| s.key));
        self.services = services;
        Ok(())
    }

    pub fn services(&self) -> &[VirtualService] {
        &self.services
    }

    pub fn owned(&self) -> &BTreeSet<ServiceKey> {
        &self.owned
    }

    /// Every configured backend, for `HealthTable::set_backends`.
    pub fn backends(&self) -> BTreeSet<SocketAddr> {
        let backends = self.services.iter().flat_map(|s| &s.backends);
        backends.map(|b| b.addr).collect()
    }

    /// The table Kiln wants given backend health (absent from `health` = Unknown).
    pub fn desired(&self, health: &BTreeMap<SocketAddr, State>) -> Desired {
        let state = |b: &Backend| health.get(&b.addr).copied().unwrap_or(State::Unknown);
        let mut desired = Desired::new();
        for vs in &self.services {
            let serving = |b: &Backend| matches!(state(b), State::Up | State::Unknown);
            let fail_open = !vs.backends.iter().any(|b| serving(b) && b.weight > 0);
            let dests = vs.backends.iter().filter_map(|b| match state(b) {
                _ if fail_open => Some(dest(b, b.weight)),
                State::Up | State::Unknown => Some(dest(b, b.weight)),
                State::Draining => Some(dest(b, 0)),
                State::Down => None,
            });
            let entry = Entry {
                service: service(vs),
                dests: dests.collect(),
            };
            desired.insert(vs.key, entry);
        }
        desired
    }

    /// Observes the owned services, plans and applies. Owned services that are gone
    /// from both the configuration and the table stop being owned.
    pub fn reconcile(
        &mut self,
        ipvs: &mut dyn Ipvs,
        health: &BTreeMap<SocketAddr, State>,
    ) -> Result<Outcome, ReconcileError> {
        let observed = observe(ipvs, &self.owned).map_err(ReconcileError::Observe)?;
        let desired = self.desired(health);
        let outcome = apply(ipvs, &plan(&desired, &observed, &self.owned));
        self.owned.retain(|key| {
            let deleted = outcome.applied.contains(&Op::DelService(*key));
            desired.contains_key(key) || (observed.contains_key(key) && !deleted)
        });
        Ok(outcome)
    }
}

fn validate(services: &[VirtualService]) -> Result<(), ConfigError> {
    let mut keys = BTreeSet::new();
    for vs in services {
        let name = SocketAddr::new(vs.key.addr, vs.key.port).to_string();
        if !keys.insert(vs.key) {
            return Err(ConfigError::DuplicateService(name));
        }
        let scheduler_ok = !vs.scheduler.is_empty()
            && vs.scheduler.len() < 16
            && vs
                .scheduler
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !scheduler_ok {
            return Err(ConfigError::Scheduler(name, vs.scheduler.clone()));
        }
        let mut seen = BTreeSet::new();
        for b in &vs.backends {
            if !seen.insert(b.addr) {
                let (service, backend) = (name.clone(), b.addr);
                return Err(ConfigError::DuplicateBackend { service, backend });
            }
            if b.weight > i32::MAX as u32 {
                let (service, backend, weight) = (name.clone(), b.addr, b.weight);
                return Err(ConfigError::Weight {
                    service,
                    backend,
                    weight,
                });
            }
        }
    }
    Ok(())
}

fn service(vs: &VirtualService) -> Service {
    let netmask = match vs.key.addr {
        IpAddr::V4(_) => u32::MAX,
        IpAddr::V6(_) => 128,
    };
    Service {
        key: vs.key,
        scheduler: vs.scheduler.clone(),
        flags: 0,
        timeout: 0,
        netmask,
        fwmark: 0,
    }
}

fn dest(backend: &Backend, weight: u32) -> Dest {
    Dest::new(backend.addr.ip(), backend.addr.port(), weight)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
