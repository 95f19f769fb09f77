//! The scenario harness for supervisor tests: an executor on one shared `Fake`, driven
//! by `Op`s, each answered with the exact journal of calls and events it caused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Duration;

use super::event::Exit;
use super::exec::Executor;
use super::fakes::{Call, Fake};
use super::machine::{Supervisor, Timing};
use super::spec::{Readiness, RestartPolicy, ServiceSpec};
use crate::events::{Event, Value};

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Start,
    /// Move the clock by this many milliseconds, then tick.
    Advance(u64),
    /// The service's readiness target comes up (no tick).
    Up(&'static str),
    Exit(&'static str, Exit),
    Stop,
    FailSpawn(&'static str),
}

use Op::*;

pub fn svc(name: &str, after: &[&str], probed: bool, restart: RestartPolicy) -> ServiceSpec {
    let mut s = ServiceSpec::new(name, &[&format!("/bin/{name}")]);
    s.after = after.iter().map(|a| a.to_string()).collect();
    if probed {
        s.ready = Readiness::File(format!("/run/{name}.ready").into());
    }
    s.restart = restart;
    s
}

fn signame(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "TERM".into(),
        libc::SIGKILL => "KILL".into(),
        libc::SIGINT => "INT".into(),
        n => n.to_string(),
    }
}

/// `starting a`, `ready b 0.3s`, `exited a code=3`, `failed a: reason`, ...
fn fmt_event(e: &Event) -> String {
    let mut s = e.name.trim_start_matches("service_").to_string();
    for (key, value) in &e.fields {
        let _ = match (*key, value) {
            ("pid", _) => Ok(()),
            ("service", Value::Str(v)) => write!(s, " {v}"),
            ("reason", Value::Str(v)) => write!(s, ": {v}"),
            (_, Value::Seconds(d)) => write!(s, " {}s", d.as_secs_f64()),
            (k, Value::Uint(n)) => write!(s, " {k}={n}"),
            (k, Value::Str(v)) => write!(s, " {k}={v}"),
            (k, Value::Json(v)) => write!(s, " {k}={v}"),
        };
    }
    s
}

pub struct World {
    pub exec: Executor<Fake, Fake, Fake>,
    pub fake: Fake,
}

impl World {
    pub fn new(specs: Vec<ServiceSpec>) -> Self {
        let fake = Fake::new();
        let machine = Supervisor::new(specs, Timing::default()).unwrap();
        let exec = Executor::new(machine, fake.clone(), fake.clone(), fake.clone());
        Self { exec, fake }
    }

    fn name_of(&self, pid: i32) -> String {
        let host = self.fake.0.borrow();
        host.calls
            .iter()
            .find_map(|c| match c {
                Call::Spawn(name, p) if *p == pid => Some(name.clone()),
                _ => None,
            })
            .unwrap()
    }

    /// Applies `op`; returns the calls and events it caused, in order.
    pub fn step(&mut self, op: Op) -> Vec<String> {
        let mut events = Vec::new();
        let fake = self.fake.clone();
        let mut emit = |e: &Event| {
            // Calls made so far belong before this event.
            events.push((fake.0.borrow().calls.len(), fmt_event(e)));
        };
        let before = self.fake.0.borrow().calls.len();
        match op {
            Start => self.exec.start(&mut emit),
            Advance(ms) => {
                self.fake.advance(Duration::from_millis(ms));
                self.exec.on_tick(&mut emit);
            }
            Up(name) => {
                let target = format!("/run/{name}.ready");
                self.fake.0.borrow_mut().up.insert(target);
            }
            Exit(name, exit) => {
                let pid = self.fake.pid(name);
                assert!(self.exec.on_exit(pid, exit, &mut emit), "{name} not ours");
            }
            Stop => self.exec.stop_all(&mut emit),
            FailSpawn(name) => {
                self.fake.0.borrow_mut().fail_spawn.insert(name.into());
            }
        }
        let calls: Vec<Call> = self.fake.0.borrow().calls[before..].to_vec();
        let mut journal = Vec::new();
        let mut next_call = 0;
        let mut flush_calls = |upto: usize, journal: &mut Vec<String>| {
            while before + next_call < upto {
                journal.push(match &calls[next_call] {
                    Call::Spawn(name, _) => format!("spawn {name}"),
                    Call::Kill(pid, sig) => {
                        format!("kill {} {}", self.name_of(*pid), signame(*sig))
                    }
                });
                next_call += 1;
            }
        };
        for (upto, text) in events {
            flush_calls(upto, &mut journal);
            journal.push(text);
        }
        flush_calls(before + calls.len(), &mut journal);
        journal
    }
}

/// Runs `steps` and checks each step's journal; returns the world for final checks.
pub fn run(title: &str, specs: Vec<ServiceSpec>, steps: &[(Op, &[&str])]) -> World {
    let mut world = World::new(specs);
    for (n, (op, want)) in steps.iter().enumerate() {
        let got = world.step(*op);
        assert_eq!(got, *want, "{title}: step {n} {op:?}");
    }
    world
}

pub const A_UP: [&str; 3] = ["spawn a", "starting a", "ready a 0s"];
