//! The thin executor: feeds the state machine's actions to the host through three narrow
//! traits (`Spawner`, `Prober`, `Clock`) and hands events to the caller's `emit`.
//!
//! Owns the action loop only. Reaping is not here: PID 1's one `waitpid(-1)` loop calls
//! `on_exit` with every status it collects (a second waiter would steal statuses).

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::event::Exit;
use super::logs::EventQueue;
use super::machine::{Action, Pid, Supervisor};
use super::spec::{Readiness, ServiceSpec};
use crate::chain::error_chain;
use crate::events::Event;

/// Errors starting a service process.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("create output pipe")]
    Pipe(#[source] io::Error),
    #[error("spawn {0}")]
    Spawn(PathBuf, #[source] io::Error),
    #[error("child pid {0} out of range")]
    Pid(u32),
}

/// Starts and signals processes.
pub trait Spawner {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Pid, SpawnError>;
    fn kill(&mut self, pid: Pid, signal: i32) -> io::Result<()>;
}

/// Checks readiness once, without blocking for long.
pub trait Prober {
    fn probe(&mut self, ready: &Readiness) -> bool;
}

/// Monotonic time (CLOCK_BOOTTIME in PID 1).
pub trait Clock {
    fn now(&self) -> Duration;
}

/// Runs a `Supervisor` against the host.
pub struct Executor<S, P, C> {
    machine: Supervisor,
    spawner: S,
    prober: P,
    clock: C,
    queue: Option<EventQueue>,
    drain_every: Option<Duration>,
}

impl<S: Spawner, P: Prober, C: Clock> Executor<S, P, C> {
    pub fn new(machine: Supervisor, spawner: S, prober: P, clock: C) -> Self {
        Self {
            machine,
            spawner,
            prober,
            clock,
            queue: None,
            drain_every: None,
        }
    }

    /// Also drains `queue` (log lines, log errors from reader threads) on every call;
    /// with `drain_every`, `timeout` never exceeds it (for timely forwarded `log` lines).
    pub fn with_events(mut self, queue: EventQueue, drain_every: Option<Duration>) -> Self {
        self.queue = Some(queue);
        self.drain_every = drain_every;
        self
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.machine
    }

    pub fn spawner(&self) -> &S {
        &self.spawner
    }

    pub fn start(&mut self, emit: &mut dyn FnMut(&Event)) {
        let actions = self.machine.start(self.clock.now());
        self.run(actions, emit);
    }

    /// Feeds one reaped child; returns whether it was a service.
    pub fn on_exit(&mut self, pid: Pid, exit: Exit, emit: &mut dyn FnMut(&Event)) -> bool {
        match self.machine.on_exit(pid, exit, self.clock.now()) {
            Some(actions) => {
                self.run(actions, emit);
                true
            }
            None => false,
        }
    }

    /// Restarts, probes, stop timeouts and queued log events; call when `timeout` passed
    /// (calling more often is harmless).
    pub fn on_tick(&mut self, emit: &mut dyn FnMut(&Event)) {
        let actions = self.machine.on_tick(self.clock.now());
        self.run(actions, emit);
    }

    /// Starts shutdown; keep reaping and ticking until `all_stopped`.
    pub fn stop_all(&mut self, emit: &mut dyn FnMut(&Event)) {
        let actions = self.machine.stop_all(self.clock.now());
        self.run(actions, emit);
    }

    pub fn all_stopped(&self) -> bool {
        self.machine.all_stopped()
    }

    /// How long the caller may sleep before the next `on_tick` (None: until a signal).
    pub fn timeout(&self) -> Option<Duration> {
        let now = self.clock.now();
        let timer = self
            .machine
            .next_deadline(now)
            .map(|at| at.saturating_sub(now));
        match (timer, self.drain_every) {
            (Some(t), Some(d)) => Some(t.min(d)),
            (t, d) => t.or(d),
        }
    }

    fn run(&mut self, actions: Vec<Action>, emit: &mut dyn FnMut(&Event)) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            let more = match action {
                Action::Emit(event) => {
                    emit(&event);
                    continue;
                }
                Action::Signal { pid, signal } => {
                    // Fails only for a pid that is already gone; its exit status is on
                    // its way to `on_exit`.
                    let _ = self.spawner.kill(pid, signal);
                    continue;
                }
                Action::Spawn(i) => {
                    let spec = &self.machine.specs()[i];
                    let result = self.spawner.spawn(spec).map_err(|e| error_chain(&e));
                    self.machine.on_spawned(i, result, self.clock.now())
                }
                Action::Probe(i) => {
                    let ok = self.prober.probe(&self.machine.specs()[i].ready);
                    self.machine.on_probe(i, ok, self.clock.now())
                }
            };
            queue.extend(more);
        }
        if let Some(q) = &self.queue {
            q.drain(emit);
        }
    }
}
