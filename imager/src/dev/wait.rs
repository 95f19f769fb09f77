//! `up`'s wait for every node's `ready`: polls each node's events.jsonl and QEMU, prints
//! a line on stderr whenever a node's phase changes, and fails on `fatal`,
//! `config_error`, a QEMU that exits, or the timeout.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::events::{phase, Phase};
use super::host::qemu_alive;
use super::state::{Layout, State};

const POLL: Duration = Duration::from_millis(250);

/// Blocks until every node of `state` reported `ready`. The timeout counts from the
/// call for every node alike (they boot in parallel).
pub fn until_ready(layout: &Layout, state: &State, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut seen: Vec<Phase> = vec![Phase::Booting; state.nodes.len()];
    loop {
        for (n, last) in state.nodes.iter().zip(seen.iter_mut()) {
            let paths = layout.node(&n.name);
            let text = std::fs::read_to_string(&paths.events).unwrap_or_default();
            let now = phase(&text);
            if now != *last {
                eprintln!(
                    "  {:>6.1}s  {}: {}",
                    start.elapsed().as_secs_f64(),
                    n.name,
                    now.describe()
                );
                *last = now.clone();
            }
            if now.failed() {
                bail!(
                    "{} failed: {} (console: {})",
                    n.name,
                    now.describe(),
                    paths.console_log.display()
                );
            }
            let alive = n.pid.is_some_and(|pid| qemu_alive(pid, &paths.pidfile));
            if !alive {
                let why = std::fs::read_to_string(&paths.qemu_log).unwrap_or_default();
                let why = why
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output");
                bail!(
                    "{}: QEMU exited ({why}; see {})",
                    n.name,
                    paths.qemu_log.display()
                );
            }
        }
        if seen.iter().all(|p| matches!(p, Phase::Ready { .. })) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            let waiting: Vec<String> = state
                .nodes
                .iter()
                .zip(&seen)
                .filter(|(_, p)| !matches!(p, Phase::Ready { .. }))
                .map(|(n, p)| format!("{} ({})", n.name, p.describe()))
                .collect();
            bail!(
                "not ready after {}s: {}",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        std::thread::sleep(POLL);
    }
}
