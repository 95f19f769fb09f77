//! `kiln dev status` and the node table `up` prints: state.json plus what each node's
//! QEMU and events say now. A node whose QEMU is gone is `crashed` (or `stopped` after
//! its own `shutdown` event); `status` still exits 0 then: it reports, it does not judge.

use std::fmt::Write as _;

use anyhow::{bail, Result};

use super::events::{phase, Phase};
use super::host::qemu_alive;
use super::state::{Layout, NodeState, State};

/// One table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub node: String,
    pub role: String,
    pub address: String,
    pub ports: String,
    pub state: String,
}

/// The state word of a node from its QEMU's liveness and its events.
pub fn classify(alive: bool, phase: &Phase) -> String {
    match (alive, phase) {
        (true, p) => p.describe(),
        (false, Phase::Shutdown(_)) => "stopped".into(),
        (false, Phase::Fatal(why)) => format!("crashed (after fatal: {why})"),
        (false, _) => "crashed".into(),
    }
}

/// `6443→127.0.0.1:40000 2379→127.0.0.1:40001`, or `-`.
pub fn ports(node: &NodeState) -> String {
    if node.forwards.is_empty() {
        return "-".into();
    }
    let parts: Vec<String> = node
        .forwards
        .iter()
        .map(|(host, guest)| format!("{guest}→127.0.0.1:{host}"))
        .collect();
    parts.join(" ")
}

/// Rows for every node of `state`, looking at the processes and event files now.
pub fn rows(layout: &Layout, state: &State) -> Vec<Row> {
    state
        .nodes
        .iter()
        .map(|n| {
            let paths = layout.node(&n.name);
            let alive = n.pid.is_some_and(|pid| qemu_alive(pid, &paths.pidfile));
            let text = std::fs::read_to_string(&paths.events).unwrap_or_default();
            Row {
                node: n.name.clone(),
                role: n.role.clone(),
                address: n.address.to_string(),
                ports: ports(n),
                state: classify(alive, &phase(&text)),
            }
        })
        .collect()
}

/// Left-aligned columns under a header.
pub fn render(rows: &[Row]) -> String {
    let header = ["NODE", "ROLE", "ADDRESS", "PORTS", "STATE"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| [&*r.node, &*r.role, &*r.address, &*r.ports, &*r.state])
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let pad = w - c.chars().count() + 2;
                let _ = write!(line, "{c}{}", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `kiln dev status`.
pub fn status(layout: &Layout) -> Result<()> {
    if !layout.state_file().is_file() {
        bail!(
            "no dev cluster {} (start one with `kiln dev up --name {}`)",
            layout.name,
            layout.name
        );
    }
    let state = State::load(layout)?;
    println!(
        "dev cluster {} ({}, {}):",
        state.name,
        layout.dir.display(),
        state.accel
    );
    print!("{}", render(&rows(layout, &state)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let ready = Phase::Ready { boot_seconds: None };
        let cases = [
            (true, Phase::Booting, "booting"),
            (true, Phase::Stage2, "stage2"),
            (true, ready.clone(), "ready"),
            (true, Phase::Fatal("x".into()), "fatal: x"),
            (false, ready, "crashed"),
            (false, Phase::Booting, "crashed"),
            (false, Phase::Fatal("x".into()), "crashed (after fatal: x)"),
            (false, Phase::Shutdown("poweroff".into()), "stopped"),
        ];
        for (alive, p, want) in cases {
            assert_eq!(classify(alive, &p), want, "{alive} {p:?}");
        }
    }

    #[test]
    fn table() {
        let row = |n: &str, p: &str, s: &str| Row {
            node: n.into(),
            role: "worker".into(),
            address: "192.168.87.101".into(),
            ports: p.into(),
            state: s.into(),
        };
        let rows = [
            row("cp-1", "6443→127.0.0.1:40000", "ready"),
            row("worker-1", "-", "booting"),
        ];
        assert_eq!(
            render(&rows),
            "NODE      ROLE    ADDRESS         PORTS                 STATE\n\
             cp-1      worker  192.168.87.101  6443→127.0.0.1:40000  ready\n\
             worker-1  worker  192.168.87.101  -                     booting\n"
        );
    }

    #[test]
    fn port_list() {
        let mut n = NodeState {
            name: "cp-1".into(),
            role: "control-plane".into(),
            address: "192.168.87.11".parse().unwrap_or_else(|e| panic!("{e}")),
            macs: [String::new(), String::new()],
            forwards: vec![(40000, 6443), (40001, 2379)],
            pid: None,
        };
        assert_eq!(ports(&n), "6443→127.0.0.1:40000 2379→127.0.0.1:40001");
        n.forwards.clear();
        assert_eq!(ports(&n), "-");
    }
}
