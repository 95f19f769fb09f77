//! Bringing the network up at boot ([`bring_up`]) and keeping DHCP leases afterwards
//! ([`DhcpKeeper`]).
//!
//! Concurrency: one thread per DHCP interface (`dhcp-<iface>`), each owning its
//! [`DhcpClient`] and transport and sharing the [`Netlink`] handle behind a mutex. A thread
//! waits on its transport for at most 200 ms at a time, so a stop request is seen quickly.
//! Threads report leases over a channel: `bring_up` reads it until every interface is bound
//! or `timeout` (wall time) passes, then hands it to the keeper. The threads keep renewing
//! (T1/T2) until [`DhcpKeeper::release_all`] (DHCPRELEASE, address removed) or until the
//! keeper is dropped (threads stop, leases stay configured): PID 1 keeps the keeper alive.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{Action, ClientConfig, DhcpClient, Lease};
use super::lease;
use super::netlink::Netlink;
use super::plan::{self, DhcpTarget, NetPlan};
use super::transport::{DhcpTransport, TransportFactory};
use super::Cidr;
use crate::chain::error_chain;

const SLICE: Duration = Duration::from_millis(200);
const RUN: u8 = 0;
const RELEASE: u8 = 1;
const ABANDON: u8 = 2;

/// Monotonic time that includes suspend, as lease lifetimes do.
pub trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

/// CLOCK_BOOTTIME.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        crate::sys::boottime()
    }
}

/// One interface and its addresses (`10.0.2.15/24`), as reported in events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IfaceStatus {
    pub name: String,
    pub addresses: Vec<String>,
}

/// The events of this module; the caller turns them into event-port lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// `network_online {interfaces: [{name, addresses: [...]}]}`
    Online { interfaces: Vec<IfaceStatus> },
    /// `network_timeout {waiting: [...]}`
    Timeout { waiting: Vec<String> },
}

impl NetEvent {
    pub fn name(&self) -> &'static str {
        match self {
            NetEvent::Online { .. } => "network_online",
            NetEvent::Timeout { .. } => "network_timeout",
        }
    }

    /// The event's fields as one JSON object.
    pub fn fields(&self) -> serde_json::Value {
        match self {
            NetEvent::Online { interfaces } => serde_json::json!({ "interfaces": interfaces }),
            NetEvent::Timeout { waiting } => serde_json::json!({ "waiting": waiting }),
        }
    }
}

/// What a DHCP thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseUpdate {
    Bound { name: String, lease: Lease },
    Lost { name: String, lease: Lease },
    Error { name: String, error: String },
}

/// The outcome of [`bring_up`].
pub struct NetStatus {
    /// Every planned interface is configured (static and DHCP).
    pub online: bool,
    pub interfaces: Vec<IfaceStatus>,
    /// Interfaces without their address yet (DHCP not bound, transport failed to open).
    pub waiting: Vec<String>,
    /// Static resolvers first, then those of the leases; feed to `render_resolv_conf`.
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    /// Planned interfaces absent from this machine.
    pub missing: Vec<String>,
    /// `iface: error chain` of every operation that failed.
    pub failures: Vec<String>,
    pub keeper: DhcpKeeper,
}

/// Owns the DHCP threads after boot.
pub struct DhcpKeeper {
    stop: Arc<AtomicU8>,
    workers: Vec<JoinHandle<()>>,
    updates: Receiver<LeaseUpdate>,
}

impl DhcpKeeper {
    /// Lease changes since the last call (renewals, losses, errors); never blocks.
    pub fn updates(&self) -> Vec<LeaseUpdate> {
        self.updates.try_iter().collect()
    }

    /// Sends DHCPRELEASE for every lease, removes the addresses and stops the threads;
    /// returns how many DHCP clients were stopped.
    pub fn release_all(&mut self) -> usize {
        self.stop.store(RELEASE, Ordering::SeqCst);
        let n = self.workers.len();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        n
    }
}

impl Drop for DhcpKeeper {
    fn drop(&mut self) {
        let _ = self
            .stop
            .compare_exchange(RUN, ABANDON, Ordering::SeqCst, Ordering::SeqCst);
    }
}

type SharedNetlink = Arc<Mutex<Box<dyn Netlink + Send>>>;

/// Applies `plan`, runs DHCP where asked, emits `network_online` or `network_timeout`.
pub fn bring_up(
    plan: &NetPlan,
    nl: Box<dyn Netlink + Send>,
    factory: &dyn TransportFactory,
    clock: Arc<dyn Clock>,
    emit: &mut dyn FnMut(&NetEvent),
    timeout: Duration,
) -> NetStatus {
    let deadline = Instant::now() + timeout;
    let nl: SharedNetlink = Arc::new(Mutex::new(nl));
    let stop = Arc::new(AtomicU8::new(RUN));
    let (tx, rx) = mpsc::channel();
    let mut status = NetStatus {
        online: false,
        interfaces: Vec::new(),
        waiting: Vec::new(),
        nameservers: plan.nameservers.clone(),
        search: plan.search.clone(),
        missing: Vec::new(),
        failures: Vec::new(),
        keeper: DhcpKeeper {
            stop: stop.clone(),
            workers: Vec::new(),
            updates: rx,
        },
    };
    let applied = match plan::apply(plan, lock(&nl).as_mut()) {
        Ok(applied) => applied,
        Err(e) => {
            status.failures.push(error_chain(&e));
            status.waiting = plan.interfaces.iter().map(|i| i.name.clone()).collect();
            emit(&NetEvent::Timeout {
                waiting: status.waiting.clone(),
            });
            return status;
        }
    };
    status.missing = applied.missing;
    for (name, e) in &applied.failures {
        status.failures.push(format!("{name}: {}", error_chain(e)));
    }
    let mut addresses: Vec<(String, Vec<Cidr>)> = applied.addresses;
    let mut pending = Vec::new();
    for target in applied.dhcp {
        match factory.open(&target) {
            Ok(transport) => {
                let ctx = Worker {
                    client: DhcpClient::new(client_config(&target, plan, clock.as_ref())),
                    target: target.clone(),
                    transport,
                    nl: nl.clone(),
                    clock: clock.clone(),
                    stop: stop.clone(),
                    tx: tx.clone(),
                    last_error: None,
                };
                let spawned = std::thread::Builder::new()
                    .name(format!("dhcp-{}", target.name))
                    .spawn(move || ctx.run());
                match spawned {
                    Ok(handle) => {
                        status.keeper.workers.push(handle);
                        pending.push(target.name);
                    }
                    Err(e) => status
                        .failures
                        .push(format!("{}: spawn DHCP thread: {e}", target.name)),
                }
            }
            Err(e) => {
                status
                    .failures
                    .push(format!("{}: open DHCP socket: {e}", target.name));
                status.waiting.push(target.name);
            }
        }
    }
    let mut leases: Vec<(String, Lease)> = Vec::new();
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match status.keeper.updates.recv_timeout(left) {
            Ok(LeaseUpdate::Bound { name, lease }) => {
                pending.retain(|p| *p != name);
                leases.retain(|(n, _)| *n != name);
                leases.push((name, lease));
            }
            Ok(LeaseUpdate::Lost { name, .. }) => leases.retain(|(n, _)| *n != name),
            Ok(LeaseUpdate::Error { name, error }) => {
                status.failures.push(format!("{name}: {error}"))
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    status.waiting.extend(pending);
    for (name, lease) in &leases {
        let cidr = Cidr::v4(lease.address, lease.prefix);
        match addresses.iter_mut().find(|(n, _)| n == name) {
            Some((_, list)) => list.push(cidr),
            None => addresses.push((name.clone(), vec![cidr])),
        }
        status
            .nameservers
            .extend(lease.dns.iter().map(|&d| IpAddr::V4(d)));
        status.search.extend(lease.domain.clone());
    }
    status.interfaces = addresses
        .into_iter()
        .map(|(name, list)| IfaceStatus {
            name,
            addresses: list.iter().map(ToString::to_string).collect(),
        })
        .collect();
    status.online = status.waiting.is_empty();
    emit(&if status.online {
        NetEvent::Online {
            interfaces: status.interfaces.clone(),
        }
    } else {
        NetEvent::Timeout {
            waiting: status.waiting.clone(),
        }
    });
    status
}

fn client_config(target: &DhcpTarget, plan: &NetPlan, clock: &dyn Clock) -> ClientConfig {
    let mut mac = [0u8; 8];
    mac[2..].copy_from_slice(&target.mac);
    let seed = u64::from_be_bytes(mac)
        ^ (clock.now().as_nanos() as u64)
        ^ u64::from(std::process::id()) << 48;
    ClientConfig {
        mac: target.mac,
        hostname: plan.hostname.clone(),
        fast_start: true,
        seed,
    }
}

fn lock(nl: &SharedNetlink) -> std::sync::MutexGuard<'_, Box<dyn Netlink + Send>> {
    // A panic while holding the lock cannot leave the kernel half-updated in a way we
    // could repair here; keep going with the handle.
    nl.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The state of one DHCP thread.
struct Worker {
    target: DhcpTarget,
    client: DhcpClient,
    transport: Box<dyn DhcpTransport>,
    nl: SharedNetlink,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicU8>,
    tx: Sender<LeaseUpdate>,
    last_error: Option<String>,
}

impl Worker {
    fn run(mut self) {
        let actions = self.client.start(self.clock.now());
        self.perform(actions);
        loop {
            match self.stop.load(Ordering::SeqCst) {
                RUN => {}
                RELEASE => {
                    let actions = self.client.release(self.clock.now());
                    self.perform(actions);
                    return;
                }
                _ => return,
            }
            let now = self.clock.now();
            let deadline = self.client.deadline();
            if deadline.is_some_and(|d| now >= d) {
                let actions = self.client.on_timeout(now);
                self.perform(actions);
                continue;
            }
            let wait = deadline.map_or(SLICE, |d| (d - now).min(SLICE));
            match self.transport.recv(wait) {
                Ok(Some(bytes)) => {
                    self.last_error = None;
                    let actions = self.client.on_packet(&bytes, self.clock.now());
                    self.perform(actions);
                }
                Ok(None) => {}
                Err(e) => {
                    self.report(format!("receive DHCP: {e}"));
                    std::thread::sleep(SLICE);
                }
            }
        }
    }

    fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { message, dest } => {
                    if let Err(e) = self.transport.send(&message.encode(), dest) {
                        self.report(format!("send DHCP: {e}"));
                    }
                }
                Action::Configure(lease) => {
                    let errors =
                        lease::configure(lock(&self.nl).as_mut(), self.target.index, &lease);
                    self.report_all(errors);
                    self.update(LeaseUpdate::Bound {
                        name: self.target.name.clone(),
                        lease,
                    });
                }
                Action::Deconfigure(lease) => {
                    let errors =
                        lease::deconfigure(lock(&self.nl).as_mut(), self.target.index, &lease);
                    self.report_all(errors);
                    self.update(LeaseUpdate::Lost {
                        name: self.target.name.clone(),
                        lease,
                    });
                }
            }
        }
    }

    fn report_all(&mut self, errors: Vec<super::NetlinkError>) {
        for e in errors {
            self.report(error_chain(&e));
        }
    }

    /// Reports an error unless it repeats the previous one (a dead link must not flood).
    fn report(&mut self, error: String) {
        if self.last_error.as_ref() == Some(&error) {
            return;
        }
        self.last_error = Some(error.clone());
        self.update(LeaseUpdate::Error {
            name: self.target.name.clone(),
            error,
        });
    }

    fn update(&self, update: LeaseUpdate) {
        // The receiver is gone only when nobody listens any more; nothing to do then.
        let _ = self.tx.send(update);
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
