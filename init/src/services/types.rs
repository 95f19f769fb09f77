//! The supervisor's vocabulary: the actions it asks for, its timing knobs and the phases
//! a service goes through. Plain data shared by machine.rs, exec.rs and the tests.

use std::time::Duration;

use crate::events::Event;

pub type Pid = i32;

/// Something the executor must do; results come back through `on_spawned`/`on_probe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn service `i` (index into `specs()`), then call `on_spawned`.
    Spawn(usize),
    Signal {
        pid: Pid,
        signal: i32,
    },
    /// Check service `i`'s readiness, then call `on_probe`.
    Probe(usize),
    Emit(Event),
}

/// Restart, probe and stop timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// First restart delay; doubles after each restart up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A service that stayed up this long starts over at `initial_backoff`.
    pub reset_after: Duration,
    /// This many exits within `crash_loop_window` is reported as a crash loop.
    pub crash_loop_exits: usize,
    pub crash_loop_window: Duration,
    pub probe_interval: Duration,
    /// How long to wait after SIGKILL before giving a process up.
    pub kill_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
            crash_loop_exits: 5,
            crash_loop_window: Duration::from_secs(120),
            probe_interval: Duration::from_millis(100),
            kill_grace: Duration::from_secs(2),
        }
    }
}

/// A service's state as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started: waiting for `start` or for its dependencies.
    Waiting,
    Spawning,
    /// Running, readiness not confirmed yet.
    Starting,
    Ready,
    /// Exited; restarts when the delay is over.
    Backoff,
    /// Stop signal sent.
    Stopping,
    /// Exited successfully and is not restarted (satisfies dependents).
    Exited,
    /// Will not run again (until a reboot).
    Failed,
    /// Stopped for shutdown.
    Stopped,
}
