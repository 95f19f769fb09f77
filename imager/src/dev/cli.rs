//! `kiln dev …` arguments and dispatch. Every subcommand takes `--name` (default `dev`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::state::Layout;
use super::{console, down, hub, status, up};

/// Which dev cluster (its state folder is `$XDG_STATE_HOME/kiln/dev/<name>`).
#[derive(Debug, Clone, Args)]
pub struct NameArg {
    /// Dev cluster name.
    #[arg(long, default_value = "dev")]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum DevCmd {
    /// Generate a cluster, start one QEMU per node and wait until every node is ready.
    Up {
        #[command(flatten)]
        name: NameArg,
        /// Number of control planes (run etcd; 6443 and 2379 forwarded to 127.0.0.1).
        #[arg(long, default_value_t = 3)]
        control_planes: u32,
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Base image (qcow2, as `kiln build` writes it; never written: nodes get overlays).
        #[arg(long, default_value = "out/kiln-node.qcow2")]
        image: PathBuf,
        /// Guest RAM per node in MiB.
        #[arg(long, default_value_t = 2048)]
        memory: u32,
        /// vCPUs per node.
        #[arg(long, default_value_t = 2)]
        cpus: u32,
        /// Seconds to wait for each node's `ready` (default 180 with KVM, 600 with TCG).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Nodes, addresses, forwarded ports and state (booting, ready, fatal, crashed, …).
    Status {
        #[command(flatten)]
        name: NameArg,
    },
    /// Print a node's serial console log (or its boot events).
    Logs {
        #[command(flatten)]
        name: NameArg,
        node: String,
        /// Keep printing what is appended.
        #[arg(long, short)]
        follow: bool,
        /// init's JSON-line events instead of the console.
        #[arg(long)]
        events: bool,
    },
    /// Attach to a node's serial console (Ctrl-] quits).
    Console {
        #[command(flatten)]
        name: NameArg,
        node: String,
    },
    /// Power the nodes off (ACPI), kill what is left after --timeout, remove the state.
    Down {
        #[command(flatten)]
        name: NameArg,
        /// Keep state.json, the cluster secrets and every node's disk.
        #[arg(long)]
        keep_disks: bool,
        /// Seconds to wait for a graceful power-off before killing.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// The cluster's L2 hub (started by `up`).
    #[command(hide = true)]
    Hub {
        #[command(flatten)]
        name: NameArg,
        #[arg(long)]
        ports: usize,
    },
}

/// Runs one `kiln dev` subcommand.
pub fn run(cmd: DevCmd) -> anyhow::Result<()> {
    match cmd {
        DevCmd::Up {
            name,
            control_planes,
            workers,
            image,
            memory,
            cpus,
            timeout,
        } => up::up(&up::UpOptions {
            name: name.name,
            control_planes,
            workers,
            image,
            memory_mib: memory,
            cpus,
            timeout_s: timeout,
        }),
        DevCmd::Status { name } => status::status(&Layout::for_name(&name.name)?),
        DevCmd::Logs {
            name,
            node,
            follow,
            events,
        } => console::logs(&Layout::for_name(&name.name)?, &node, follow, events),
        DevCmd::Console { name, node } => console::console(&Layout::for_name(&name.name)?, &node),
        DevCmd::Down {
            name,
            keep_disks,
            timeout,
        } => down::down(
            &Layout::for_name(&name.name)?,
            keep_disks,
            std::time::Duration::from_secs(timeout),
        ),
        DevCmd::Hub { name, ports } => hub::serve(&Layout::for_name(&name.name)?, ports),
    }
}
