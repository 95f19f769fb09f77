//! Backend health: a pure state machine per backend with rise/fall thresholds, and the
//! scheduler of per-backend probe timers.
//!
//! Owns each backend's state, its consecutive success/failure counters and the instant
//! its next probe is due. It never touches sockets (probe.rs runs the probes) nor IPVS
//! (reconcile.rs turns states into weights). Time comes from a `Clock`, so tests drive it.
//!
//! Timers are independent: every backend has its own next-due instant, and a probe in
//! flight only holds back the next probe of that same backend. A result that never
//! arrives (the runner enforces deadlines, so this means a lost thread) counts as a
//! failure once `timeout + interval` has passed, and its late result is ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::probe::{ProbeError, ProbeResult};

/// Monotonic time since boot (CLOCK_BOOTTIME), the same clock the DHCP client uses.
pub use crate::net::{Clock, SystemClock};

/// Probe timing and thresholds.
///
/// Defaults (interval 1 s, timeout 1 s, fall 2, rise 2): a backend that refuses
/// connections is drained within 1 s of dying and removed within 2 s; one that stops
/// answering (host gone, SYNs dropped) is drained within 2 s and removed within 3 s.
/// Fall 2 keeps a single lost probe from removing a server, since the first failure
/// already drains it (weight 0: no new connections, existing ones kept). Rise 2 keeps a
/// restarting API server, which may answer once before it is ready, out of rotation
/// until it has answered twice in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        }
    }
}

/// An invalid `HealthConfig`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    #[error("health check {0} must be greater than zero")]
    Zero(&'static str),
}

impl HealthConfig {
    pub fn validate(self) -> Result<Self, HealthError> {
        let zero = [
            ("interval", self.interval.is_zero()),
            ("timeout", self.timeout.is_zero()),
            ("rise", self.rise == 0),
            ("fall", self.fall == 0),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((name, _)) => Err(HealthError::Zero(name)),
            None => Ok(self),
        }
    }
}

/// A backend's health as the load balancer acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// No probe result yet (the reconciler gives it its weight).
    Unknown,
    Up,
    /// Failing, fewer than `fall` times in a row, or recovering: weight 0.
    Draining,
    /// `fall` failures in a row and not yet `rise` successes: removed.
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Draining => "draining",
            State::Down => "down",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a backend changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The first probe of a new backend succeeded.
    FirstSuccess,
    /// `successes` probes in a row succeeded (the rise threshold).
    Rose { successes: u32 },
    /// A probe failed, `failures` in a row so far (below the fall threshold).
    Failed { failures: u32, error: ProbeError },
    /// `failures` probes in a row failed (the fall threshold).
    Fell { failures: u32, error: ProbeError },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::FirstSuccess => f.write_str("first probe succeeded"),
            Reason::Rose { successes } => write!(f, "{successes} probes in a row succeeded"),
            Reason::Failed { failures, error } => {
                write!(f, "probe failed ({failures} in a row): {error}")
            }
            Reason::Fell { failures, error } => {
                write!(f, "{failures} probes in a row failed: {error}")
            }
        }
    }
}

/// One state change, for the caller to turn into an event and a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub backend: SocketAddr,
    pub from: State,
    pub to: State,
    pub reason: Reason,
    /// Clock time of the change.
    pub at: Duration,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Transition {
            backend, from, to, ..
        } = self;
        write!(f, "backend {backend} {from} -> {to}: {}", self.reason)
    }
}

/// The state machine of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    state: State,
    successes: u32,
    failures: u32,
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            state: State::Unknown,
            successes: 0,
            failures: 0,
        }
    }
}

impl Machine {
    pub fn state(&self) -> State {
        self.state
    }

    /// Feeds one probe result; returns the new state and why when it changed.
    ///
    /// Unknown becomes Up on its first success (a fresh node gets a working VIP at
    /// once); any other way back to Up takes `rise` successes in a row. A failure
    /// drains an Unknown or Up backend, `fall` failures in a row take it Down.
    pub fn observe(
        &mut self,
        result: &ProbeResult,
        rise: u32,
        fall: u32,
    ) -> Option<(State, Reason)> {
        let next = match result {
            Ok(()) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                let successes = self.successes;
                match self.state {
                    State::Unknown => Some((State::Up, Reason::FirstSuccess)),
                    State::Draining | State::Down if successes >= rise => {
                        Some((State::Up, Reason::Rose { successes }))
                    }
                    State::Up | State::Draining | State::Down => None,
                }
            }
            Err(error) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                let failures = self.failures;
                let error = error.clone();
                match self.state {
                    State::Down => None,
                    _ if failures >= fall => Some((State::Down, Reason::Fell { failures, error })),
                    State::Unknown | State::Up => {
                        Some((State::Draining, Reason::Failed { failures, error }))
                    }
                    State::Draining => None,
                }
            }
        };
        if let Some((state, _)) = &next {
            self.state = *state;
        }
        next
    }
}

/// Permission to run one probe; hand it back with the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub backend: SocketAddr,
    seq: u64,
}

/// What `HealthTable::poll` asks of the caller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// Probes to start now, each with `HealthConfig::timeout` as its deadline.
    pub start: Vec<Ticket>,
    /// Changes caused by probes that never reported.
    pub transitions: Vec<Transition>,
}

#[derive(Debug)]
struct Slot {
    machine: Machine,
    next_due: Duration,
    /// Sequence number and start time of the probe in flight.
    in_flight: Option<(u64, Duration)>,
}

/// All backends' machines and timers.
pub struct HealthTable {
    config: HealthConfig,
    clock: Arc<dyn Clock>,
    slots: BTreeMap<SocketAddr, Slot>,
    seq: u64,
}

impl HealthTable {
    pub fn new(config: HealthConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            slots: BTreeMap::new(),
            seq: 0,
        }
    }

    pub fn config(&self) -> HealthConfig {
        self.config
    }

    /// New timing applies from each backend's next probe; states are kept.
    pub fn set_config(&mut self, config: HealthConfig) {
        self.config = config;
    }

    /// Follows the configured backends: new ones start Unknown with a probe due now,
    /// removed ones are forgotten (their in-flight results will be ignored).
    pub fn set_backends(&mut self, backends: impl IntoIterator<Item = SocketAddr>) {
        let now = self.clock.now();
        let mut slots = BTreeMap::new();
        for backend in backends {
            let slot = self.slots.remove(&backend).unwrap_or(Slot {
                machine: Machine::default(),
                next_due: now,
                in_flight: None,
            });
            slots.insert(backend, slot);
        }
        self.slots = slots;
    }

    /// Starts every probe that is due and expires probes that never reported.
    pub fn poll(&mut self) -> Poll {
        let now = self.clock.now();
        let lost_after = self.lost_after();
        let mut poll = Poll::default();
        let backends: Vec<SocketAddr> = self.slots.keys().copied().collect();
        for backend in backends {
            let Some(slot) = self.slots.get_mut(&backend) else {
                continue;
            };
            if let Some((seq, started)) = slot.in_flight {
                if now < started + lost_after {
                    continue;
                }
                let ticket = Ticket { backend, seq };
                let lost = Err(ProbeError::Lost(lost_after));
                poll.transitions.extend(self.record(ticket, &lost));
            }
            let Some(slot) = self.slots.get_mut(&backend) else {
                continue;
            };
            if now >= slot.next_due {
                self.seq += 1;
                slot.in_flight = Some((self.seq, now));
                poll.start.push(Ticket {
                    backend,
                    seq: self.seq,
                });
            }
        }
        poll
    }

    /// Feeds a probe result. Results of stale tickets (removed backend, expired probe)
    /// are ignored. The backend's next probe is due one interval after this one started,
    /// or now if this one took longer.
    pub fn record(&mut self, ticket: Ticket, result: &ProbeResult) -> Option<Transition> {
        let now = self.clock.now();
        let slot = self.slots.get_mut(&ticket.backend)?;
        let (seq, started) = slot.in_flight?;
        if seq != ticket.seq {
            return None;
        }
        slot.in_flight = None;
        slot.next_due = (started + self.config.interval).max(now);
        let from = slot.machine.state();
        let (to, reason) = slot
            .machine
            .observe(result, self.config.rise, self.config.fall)?;
        Some(Transition {
            backend: ticket.backend,
            from,
            to,
            reason,
            at: now,
        })
    }

    /// Clock time of the next thing `poll` will do (a probe due or a probe to expire).
    pub fn next_wakeup(&self) -> Option<Duration> {
        let lost_after = self.lost_after();
        let wakeup = |slot: &Slot| match slot.in_flight {
            Some((_, started)) => started + lost_after,
            None => slot.next_due,
        };
        self.slots.values().map(wakeup).min()
    }

    /// How long the caller may sleep before calling `poll` again.
    pub fn wait_time(&self) -> Option<Duration> {
        let now = self.clock.now();
        self.next_wakeup().map(|at| at.saturating_sub(now))
    }

    /// Unknown for backends the table does not know.
    pub fn state(&self, backend: &SocketAddr) -> State {
        self.slots
            .get(backend)
            .map_or(State::Unknown, |slot| slot.machine.state())
    }

    pub fn states(&self) -> BTreeMap<SocketAddr, State> {
        let state = |(addr, slot): (&SocketAddr, &Slot)| (*addr, slot.machine.state());
        self.slots.iter().map(state).collect()
    }

    fn lost_after(&self) -> Duration {
        self.config.timeout + self.config.interval
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
