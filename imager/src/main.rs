//! `kiln`: thin binary over `kiln_imager`. Parses arguments, runs, prints the error chain once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln_imager::pipeline::{self, BuildOptions};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Bakes Kiln node images from Debian packages"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a bootable disk image (raw + qcow2) from a spec (default: the built-in node).
    Build {
        /// Image spec (TOML). Without it, the built-in node spec.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Lock file (default: next to the spec as <spec>.lock; out/kiln.lock for the built-in).
        #[arg(long)]
        lock: Option<PathBuf>,
        /// Refuse to build when resolution differs from the lock file.
        #[arg(long)]
        locked: bool,
        /// Debian mirror URL (default: the spec's, else the host's apt sources).
        #[arg(long)]
        mirror: Option<String>,
        /// Use this init binary instead of the one embedded in kiln.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Download cache (default: $XDG_CACHE_HOME/kiln).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
        /// Outputs instead of the spec's `formats`: raw, qcow2, pxe (comma-separated or
        /// repeated). pxe writes vmlinuz, initrd, root.squashfs, boot.ipxe and SHA256SUMS.
        #[arg(long = "format", value_delimiter = ',', value_parser = kiln_imager::spec::Format::parse)]
        format: Vec<kiln_imager::spec::Format>,
        /// Target architecture instead of the spec's `arch`: x86_64 or aarch64.
        #[arg(long, value_parser = kiln_imager::spec::Arch::parse)]
        arch: Option<kiln_imager::spec::Arch>,
        /// Partition table instead of the spec's `disk.layout`: gpt, or mbr for boards whose
        /// boot ROM reads only MBR (FAT boot partition first; disks up to 2 TiB).
        #[arg(long, value_parser = kiln_imager::spec::Layout::parse)]
        layout: Option<kiln_imager::spec::Layout>,
    },
    /// Make a cluster's secrets and node seeds (gen), or one more node (add).
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
    /// Dev clusters: one QEMU per node, no root (up, status, logs, console, down).
    Dev {
        #[command(subcommand)]
        cmd: kiln_imager::dev::DevCmd,
    },
    /// Network boot: serve a PXE bundle and per-MAC NoCloud seeds over HTTP.
    Pxe {
        #[command(subcommand)]
        cmd: PxeCmd,
    },
}

#[derive(Subcommand)]
enum PxeCmd {
    /// Serve the files in --dir at /<file> (with byte ranges) and the seeds in --seeds at
    /// /seeds/<mac>/{meta-data,user-data,network-config,vendor-data}; runs until killed.
    Serve {
        /// The PXE bundle folder (vmlinuz, initrd, root.squashfs, boot.ipxe, …).
        #[arg(long)]
        dir: PathBuf,
        /// A folder from `kiln cluster gen`: macs.toml ("MAC" = "node") and nodes/<node>/,
        /// or folders named after MACs.
        #[arg(long)]
        seeds: Option<PathBuf>,
        /// Address and port to listen on, e.g. 0.0.0.0:8080.
        #[arg(long)]
        listen: String,
    },
}

/// `kiln pxe serve`: one line naming what is served, then an access-log line per request
/// on stderr, until the process is killed.
fn pxe(cmd: PxeCmd) -> anyhow::Result<()> {
    use kiln_imager::pxe::{self, Config, Server};
    let PxeCmd::Serve { dir, seeds, listen } = cmd;
    let mut config = Config::new(dir, pxe::parse_listen(&listen)?);
    config.seeds = seeds;
    let server = Server::bind(config)?;
    let seeds = server.seeds().map_or(String::new(), |s| {
        let n = s.mapped();
        let plural = if n == 1 { "" } else { "s" };
        let root = s.root().display();
        format!(", seeds from {root} ({n} MAC{plural} in macs.toml)")
    });
    eprintln!(
        "kiln: pxe: serving {} on http://{}/{seeds}",
        server.dir().display(),
        server.local_addr()
    );
    server.run();
    Ok(())
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Write secrets.toml, admin.conf and nodes/<name>/{user-data,meta-data,network-config,kiln.toml,seed.img}.
    Gen(Box<GenArgs>),
    /// Write one more node's seeds into a folder made by `gen` and record it in secrets.toml.
    #[command(group(clap::ArgGroup::new("role").required(true).args(["control_plane", "worker"])))]
    Add {
        /// The folder `kiln cluster gen` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// Add a control plane with this address (joins the existing members).
        #[arg(long = "control-plane")]
        control_plane: Option<String>,
        /// Add a worker with this address.
        #[arg(long)]
        worker: Option<String>,
    },
}

#[derive(clap::Args)]
struct GenArgs {
    /// Cluster name (a DNS label).
    #[arg(long)]
    name: String,
    /// Control-plane addresses (comma-separated or repeated): cp-1, cp-2, …
    #[arg(long = "control-plane", value_delimiter = ',')]
    control_plane: Vec<String>,
    /// Worker addresses (comma-separated or repeated): worker-1, …
    #[arg(long, value_delimiter = ',')]
    worker: Vec<String>,
    /// Kubernetes version for kubeadm (v1.34.2); default: the image's kubeadm.
    #[arg(long = "k8s-version")]
    k8s_version: Option<String>,
    #[arg(long, default_value = "10.244.0.0/16")]
    pod_cidr: String,
    #[arg(long, default_value = kiln_init::cluster::settings::DEFAULT_SERVICE_CIDR)]
    service_cidr: String,
    /// The workers' load-balancer VIP for the API servers.
    #[arg(long, default_value = "10.103.97.2")]
    vip: String,
    /// Prefix length of the nodes' static addresses.
    #[arg(long, default_value = "24")]
    prefix: String,
    /// Default gateway for the nodes' static interface.
    #[arg(long)]
    gateway: Option<String>,
    /// Interface that gets the static address.
    #[arg(long, default_value = "eth0")]
    interface: String,
    /// Also run DHCPv4 on this interface (repeatable).
    #[arg(long = "dhcp-interface")]
    dhcp_interface: Vec<String>,
    /// Validity of the CAs in hours (default 100 years).
    #[arg(long, default_value = "876000")]
    ca_validity_hours: String,
    /// Allow exec requests on the nodes' event port (tests, dev clusters).
    #[arg(long)]
    debug_exec: bool,
    /// Workers' API-server health check: https (verified with the cluster CA) or tcp.
    #[arg(long, default_value = "https")]
    lb_check: String,
    /// An etcd snapshot the first control plane restores into a new cluster (disaster
    /// recovery; it travels in that node's seed).
    #[arg(long = "etcd-restore")]
    etcd_restore: Option<PathBuf>,
    /// Output folder (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
}

fn cluster(cmd: ClusterCmd) -> anyhow::Result<()> {
    use kiln_imager::cluster;
    let summary = match cmd {
        ClusterCmd::Gen(args) => {
            let GenArgs {
                name,
                control_plane,
                worker,
                k8s_version,
                pod_cidr,
                service_cidr,
                vip,
                prefix,
                gateway,
                interface,
                dhcp_interface,
                ca_validity_hours,
                debug_exec,
                lb_check,
                etcd_restore,
                out,
            } = *args;
            let opts = cluster::GenOptions {
                name,
                control_planes: control_plane,
                workers: worker,
                kubernetes_version: k8s_version,
                pod_cidr,
                service_cidr,
                vip,
                prefix,
                gateway,
                interface,
                dhcp_interfaces: dhcp_interface,
                ca_validity_hours,
                debug_exec,
                lb_check,
                etcd_restore,
            };
            cluster::gen(&opts, &out)?
        }
        ClusterCmd::Add {
            dir,
            control_plane,
            worker,
        } => match (control_plane, worker) {
            (Some(a), _) => cluster::add(&dir, cluster::Role::ControlPlane, &a)?,
            (None, Some(a)) => cluster::add(&dir, cluster::Role::Worker, &a)?,
            (None, None) => anyhow::bail!("give --control-plane ADDR or --worker ADDR"),
        },
    };
    println!("cluster {} in {}:", summary.cluster, summary.dir.display());
    for (n, dir) in &summary.nodes {
        let role = cluster::topology::role_name(n.role);
        println!(
            "  {:<10} {role:<13} {:<15} {}",
            n.name.as_str(),
            n.address.to_string(),
            dir.join("seed.img").display()
        );
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Build {
            spec,
            out,
            lock,
            locked,
            mirror,
            init,
            cache,
            quiet,
            format,
            arch,
            layout,
        } => {
            let opts = BuildOptions {
                spec,
                out,
                lock,
                locked,
                mirror,
                init,
                cache,
                quiet,
                formats: (!format.is_empty()).then_some(format),
                arch,
                layout,
            };
            let r = pipeline::build(&opts)?;
            println!(
                "built {} in {:.1}s: {} packages, {} root entries, squashfs {:.1} MiB",
                r.name,
                r.seconds,
                r.packages,
                r.root_files,
                r.squashfs_bytes as f64 / 1048576.0
            );
            for (path, size, digest) in &r.outputs {
                let d = if digest.is_empty() {
                    String::new()
                } else {
                    format!(" sha256 {digest}")
                };
                println!(
                    "  {} ({:.1} MiB on disk){d}",
                    path.display(),
                    *size as f64 / 1048576.0
                );
            }
            Ok(())
        }
        Cmd::Cluster { cmd } => cluster(cmd),
        Cmd::Pxe { cmd } => pxe(cmd),
        Cmd::Dev { cmd } => kiln_imager::dev::run(cmd),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("kiln: error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
