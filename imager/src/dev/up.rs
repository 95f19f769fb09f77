//! `kiln dev up`: checks, then claims the state folder (mkdir), generates the cluster with
//! `kiln cluster gen` (static addresses on eth0 = the hub, DHCP on eth1 = user
//! networking), starts the hub and one detached QEMU per node, waits for `ready` and
//! prints the table. state.json is rewritten after every process started, so a failure
//! at any point leaves a state `kiln dev down` can clean up.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::host::{self, check_image, spawn_detached};
use super::launch::{self, NodeLaunch, CONTROL_PLANE_PORTS, MAX_CONTROL_PLANES, MAX_WORKERS};
use super::state::{Layout, NodeState, State};
use super::{hub, kube, status, wait};
use crate::cluster::{self, topology::role_name, GenOptions, Role};
use crate::qemu::{Accel, Arch};

/// `kiln dev up`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpOptions {
    pub name: String,
    pub control_planes: u32,
    pub workers: u32,
    pub image: PathBuf,
    pub memory_mib: u32,
    pub cpus: u32,
    pub timeout_s: Option<u64>,
}

const HUB_START: Duration = Duration::from_secs(10);

/// Refuses impossible counts and sizes before anything is touched.
pub fn check(opts: &UpOptions) -> Result<()> {
    if opts.control_planes == 0 || opts.control_planes > MAX_CONTROL_PLANES {
        bail!(
            "--control-planes must be 1 to {MAX_CONTROL_PLANES}, not {}",
            opts.control_planes
        );
    }
    if opts.workers > MAX_WORKERS {
        bail!(
            "--workers must be at most {MAX_WORKERS}, not {}",
            opts.workers
        );
    }
    if opts.memory_mib < 256 {
        bail!(
            "--memory {} MiB is too small (at least 256)",
            opts.memory_mib
        );
    }
    if opts.cpus == 0 || opts.cpus > 64 {
        bail!("--cpus must be 1 to 64, not {}", opts.cpus);
    }
    Ok(())
}

/// `kiln cluster gen`'s options for a dev cluster.
pub fn gen_options(opts: &UpOptions) -> GenOptions {
    let addrs = |cp: bool, n: u32| {
        (1..=n)
            .map(|i| launch::address(cp, i).to_string())
            .collect()
    };
    GenOptions {
        name: opts.name.clone(),
        control_planes: addrs(true, opts.control_planes),
        workers: addrs(false, opts.workers),
        prefix: launch::PREFIX.into(),
        interface: "eth0".into(),
        dhcp_interfaces: vec![launch::USER_INTERFACE.into()],
        ..GenOptions::default()
    }
}

pub fn up(opts: &UpOptions) -> Result<()> {
    check(opts)?;
    let layout = Layout::for_name(&opts.name)?;
    let image = check_image(&opts.image)?;
    let arch = Arch::host();
    let qemu = arch.find_qemu().map_err(anyhow::Error::msg)?;
    let firmware = arch.firmware().map_err(anyhow::Error::msg)?;
    refuse_existing(&layout)?;
    for i in 1..=opts.control_planes.max(opts.workers) {
        layout.check_socket_paths(&format!("worker-{i}"))?;
    }
    if let Some(parent) = layout.dir.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    // mkdir is the claim: a second `up` with the same name fails here.
    fs::create_dir(&layout.dir).with_context(|| format!("create {}", layout.dir.display()))?;
    let started = start(
        opts,
        &layout,
        &image,
        &qemu,
        &firmware.code,
        &firmware.vars,
        arch,
    );
    started.with_context(|| {
        format!(
            "dev cluster {} did not come up; logs are in {}; `kiln dev down --name {}` stops it and removes them",
            opts.name,
            layout.dir.display(),
            opts.name
        )
    })
}

fn refuse_existing(layout: &Layout) -> Result<()> {
    if !layout.dir.exists() {
        return Ok(());
    }
    let running = State::load(layout).is_ok_and(|s| {
        s.nodes.iter().any(|n| {
            let pidfile = layout.node(&n.name).pidfile;
            n.pid.is_some_and(|pid| host::qemu_alive(pid, &pidfile))
        })
    });
    let n = &layout.name;
    if running {
        bail!("dev cluster {n} is already running (`kiln dev status --name {n}`)");
    }
    bail!(
        "dev cluster {n} exists in {} (stopped); `kiln dev down --name {n}` removes it",
        layout.dir.display()
    )
}

#[allow(clippy::too_many_arguments)]
fn start(
    opts: &UpOptions,
    layout: &Layout,
    image: &std::path::Path,
    qemu: &std::path::Path,
    code: &std::path::Path,
    vars: &std::path::Path,
    arch: Arch,
) -> Result<()> {
    let accel = Accel::detect(arch);
    let summary = cluster::gen(&gen_options(opts), &layout.cluster_dir())?;
    let kubernetes = kube::image_has_kubernetes(image)?;
    let cps = usize::try_from(opts.control_planes).unwrap_or(0);
    let ports = launch::free_ports(cps * CONTROL_PLANE_PORTS.len())?;
    let mut ports = ports.into_iter();
    let (mut cp_i, mut w_i) = (0, 0);
    let nodes = summary
        .nodes
        .iter()
        .map(|(n, _)| {
            let cp = n.role == Role::ControlPlane;
            let i = if cp { &mut cp_i } else { &mut w_i };
            *i += 1;
            let forwards = match cp {
                true => CONTROL_PLANE_PORTS
                    .iter()
                    .filter_map(|g| Some((ports.next()?, *g)))
                    .collect(),
                false => Vec::new(),
            };
            NodeState {
                name: n.name.as_str().to_string(),
                role: role_name(n.role).to_string(),
                address: n.address,
                macs: launch::macs(cp, *i),
                forwards,
                pid: None,
            }
        })
        .collect();
    let mut state = State {
        name: opts.name.clone(),
        image: image.to_path_buf(),
        accel: format!("{accel:?}").to_lowercase(),
        hub_pid: None,
        kubernetes: kubernetes == Some(true),
        nodes,
    };
    state.save(layout)?;

    let exe = std::env::current_exe().context("find the kiln binary")?;
    let count = state.nodes.len();
    let hub_args = [
        "dev",
        "hub",
        "--name",
        &opts.name,
        "--ports",
        &count.to_string(),
    ]
    .map(String::from);
    let hub_pid = spawn_detached(&exe, &hub_args, &layout.dir.join(super::state::HUB_LOG))?;
    state.hub_pid = Some(hub_pid);
    state.save(layout)?;
    let hub = hub::wait_for(&layout.hub_file(), hub_pid, count, HUB_START)?;

    eprintln!(
        "kiln: dev: starting {count} node(s) of {} ({}, {} MiB each) from {}",
        opts.name,
        state.accel,
        opts.memory_mib,
        image.display()
    );
    for i in 0..count {
        let node = state.nodes[i].clone();
        let paths = layout.node(&node.name);
        fs::create_dir(&paths.dir).with_context(|| format!("create {}", paths.dir.display()))?;
        host::overlay(image, &paths.disk)?;
        fs::copy(vars, &paths.vars).with_context(|| format!("copy {}", vars.display()))?;
        let launch = NodeLaunch {
            arch,
            accel,
            memory_mib: opts.memory_mib,
            cpus: opts.cpus,
            firmware_code: code.to_path_buf(),
            vars: paths.vars.clone(),
            disk: paths.disk.clone(),
            seed: layout
                .cluster_dir()
                .join(cluster::NODES)
                .join(&node.name)
                .join("seed.img"),
            hub: hub.ports[i],
            macs: node.macs.clone(),
            address: node.address,
            forwards: node.forwards.clone(),
            console_sock: paths.console_sock.clone(),
            console_log: paths.console_log.clone(),
            events: paths.events.clone(),
            qmp: paths.qmp.clone(),
            pidfile: paths.pidfile.clone(),
        };
        let pid = spawn_detached(qemu, &launch::qemu_args(&launch), &paths.qemu_log)?;
        state.nodes[i].pid = Some(pid);
        state.save(layout)?;
    }

    let default = if accel == Accel::Kvm { 180 } else { 600 };
    wait::until_ready(
        layout,
        &state,
        Duration::from_secs(opts.timeout_s.unwrap_or(default)),
    )?;
    print!("{}", status::render(&status::rows(layout, &state)));
    kube::write_kubeconfig(layout, &mut state, kubernetes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> UpOptions {
        UpOptions {
            name: "dev".into(),
            control_planes: 3,
            workers: 2,
            image: "out/kiln-node.qcow2".into(),
            memory_mib: 2048,
            cpus: 2,
            timeout_s: None,
        }
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(check(&opts()).is_ok());
        type Change = fn(&mut UpOptions);
        let cases: [(Change, &str); 5] = [
            (
                |o| o.control_planes = 0,
                "--control-planes must be 1 to 9, not 0",
            ),
            (
                |o| o.control_planes = 10,
                "--control-planes must be 1 to 9, not 10",
            ),
            (|o| o.workers = 51, "--workers must be at most 50, not 51"),
            (
                |o| o.memory_mib = 100,
                "--memory 100 MiB is too small (at least 256)",
            ),
            (|o| o.cpus = 0, "--cpus must be 1 to 64, not 0"),
        ];
        for (change, want) in cases {
            let mut o = opts();
            change(&mut o);
            let Err(e) = check(&o) else {
                panic!("{want}: accepted")
            };
            assert_eq!(e.to_string(), want);
        }
    }

    /// The generated seeds put the static address on eth0 and DHCP on eth1.
    #[test]
    fn generated_cluster_networks() {
        let dir = std::env::temp_dir().join(format!("kiln-dev-up-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut o = opts();
        o.control_planes = 1;
        o.workers = 1;
        let summary = cluster::gen(&gen_options(&o), &dir).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = summary
            .nodes
            .iter()
            .map(|(n, _)| n.name.as_str().into())
            .collect();
        assert_eq!(names, ["cp-1", "worker-1"]);
        let net = fs::read_to_string(dir.join("nodes/worker-1/network-config"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains("192.168.87.101/24"), "{net}");
        assert!(net.contains("eth1:\n    dhcp4: true"), "{net}");
        let _ = fs::remove_dir_all(&dir);
    }
}
