//! The load balancer at run time: one thread that validates the settings, loads the IPVS
//! modules, makes the VIP reachable, points `apiserver.cluster.local` at it, then loops:
//! probe backends (each on its own timer), reconcile IPVS on every health transition,
//! on reload and at least every interval (so rules flushed from outside come back
//! within one interval). Every state change is an event.
//!
//! Owns that thread and its `Handle` (reload, stop). Bad settings or a kernel without
//! IPVS give an `lb_error` event and no load balancer; the node keeps running.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Role;
use crate::events::{Event, Value};
use crate::services::logs::EventQueue;

use super::health::{HealthTable, State, SystemClock, Transition};
use super::ipvs::Netlink as IpvsNetlink;
use super::model::Ipvs;
use super::probe::{prober, Monitor, Waker};
use super::reconcile::{Outcome, Reconciler};
use super::settings::{validate, LbSettings, Plan};
use super::vip::{self, Installed, Mode};

enum Command {
    Reload(Box<LbSettings>),
    Stop,
}

/// The running load balancer.
pub struct Handle {
    commands: Sender<Command>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    /// Applies new settings without a restart (validated by the thread; a bad one gives
    /// `lb_error` and the old settings stay).
    pub fn reload(&self, settings: LbSettings) {
        let _ = self.commands.send(Command::Reload(Box::new(settings)));
        self.waker.wake();
    }

    /// Stops the thread (the IPVS rules and the VIP stay until the reboot).
    pub fn stop(mut self) {
        let _ = self.commands.send(Command::Stop);
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn event(name: &'static str, fields: Vec<(&'static str, Value)>) -> Event {
    Event { name, fields }
}

fn lb_error(reason: &str) -> Event {
    event("lb_error", vec![("reason", Value::Str(reason.to_string()))])
}

fn str_list(items: impl IntoIterator<Item = String>) -> Value {
    Value::Json(serde_json::Value::Array(
        items.into_iter().map(serde_json::Value::String).collect(),
    ))
}

/// Starts the load balancer thread; `None` (after an `lb_error` event) when the settings
/// are invalid. Kernel setup happens on the thread (it may run helpers that PID 1's
/// loop must reap), and its failures are `lb_error` events too.
pub fn start(settings: &LbSettings, role: Role, queue: EventQueue) -> Option<Handle> {
    let read = |p: &str| std::fs::read(p);
    let plan = match validate(settings, &read) {
        Ok(plan) => plan,
        Err(e) => {
            queue.push(lb_error(&e.to_string()));
            return None;
        }
    };
    let check = match prober(&plan.check) {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("health check: {}", crate::chain::error_chain(&e));
            queue.push(lb_error(&reason));
            return None;
        }
    };
    let table = HealthTable::new(plan.health, Arc::new(SystemClock));
    let monitor = Monitor::new(table, check);
    let waker = monitor.waker();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("lb".into())
        .spawn(move || match Setup::new(&plan, role) {
            Ok(setup) => run(plan, setup, monitor, rx, queue),
            Err(reason) => queue.push(lb_error(&reason)),
        });
    match spawned {
        Ok(thread) => Some(Handle {
            commands: tx,
            waker,
            thread: Some(thread),
        }),
        Err(_) => None,
    }
}

/// The kernel side prepared before the loop starts.
struct Setup {
    ipvs: IpvsNetlink,
    mode: Mode,
    installed: Installed,
}

impl Setup {
    fn new(plan: &Plan, role: Role) -> Result<Setup, String> {
        let local = plan
            .backends
            .iter()
            .find(|b| vip::is_local(b.ip()))
            .copied();
        let mode = vip::choose(plan.mode, local.is_some());
        let mut modules = vec!["ip_vs".to_string(), format!("ip_vs_{}", plan.scheduler)];
        if mode == Mode::Link {
            modules.extend(["dummy", "nft_chain_nat", "nft_masq"].map(String::from));
        }
        let names: Vec<&str> = modules.iter().map(String::as_str).collect();
        let root = Path::new("/");
        let loaded = crate::kmod::running_release(root).and_then(|release| {
            crate::kmod::load(&names, root, &release, &mut crate::kmod::SysLoader)
        });
        if let Err(e) = loaded {
            return Err(format!("load modules: {}", crate::chain::error_chain(&e)));
        }
        let ipvs = IpvsNetlink::open().map_err(|e| crate::chain::error_chain(&e))?;
        let mut nl = crate::net::RtNetlink::new().map_err(|e| crate::chain::error_chain(&e))?;
        let installed = match mode {
            Mode::Route => {
                let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
                let first = plan.backends.first().map(SocketAddr::ip);
                let backend = first.ok_or("no backend")?;
                vip::install_route(&mut nl, Path::new("/sys"), &routes, plan.vip, backend)
            }
            Mode::Link => vip::install_link(&mut nl, plan.vip),
        }
        .map_err(|e| format!("{} mode: {}", mode.as_str(), crate::chain::error_chain(&e)))?;
        if mode == Mode::Link {
            link_snat(plan.vip)?;
        }
        // Control planes reach their own API server; everyone else the VIP.
        let target = match (role, local) {
            (Role::ControlPlane, Some(own)) => own.ip(),
            _ => plan.vip,
        };
        write_hosts(target).map_err(|e| format!("write /etc/hosts: {e}"))?;
        Ok(Setup {
            ipvs,
            mode,
            installed,
        })
    }
}

/// IPVS conntrack (so netfilter NAT sees IPVS connections) and the masquerade rule.
fn link_snat(vip: IpAddr) -> Result<(), String> {
    std::fs::write("/proc/sys/net/ipv4/vs/conntrack", "1\n")
        .map_err(|e| format!("enable net.ipv4.vs.conntrack: {e}"))?;
    let rules = Path::new("/run/kiln/lb.nft");
    std::fs::write(rules, vip::snat_ruleset(vip))
        .map_err(|e| format!("write {}: {e}", rules.display()))?;
    let mut cmd = std::process::Command::new("/usr/sbin/nft");
    cmd.arg("-f").arg(rules);
    let out = crate::children::run(
        &mut cmd,
        Path::new("/run/kiln/lb.nft.out"),
        Duration::from_secs(10),
    )
    .map_err(|e| format!("run nft: {e}"))?;
    if out.code != 0 {
        return Err(format!(
            "nft -f {}: exit {}: {}",
            rules.display(),
            out.code,
            out.output.trim()
        ));
    }
    Ok(())
}

fn write_hosts(addr: IpAddr) -> std::io::Result<()> {
    let existing = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let tmp = Path::new("/etc/.hosts.kiln-lb");
    std::fs::write(tmp, vip::hosts_with(&existing, addr))?;
    std::fs::rename(tmp, "/etc/hosts")
}

fn started(plan: &Plan, mode: Mode) -> Event {
    event(
        "lb_started",
        vec![
            ("vip", Value::Str(plan.vip.to_string())),
            ("port", Value::Uint(u64::from(plan.port))),
            ("mode", Value::Str(mode.as_str().to_string())),
            ("scheduler", Value::Str(plan.scheduler.clone())),
            (
                "backends",
                str_list(plan.backends.iter().map(|b| b.to_string())),
            ),
        ],
    )
}

fn transition(t: &Transition) -> Event {
    event(
        "lb_backend",
        vec![
            ("backend", Value::Str(t.backend.to_string())),
            ("from", Value::Str(t.from.as_str().to_string())),
            ("to", Value::Str(t.to.as_str().to_string())),
            ("reason", Value::Str(t.reason.to_string())),
        ],
    )
}

fn synced(outcome: &Outcome) -> Event {
    event(
        "lb_sync",
        vec![(
            "ops",
            str_list(outcome.applied.iter().map(|o| o.to_string())),
        )],
    )
}

fn run(
    plan: Plan,
    mut setup: Setup,
    mut monitor: Monitor,
    commands: Receiver<Command>,
    queue: EventQueue,
) {
    let mut plan = plan;
    let mut reconciler = match Reconciler::new(vec![plan.virtual_service()]) {
        Ok(r) => r,
        Err(e) => return queue.push(lb_error(&e.to_string())),
    };
    monitor.table_mut().set_backends(reconciler.backends());
    queue.push(started(&plan, setup.mode));
    let mut last_error = String::new();
    let mut next_sync = Duration::ZERO;
    loop {
        let now = crate::sys::boottime();
        let step = monitor.step(next_sync.saturating_sub(now));
        for t in &step.transitions {
            queue.push(transition(t));
        }
        if step.woken {
            match commands.try_recv() {
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                    if let Ok(mut nl) = crate::net::RtNetlink::new() {
                        vip::uninstall(&mut nl, &setup.installed, plan.vip);
                    }
                    return;
                }
                Ok(Command::Reload(s)) => {
                    reload(&mut plan, &s, &mut reconciler, &mut monitor, &queue)
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        let now = crate::sys::boottime();
        if step.transitions.is_empty() && !step.woken && now < next_sync {
            continue;
        }
        next_sync = now + plan.health.interval;
        let states: BTreeMap<SocketAddr, State> = monitor.table().states();
        let ipvs: &mut dyn Ipvs = &mut setup.ipvs;
        let error = match reconciler.reconcile(ipvs, &states) {
            Ok(outcome) => {
                if !outcome.applied.is_empty() {
                    queue.push(synced(&outcome));
                }
                outcome
                    .failed
                    .first()
                    .map(|(op, e)| format!("{op}: {}", crate::chain::error_chain(e)))
                    .unwrap_or_default()
            }
            Err(e) => crate::chain::error_chain(&e),
        };
        // One event per distinct failure, not one per second.
        if !error.is_empty() && error != last_error {
            queue.push(lb_error(&error));
        }
        last_error = error;
    }
}

fn reload(
    plan: &mut Plan,
    settings: &LbSettings,
    reconciler: &mut Reconciler,
    monitor: &mut Monitor,
    queue: &EventQueue,
) {
    let read = |p: &str| std::fs::read(p);
    let new = match validate(settings, &read) {
        Ok(p) if p.vip == plan.vip && p.mode == plan.mode && p.check == plan.check => p,
        Ok(_) => {
            return queue.push(lb_error(
                "reload: changing the VIP, the mode or the check kind needs a reboot; settings unchanged",
            ))
        }
        Err(e) => return queue.push(lb_error(&format!("reload: {e}; settings unchanged"))),
    };
    if let Err(e) = reconciler.set_services(vec![new.virtual_service()]) {
        return queue.push(lb_error(&format!("reload: {e}; settings unchanged")));
    }
    monitor.table_mut().set_config(new.health);
    monitor.table_mut().set_backends(reconciler.backends());
    *plan = new;
    queue.push(event(
        "lb_reloaded",
        vec![(
            "backends",
            str_list(plan.backends.iter().map(|b| b.to_string())),
        )],
    ));
}
