//! PID 1's forever loop: reap zombies and turn signals into shutdowns. Used by stage 2
//! after `ready` and by the maintenance state after a fatal error.
//!
//! Signals arrive through a signalfd (blocked for normal delivery, so none is lost and no
//! async handler runs). SIGCHLD reaps; SIGTERM and SIGUSR2 power off; SIGINT (which is what
//! Ctrl-Alt-Del sends once `RB_DISABLE_CAD` is set) reboots. The one `waitpid(-1)` here
//! hands every exit status to the services executor, which nothing else may reap for.

use std::time::Duration;

use crate::events;
use crate::report::Reporter;
use crate::services::{Exit, Phase, Services};
use crate::shutdown::{self, Action};
use crate::sys::{self, Reaped, SignalFd, Wake};

/// Signals PID 1 handles; block them as early as possible.
pub const SIGNALS: [libc::c_int; 4] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGUSR2];

/// The shutdown a signal asks for, if any.
pub fn action_for(sig: libc::c_int) -> Option<Action> {
    match sig {
        libc::SIGTERM | libc::SIGUSR2 => Some(Action::Poweroff),
        libc::SIGINT => Some(Action::Reboot),
        _ => None,
    }
}

/// Reaps every exited child, passing each (pid, raw status) to `f`; returns how many.
pub fn reap_all(mut f: impl FnMut(libc::pid_t, libc::c_int)) -> usize {
    let mut count = 0;
    while let Reaped::Child(pid, status) = sys::reap_one() {
        // Helpers run by threads (nft, exec requests) are waited for there.
        if !crate::children::deliver(pid, status) {
            f(pid, status);
        }
        count += 1;
    }
    count
}

/// How long stopping services may take at shutdown before the kill sweep.
const STOP_LIMIT: Duration = Duration::from_secs(120);

/// Stops services in reverse dependency order, reaping as they exit.
fn stop_services(reporter: &mut Reporter, signals: &mut SignalFd, svcs: &mut Services) {
    let start = sys::boottime();
    svcs.stop_all(&mut |e| reporter.event(e));
    while !svcs.all_stopped() && sys::boottime().saturating_sub(start) < STOP_LIMIT {
        reap_all(|pid, st| {
            svcs.on_exit(pid, Exit::from_wait_status(st), &mut |e| reporter.event(e));
        });
        svcs.on_tick(&mut |e| reporter.event(e));
        let wait = svcs.timeout().unwrap_or(Duration::from_millis(100));
        let _ = signals.wait_timeout(Some(wait.min(Duration::from_millis(100))));
    }
}

fn all_ready(svcs: &Services) -> bool {
    let sup = svcs.supervisor();
    // A one-shot that finished (Exited) counts: boot is complete.
    sup.specs()
        .iter()
        .all(|s| matches!(sup.phase(&s.name), Some(Phase::Ready | Phase::Exited)))
}

/// What PID 1 looks after once boot is done.
#[derive(Default)]
pub struct Node {
    pub services: Option<Services>,
    /// Renews the DHCP leases; releases them at shutdown.
    pub dhcp: Option<crate::net::DhcpKeeper>,
    pub lb: Option<crate::lb::run::Handle>,
    /// Events from threads (load balancer, exec requests), drained by the loop.
    pub background: crate::services::logs::EventQueue,
    /// `kiln: debug_exec` from the config.
    pub exec_enabled: bool,
    /// The cluster context (etcd requests).
    pub cluster: Option<crate::cluster::context::Context>,
}

/// How long the loop may sleep while threads may queue events.
const BACKGROUND_DRAIN: Duration = Duration::from_millis(200);

/// Answers the requests waiting on the event port (at most a burst per wake-up).
fn answer_requests(reporter: &mut Reporter, node: &Node) {
    let names: Vec<&str> = node
        .services
        .as_ref()
        .map(|s| {
            s.supervisor()
                .specs()
                .iter()
                .map(|s| s.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let ctx = crate::control::Context {
        services: &names,
        log_dir: std::path::Path::new(crate::services::spec::LOG_DIR),
        exec_enabled: node.exec_enabled,
        background: &node.background,
        lb: node.lb.as_ref(),
        cluster: node.cluster.as_ref(),
        scratch: std::path::Path::new("/run/kiln"),
    };
    let lines = reporter.read_requests();
    for (i, line) in lines.iter().enumerate() {
        let answer = if i < crate::control::BURST {
            crate::control::handle(line, &ctx)
        } else {
            vec![events::request_error("too many requests at once")]
        };
        for e in &answer {
            reporter.event(e);
        }
    }
}

/// Makes Ctrl-Alt-Del send SIGINT to PID 1 instead of rebooting at once.
pub fn disable_ctrl_alt_del(reporter: &mut Reporter) {
    if let Err(e) = sys::reboot(libc::RB_DISABLE_CAD) {
        reporter.info(&format!("disable Ctrl-Alt-Del: {e}"));
    }
}

/// Serves signals forever. Without a signalfd (creation failed) it still reaps, once a
/// second, but cannot shut down on request. With services, `ready` is emitted once every
/// service is ready (boot is complete then); without, it was emitted by the caller.
pub fn serve(reporter: &mut Reporter, signals: Option<SignalFd>, mut node: Node) -> ! {
    let Some(mut signals) = signals else {
        reporter.info("no signalfd: reaping only, shutdown requests are ignored");
        loop {
            reap_all(|_, _| ());
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    let mut ready_sent = node.services.is_none();
    loop {
        let mut emit = |e: &events::Event| reporter.event(e);
        node.background.drain(&mut emit);
        if let Some(svcs) = node.services.as_mut() {
            reap_all(|pid, st| {
                svcs.on_exit(pid, Exit::from_wait_status(st), &mut emit);
            });
            svcs.on_tick(&mut emit);
        } else {
            reap_all(|_, _| ());
        }
        if !ready_sent && node.services.as_ref().is_some_and(all_ready) {
            ready_sent = true;
            let boot = sys::boottime();
            reporter.info(&format!("ready after {:.3} s", boot.as_secs_f64()));
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            reporter.event(&events::ready(boot, events::vmhwm_kib(&status)));
        }
        let timeout = node.services.as_ref().and_then(Services::timeout);
        // Threads queue events only with a load balancer, exec or cluster requests.
        let background = node.lb.is_some() || node.exec_enabled || node.cluster.is_some();
        let timeout = match timeout {
            Some(t) if background => Some(t.min(BACKGROUND_DRAIN)),
            None if background => Some(BACKGROUND_DRAIN),
            other => other,
        };
        let port = reporter.port_fd();
        let sig = match signals.wait_either(timeout, port) {
            Ok(Wake::Signal(sig)) => sig,
            Ok(Wake::Readable) => {
                answer_requests(reporter, &node);
                continue;
            }
            Ok(Wake::Timeout) => continue,
            Err(e) => {
                reporter.info(&format!("read signalfd: {e}"));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let Some(action) = action_for(sig) else {
            continue;
        };
        if let Some(lb) = node.lb.take() {
            lb.stop();
        }
        if let Some(svcs) = node.services.as_mut() {
            stop_services(reporter, &mut signals, svcs);
        }
        if let Some(mut keeper) = node.dhcp.take() {
            let clients = keeper.release_all();
            reporter.event(&events::network_released(clients));
        }
        let err = shutdown::shutdown(action, reporter);
        reporter.info(&crate::chain::error_chain(&err));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_signals_to_actions() {
        let cases = [
            (libc::SIGTERM, Some(Action::Poweroff)),
            (libc::SIGUSR2, Some(Action::Poweroff)),
            (libc::SIGINT, Some(Action::Reboot)),
            (libc::SIGCHLD, None),
            (libc::SIGHUP, None),
        ];
        for (sig, want) in cases {
            assert_eq!(action_for(sig), want, "signal {sig}");
        }
    }
}
