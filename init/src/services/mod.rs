//! Supervised services (containerd first): declared as data (`ServiceSpec`), started in
//! dependency order once dependencies are ready, restarted with backoff, logged to
//! `/var/log/kiln/<svc>.log` with rotation, stopped in reverse order at shutdown.
//!
//! Plans, then effects: `machine::Supervisor` is a pure state machine; `exec::Executor`
//! carries out its actions through `Spawner`, `Prober` and `Clock` (real ones in
//! process.rs, fakes in the tests). This module never reaps: stage 2's single
//! `waitpid(-1)` loop must pass every status to `Executor::on_exit`.

use std::time::Duration;

pub mod event;
pub mod exec;
pub mod logs;
pub mod machine;
pub mod process;
pub mod spec;
pub mod types;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod logs_tests;
#[cfg(test)]
mod machine_tests;
#[cfg(test)]
mod real_tests;
#[cfg(test)]
mod stop_tests;

pub use event::Exit;
pub use exec::{Clock, Executor, Prober, SpawnError, Spawner};
pub use logs::{EventQueue, Rotation};
pub use machine::{Action, Phase, Pid, Supervisor, Timing};
pub use process::{BootClock, ProcessSpawner, SysProber};
pub use spec::{containerd, image_import, Readiness, RestartPolicy, ServiceSpec, SpecError};

/// `log` events per second per service when verbose.
pub const FORWARD_PER_SECOND: u32 = 50;
/// When verbose, PID 1 wakes at least this often to pass on forwarded `log` events.
pub const FORWARD_DRAIN: Duration = Duration::from_millis(250);

/// The executor PID 1 runs.
pub type Services = Executor<ProcessSpawner, SysProber, BootClock>;

/// Validates `specs` and builds the real executor (nothing starts until `start`).
/// `verbose` forwards service output as `log` events.
pub fn services(specs: Vec<ServiceSpec>, verbose: bool) -> Result<Services, SpecError> {
    let drain = (verbose || specs.iter().any(|s| s.events)).then_some(FORWARD_DRAIN);
    let machine = Supervisor::new(specs, Timing::default())?;
    let queue = EventQueue::default();
    let forward = verbose.then_some(FORWARD_PER_SECOND);
    let spawner = ProcessSpawner::new(queue.clone(), Rotation::default(), forward);
    Ok(Executor::new(machine, spawner, SysProber, BootClock).with_events(queue, drain))
}
