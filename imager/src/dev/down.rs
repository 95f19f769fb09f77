//! `kiln dev down`: ACPI power-off to every node still running (QMP `system_powerdown`),
//! SIGKILL for what is left after the timeout, then the hub, then the files. Works on a
//! half-started cluster (no state.json yet) and on one whose QEMUs already died.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::host::{hub_alive, qemu_alive, qmp_powerdown, wait_until};
use super::hub::HubFile;
use super::state::{Layout, State, CLUSTER_DIR, STATE_FILE};
use crate::qemu::process::signal;

const KILL_WAIT: Duration = Duration::from_secs(10);

pub fn down(layout: &Layout, keep_disks: bool, timeout: Duration) -> Result<()> {
    if !layout.dir.is_dir() {
        bail!(
            "no dev cluster {} ({} does not exist)",
            layout.name,
            layout.dir.display()
        );
    }
    let state = match State::load(layout) {
        Ok(s) => Some(s),
        Err(_) if !layout.state_file().exists() => None,
        Err(e) => return Err(e),
    };
    if let Some(state) = &state {
        stop_nodes(layout, state, timeout);
    }
    stop_hub(layout, state.as_ref().and_then(|s| s.hub_pid));
    if keep_disks {
        if let Some(mut state) = state {
            for n in &mut state.nodes {
                n.pid = None;
            }
            state.hub_pid = None;
            state.save(layout)?;
        }
        prune(layout)?;
        println!(
            "dev cluster {} stopped; disks kept in {}",
            layout.name,
            layout.dir.display()
        );
    } else {
        fs::remove_dir_all(&layout.dir)
            .with_context(|| format!("remove {}", layout.dir.display()))?;
        println!("dev cluster {} stopped and removed", layout.name);
    }
    Ok(())
}

/// Graceful first, for every node at once; then SIGKILL for the rest.
fn stop_nodes(layout: &Layout, state: &State, timeout: Duration) {
    let running: Vec<(String, u32, std::path::PathBuf)> = state
        .nodes
        .iter()
        .filter_map(|n| {
            let paths = layout.node(&n.name);
            let pid = n.pid.filter(|pid| qemu_alive(*pid, &paths.pidfile))?;
            Some((n.name.clone(), pid, paths.pidfile))
        })
        .collect();
    for (name, _, _) in &running {
        if let Err(e) = qmp_powerdown(&layout.node(name).qmp) {
            eprintln!("kiln: dev: {name}: {e:#}; it will be killed");
        }
    }
    let all_gone = || {
        running
            .iter()
            .all(|(_, pid, pidfile)| !qemu_alive(*pid, pidfile))
    };
    if !running.is_empty() {
        eprintln!("kiln: dev: powering off {} node(s)…", running.len());
    }
    if wait_until(timeout, all_gone) {
        return;
    }
    for (name, pid, pidfile) in &running {
        if qemu_alive(*pid, pidfile) {
            eprintln!(
                "kiln: dev: {name} did not power off within {}s; killing it",
                timeout.as_secs()
            );
            signal(*pid, libc::SIGKILL);
        }
    }
    wait_until(KILL_WAIT, all_gone);
}

/// SIGTERM to the hub (its pid from state.json, else hub.json), SIGKILL if it lingers.
fn stop_hub(layout: &Layout, pid: Option<u32>) {
    let from_file = || -> Option<u32> {
        let text = fs::read_to_string(layout.hub_file()).ok()?;
        serde_json::from_str::<HubFile>(&text).ok().map(|f| f.pid)
    };
    let Some(pid) = pid.or_else(from_file) else {
        return;
    };
    if !hub_alive(pid, &layout.name) {
        return;
    }
    signal(pid, libc::SIGTERM);
    if !wait_until(KILL_WAIT, || !hub_alive(pid, &layout.name)) {
        signal(pid, libc::SIGKILL);
        wait_until(KILL_WAIT, || !hub_alive(pid, &layout.name));
    }
}

/// Removes everything but state.json, the cluster folder and each node's disk.
fn prune(layout: &Layout) -> Result<()> {
    for entry in read_dir(&layout.dir)? {
        let path = entry.path();
        let name = entry.file_name();
        if name == STATE_FILE || name == CLUSTER_DIR {
            continue;
        }
        if path.is_dir() {
            for inner in read_dir(&path)? {
                if inner.file_name() != "disk.qcow2" {
                    remove(&inner.path())?;
                }
            }
        } else {
            remove(&path)?;
        }
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    fs::read_dir(dir)
        .and_then(|it| it.collect::<std::io::Result<Vec<_>>>())
        .with_context(|| format!("read {}", dir.display()))
}

fn remove(path: &Path) -> Result<()> {
    let removed = match path.is_dir() {
        true => fs::remove_dir_all(path),
        false => fs::remove_file(path),
    };
    removed.with_context(|| format!("remove {}", path.display()))
}
