//! The supervisor as a pure state machine: it is told what happened (start, spawn result,
//! probe result, exit, tick, stop) with the current time and answers with `Action`s.
//!
//! Owns start gating on dependencies, restart policy and backoff, crash-loop detection
//! and the shutdown order. It performs no I/O: the executor (exec.rs) spawns, signals,
//! probes and emits.

use std::time::Duration;

use super::event::{self, Exit};
use super::spec::{self, Readiness, RestartPolicy, ServiceSpec, SpecError};
pub use super::types::{Action, Phase, Pid, Timing};

#[derive(Debug, Clone, Copy)]
enum State {
    Waiting,
    Spawning,
    Running {
        pid: Pid,
        since: Duration,
        ready: bool,
    },
    Backoff {
        until: Duration,
    },
    Stopping {
        pid: Pid,
        deadline: Duration,
        killed: bool,
    },
    Exited,
    Failed,
    Stopped,
}

#[derive(Debug)]
struct Unit {
    state: State,
    delay: Duration,
    /// Times of recent exits, for crash-loop detection.
    exits: Vec<Duration>,
    crash_loop: bool,
}

/// The supervisor state machine for a fixed set of services.
#[derive(Debug)]
pub struct Supervisor {
    specs: Vec<ServiceSpec>,
    deps: Vec<Vec<usize>>,
    order: Vec<usize>,
    timing: Timing,
    units: Vec<Unit>,
    started: bool,
    stopping: bool,
}

impl Supervisor {
    /// Validates the specs (names, dependencies, cycles); starts nothing yet.
    pub fn new(specs: Vec<ServiceSpec>, timing: Timing) -> Result<Self, SpecError> {
        let (deps, order) = spec::plan(&specs)?;
        let units = specs
            .iter()
            .map(|_| Unit {
                state: State::Waiting,
                delay: timing.initial_backoff,
                exits: Vec::new(),
                crash_loop: false,
            })
            .collect();
        Ok(Self {
            specs,
            deps,
            order,
            timing,
            units,
            started: false,
            stopping: false,
        })
    }

    pub fn specs(&self) -> &[ServiceSpec] {
        &self.specs
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The phase of the service called `name`.
    pub fn phase(&self, name: &str) -> Option<Phase> {
        let i = self.specs.iter().position(|s| s.name == name)?;
        Some(match self.units[i].state {
            State::Waiting => Phase::Waiting,
            State::Spawning => Phase::Spawning,
            State::Running { ready: false, .. } => Phase::Starting,
            State::Running { ready: true, .. } => Phase::Ready,
            State::Backoff { .. } => Phase::Backoff,
            State::Stopping { .. } => Phase::Stopping,
            State::Exited => Phase::Exited,
            State::Failed => Phase::Failed,
            State::Stopped => Phase::Stopped,
        })
    }

    /// Starts every service whose dependencies allow it (the others follow as their
    /// dependencies become ready).
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        self.started = true;
        let mut out = Vec::new();
        self.schedule(now, &mut out);
        out
    }

    /// The result of `Action::Spawn(i)`: a pid, or why spawning failed.
    pub fn on_spawned(
        &mut self,
        i: usize,
        result: Result<Pid, String>,
        now: Duration,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !matches!(self.units[i].state, State::Spawning) {
            return out;
        }
        let name = &self.specs[i].name;
        match result {
            Ok(pid) => {
                let ready = self.specs[i].ready == Readiness::None;
                out.push(Action::Emit(event::starting(name, pid)));
                if ready {
                    out.push(Action::Emit(event::ready(name, Duration::ZERO)));
                }
                self.units[i].state = State::Running {
                    pid,
                    since: now,
                    ready,
                };
            }
            Err(reason) => {
                out.push(Action::Emit(event::failed(
                    name,
                    &format!("spawn: {reason}"),
                )));
                self.ended(i, true, now, now, None, &mut out);
            }
        }
        self.schedule(now, &mut out);
        out
    }

    /// The result of `Action::Probe(i)`.
    pub fn on_probe(&mut self, i: usize, ok: bool, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if let State::Running {
            pid,
            since,
            ready: false,
        } = self.units[i].state
        {
            if ok {
                self.units[i].state = State::Running {
                    pid,
                    since,
                    ready: true,
                };
                let after = now.saturating_sub(since);
                out.push(Action::Emit(event::ready(&self.specs[i].name, after)));
                self.schedule(now, &mut out);
            }
        }
        out
    }

    /// A reaped child; `None` when `pid` is not one of our services.
    pub fn on_exit(&mut self, pid: Pid, exit: Exit, now: Duration) -> Option<Vec<Action>> {
        let i = self.units.iter().position(|u| match u.state {
            State::Running { pid: p, .. } | State::Stopping { pid: p, .. } => p == pid,
            _ => false,
        })?;
        let name = &self.specs[i].name;
        let mut out = vec![Action::Emit(event::exited(name, pid, exit))];
        match self.units[i].state {
            State::Running { since, .. } if !self.stopping => {
                self.ended(
                    i,
                    exit.failed(),
                    since,
                    now,
                    Some(exit.to_string()),
                    &mut out,
                );
            }
            _ => {
                out.push(Action::Emit(event::stopped(name)));
                self.units[i].state = State::Stopped;
            }
        }
        self.schedule(now, &mut out);
        Some(out)
    }

    /// Timers: restarts whose delay is over, readiness probes, stop timeouts.
    pub fn on_tick(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        for i in 0..self.units.len() {
            match self.units[i].state {
                State::Backoff { until } if now >= until && !self.stopping => {
                    self.units[i].state = State::Spawning;
                    out.push(Action::Spawn(i));
                }
                State::Running { ready: false, .. } if !self.stopping => {
                    out.push(Action::Probe(i));
                }
                State::Stopping {
                    pid,
                    deadline,
                    killed,
                } if now >= deadline => {
                    self.stop_timeout(i, pid, killed, now, &mut out);
                }
                _ => {}
            }
        }
        self.schedule(now, &mut out);
        out
    }

    /// Begins shutdown: nothing starts or restarts any more; services get their stop
    /// signal in reverse dependency order (a service once its dependents have exited).
    pub fn stop_all(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopping {
            return out;
        }
        self.stopping = true;
        for (unit, spec) in self.units.iter_mut().zip(&self.specs) {
            match unit.state {
                State::Waiting | State::Spawning => unit.state = State::Stopped,
                State::Backoff { .. } => {
                    unit.state = State::Stopped;
                    out.push(Action::Emit(event::stopped(&spec.name)));
                }
                _ => {}
            }
        }
        self.schedule(now, &mut out);
        out
    }

    /// Whether no service process is left (after `stop_all`, shutdown may go on).
    pub fn all_stopped(&self) -> bool {
        !self.units.iter().any(|u| {
            matches!(
                u.state,
                State::Spawning | State::Running { .. } | State::Stopping { .. }
            )
        })
    }

    /// The earliest time `on_tick` has work to do, if any.
    pub fn next_deadline(&self, now: Duration) -> Option<Duration> {
        self.units
            .iter()
            .filter_map(|u| match u.state {
                State::Backoff { until } if !self.stopping => Some(until),
                State::Running { ready: false, .. } if !self.stopping => {
                    Some(now + self.timing.probe_interval)
                }
                State::Stopping { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Service `i` ended (exit or failed spawn) outside shutdown: restart or give up.
    /// `why` is the terminal reason (None: already reported).
    fn ended(
        &mut self,
        i: usize,
        failed: bool,
        since: Duration,
        now: Duration,
        why: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let t = self.timing;
        let spec = &self.specs[i];
        let unit = &mut self.units[i];
        if now.saturating_sub(since) >= t.reset_after {
            unit.delay = t.initial_backoff;
            unit.exits.clear();
            unit.crash_loop = false;
        }
        unit.exits.push(now);
        unit.exits
            .retain(|&at| now.saturating_sub(at) < t.crash_loop_window);
        if unit.exits.len() >= t.crash_loop_exits && !unit.crash_loop {
            unit.crash_loop = true;
            let reason = format!(
                "crash loop: {} exits within {} s",
                unit.exits.len(),
                t.crash_loop_window.as_secs()
            );
            out.push(Action::Emit(event::failed(&spec.name, &reason)));
        }
        let restart = match spec.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if restart {
            unit.state = State::Backoff {
                until: now + unit.delay,
            };
            out.push(Action::Emit(event::restart(&spec.name, unit.delay)));
            unit.delay = (unit.delay * 2).min(t.max_backoff);
        } else if failed {
            unit.state = State::Failed;
            if let Some(why) = why {
                let reason = format!("{why}, restart policy {:?}", spec.restart);
                out.push(Action::Emit(event::failed(&spec.name, &reason)));
            }
        } else {
            unit.state = State::Exited;
        }
    }

    fn stop_timeout(
        &mut self,
        i: usize,
        pid: Pid,
        killed: bool,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let name = &self.specs[i].name;
        if killed {
            out.push(Action::Emit(event::failed(
                name,
                "still running after SIGKILL, given up",
            )));
            self.units[i].state = State::Stopped;
            return;
        }
        let reason = format!(
            "did not stop within {} s, sending SIGKILL",
            self.specs[i].stop_timeout.as_secs_f64()
        );
        out.push(Action::Emit(event::failed(name, &reason)));
        out.push(Action::Signal {
            pid,
            signal: libc::SIGKILL,
        });
        let deadline = now + self.timing.kill_grace;
        self.units[i].state = State::Stopping {
            pid,
            deadline,
            killed: true,
        };
    }

    /// Starts what may start (or, when stopping, signals what may stop).
    fn schedule(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.stopping {
            self.schedule_stop(now, out);
            return;
        }
        if !self.started {
            return;
        }
        for k in 0..self.order.len() {
            let i = self.order[k];
            if !matches!(self.units[i].state, State::Waiting) {
                continue;
            }
            let failed = self.deps[i]
                .iter()
                .find(|&&d| matches!(self.units[d].state, State::Failed));
            if let Some(&d) = failed {
                self.units[i].state = State::Failed;
                let reason = format!("dependency {} failed", self.specs[d].name);
                out.push(Action::Emit(event::failed(&self.specs[i].name, &reason)));
                continue;
            }
            let satisfied = self.deps[i].iter().all(|&d| {
                matches!(
                    self.units[d].state,
                    State::Running { ready: true, .. } | State::Exited
                )
            });
            if satisfied {
                self.units[i].state = State::Spawning;
                out.push(Action::Spawn(i));
            }
        }
    }

    fn schedule_stop(&mut self, now: Duration, out: &mut Vec<Action>) {
        for k in (0..self.order.len()).rev() {
            let i = self.order[k];
            let State::Running { pid, .. } = self.units[i].state else {
                continue;
            };
            let dependent_alive = (0..self.units.len()).any(|j| {
                self.deps[j].contains(&i)
                    && matches!(
                        self.units[j].state,
                        State::Spawning | State::Running { .. } | State::Stopping { .. }
                    )
            });
            if dependent_alive {
                continue;
            }
            let spec = &self.specs[i];
            let deadline = now + spec.stop_timeout;
            self.units[i].state = State::Stopping {
                pid,
                deadline,
                killed: false,
            };
            out.push(Action::Signal {
                pid,
                signal: spec.stop_signal,
            });
        }
    }
}
