//! Hand-written fakes for the executor's host traits: one shared `Fake` is the spawner
//! (records spawns and kills, fails spawns of chosen services), the prober (a readiness
//! target is up when the test says so) and the clock (moved by the test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use super::exec::{Clock, Prober, SpawnError, Spawner};
use super::machine::Pid;
use super::spec::{Readiness, ServiceSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Spawn(String, Pid),
    Kill(Pid, i32),
}

#[derive(Debug, Default)]
pub struct Host {
    pub now: Duration,
    pub next_pid: Pid,
    pub calls: Vec<Call>,
    /// Services whose spawn fails (ENOENT).
    pub fail_spawn: HashSet<String>,
    /// Readiness targets that are up, by `target()`.
    pub up: HashSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Fake(pub Rc<RefCell<Host>>);

impl Fake {
    pub fn new() -> Self {
        let fake = Self::default();
        fake.0.borrow_mut().next_pid = 100;
        fake
    }

    pub fn advance(&self, by: Duration) {
        self.0.borrow_mut().now += by;
    }

    /// The pid of the latest spawn of `service`.
    pub fn pid(&self, service: &str) -> Pid {
        let host = self.0.borrow();
        host.calls
            .iter()
            .rev()
            .find_map(|c| match c {
                Call::Spawn(name, pid) if name == service => Some(*pid),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{service} was never spawned"))
    }
}

/// The name the fake prober knows a readiness target by.
pub fn target(ready: &Readiness) -> String {
    match ready {
        Readiness::None => String::new(),
        Readiness::UnixSocket(p) | Readiness::File(p) => p.display().to_string(),
        Readiness::TcpPort(port) => format!("tcp:{port}"),
    }
}

impl Spawner for Fake {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Pid, SpawnError> {
        let mut host = self.0.borrow_mut();
        if host.fail_spawn.contains(&spec.name) {
            let program = spec.command[0].clone().into();
            return Err(SpawnError::Spawn(program, io::ErrorKind::NotFound.into()));
        }
        let pid = host.next_pid;
        host.next_pid += 1;
        host.calls.push(Call::Spawn(spec.name.clone(), pid));
        Ok(pid)
    }

    fn kill(&mut self, pid: Pid, signal: i32) -> io::Result<()> {
        self.0.borrow_mut().calls.push(Call::Kill(pid, signal));
        Ok(())
    }
}

impl Prober for Fake {
    fn probe(&mut self, ready: &Readiness) -> bool {
        self.0.borrow().up.contains(&target(ready))
    }
}

impl Clock for Fake {
    fn now(&self) -> Duration {
        self.0.borrow().now
    }
}
