//! Stage 2, PID 1 of the real root: block signals, finish the mounts (cgroup2 and anything
//! stage 1 did not do), hostname, then `ready` and the supervise loop.
//!
//! Owns the order of those steps and the `stage2` event; `ready` follows once the services
//! (containerd) are ready, from the supervise loop.

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cmdline;
use crate::events;
use crate::firstboot;
use crate::mounts::{self, MountError, SysMounter};
use crate::net;
use crate::report::Reporter;
use crate::services;
use crate::supervise;
use crate::sys::SignalFd;

/// Hostname set when the kernel has none.
pub const DEFAULT_HOSTNAME: &str = "kiln";

/// Errors of stage 2; each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Stage2Error {
    #[error("block signals and open signalfd")]
    Signals(#[source] io::Error),
    #[error("mount filesystems")]
    Mounts(#[source] MountError),
    #[error("set hostname via {0}")]
    Hostname(PathBuf, #[source] io::Error),
    #[error("service definitions")]
    Services(#[source] crate::services::SpecError),
    #[error("node configuration")]
    Config(#[source] crate::firstboot::FirstbootError),
    #[error("cluster settings")]
    Cluster(#[source] crate::cluster::context::ContextError),
}

/// Sets the hostname (through `proc_root`/sys/kernel/hostname) to `default` when it is
/// empty or the kernel's `(none)`; returns whether it was set.
pub fn ensure_hostname(proc_root: &Path, default: &str) -> Result<bool, Stage2Error> {
    let path = proc_root.join("sys/kernel/hostname");
    let current =
        std::fs::read_to_string(&path).map_err(|e| Stage2Error::Hostname(path.clone(), e))?;
    let current = current.trim();
    if !current.is_empty() && current != "(none)" {
        return Ok(false);
    }
    std::fs::write(&path, default).map_err(|e| Stage2Error::Hostname(path, e))?;
    Ok(true)
}

/// Runs stage 2; never returns on success.
pub fn run(reporter: &mut Reporter) -> Result<Infallible, Stage2Error> {
    // Before anything else, so that no shutdown request is lost while we boot.
    let signals = SignalFd::new(&supervise::SIGNALS).map_err(Stage2Error::Signals)?;
    supervise::disable_ctrl_alt_del(reporter);
    let mut table = mounts::early_mounts();
    table.extend(mounts::writable_mounts(Path::new("/")));
    table.extend(mounts::stage2_mounts());
    let applied = mounts::apply(&mut SysMounter, &table).map_err(Stage2Error::Mounts)?;

    // Stage 1 already validated the command line; here it controls verbosity and names
    // the MBR disk, if any.
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let args = cmdline::parse(&cmdline).unwrap_or_default();
    reporter.set_debug(args.debug);
    reporter.open_port();
    reporter.info("stage 2");
    reporter.event(&events::stage2());
    for entry in &applied {
        reporter.debug(&entry.to_string());
    }

    if ensure_hostname(Path::new("/proc"), DEFAULT_HOSTNAME)? {
        reporter.info(&format!("hostname set to {DEFAULT_HOSTNAME}"));
    }
    let persistent = firstboot::mount_state(reporter, args.mbr_disk);
    // Parsed, validated, persisted and applied before any service starts; a broken config
    // is fatal here (config_error, then maintenance) and nothing of it was applied.
    let cfg = firstboot::configure(reporter, &cmdline, persistent).map_err(Stage2Error::Config)?;
    let mut cluster = None;
    let mut specs = vec![services::containerd(), services::image_import()];
    if let Some(ctx) = cluster_context(&cfg)? {
        specs.extend(crate::cluster::specs::cluster_services(
            &ctx,
            &crate::cluster::specs::init_binary(),
            Path::new("/"),
        ));
        cluster = Some(ctx);
    }
    let mut svcs = services::services(specs, reporter.is_debug()).map_err(Stage2Error::Services)?;
    svcs.start(&mut |e| reporter.event(e));
    let buttons = crate::powerbutton::watch(Path::new("/sys"), Path::new("/dev"));
    reporter.debug(&format!("watching {buttons} power button(s)"));
    // Lives as long as PID 1: it renews the DHCP leases and releases them at shutdown.
    let hostname = cfg.hostname.as_ref().map(|h| h.as_str().to_string());
    let dhcp = bring_network(reporter, &cfg.network, hostname);
    let background = crate::services::logs::EventQueue::default();
    let lb = cfg
        .kiln
        .lb
        .as_ref()
        .and_then(|lb| crate::lb::run::start(lb, cfg.kiln.role, background.clone()));
    let node = supervise::Node {
        services: Some(svcs),
        dhcp,
        lb,
        background,
        exec_enabled: cfg.kiln.debug_exec,
        cluster,
    };
    supervise::serve(reporter, Some(signals), node)
}

/// The cluster context of the config, written to /run/kiln/cluster.json for the steps.
fn cluster_context(
    cfg: &crate::config::NodeConfig,
) -> Result<Option<crate::cluster::context::Context>, Stage2Error> {
    use crate::cluster::context::{Context, CONTEXT_PATH};
    let Some(ctx) = Context::from_config(cfg).map_err(Stage2Error::Cluster)? else {
        return Ok(None);
    };
    ctx.write(Path::new(CONTEXT_PATH))
        .map_err(Stage2Error::Cluster)?;
    Ok(Some(ctx))
}

/// The default network (DHCPv4 on every wired NIC): maintenance after a stage 2 failure,
/// and stage 1 when the root or the seed come over HTTP.
pub fn default_network(reporter: &mut Reporter) -> Option<net::DhcpKeeper> {
    bring_network(reporter, &crate::config::NetworkConfig::default(), None)
}

/// Applies the configured interface names before planning (links are still down).
fn rename_links(
    reporter: &mut Reporter,
    network: &crate::config::NetworkConfig,
    nl: &mut dyn net::Netlink,
) {
    // One listing serves both matching (name, MAC) and the indexes the renames need.
    let links = nl.links().unwrap_or_default();
    let infos: Vec<crate::netmap::LinkInfo> = links
        .iter()
        .filter(|l| l.kind != net::LinkKind::Loopback)
        .map(|l| crate::netmap::LinkInfo {
            name: l.name.clone(),
            mac: l.mac,
        })
        .collect();
    for (old, new) in crate::netmap::renames(network, &infos) {
        let Some(link) = links.iter().find(|l| l.name == old) else {
            continue;
        };
        match nl.set_name(link.index, &new) {
            Ok(()) => reporter.info(&format!("network: renamed {old} to {new}")),
            Err(e) => reporter.info(&format!(
                "network: rename {old} to {new}: {}",
                crate::chain::error_chain(&e)
            )),
        }
    }
}

/// How long boot waits for addresses before `network_timeout` (DHCP goes on after it).
const NETWORK_TIMEOUT: Duration = Duration::from_secs(20);

/// The configured network, or DHCPv4 on every wired NIC by default; writes
/// /etc/resolv.conf. Failures are reported, never fatal: a node without network still
/// boots and keeps its console.
fn bring_network(
    reporter: &mut Reporter,
    network: &crate::config::NetworkConfig,
    hostname: Option<String>,
) -> Option<net::DhcpKeeper> {
    let mut nl = match net::RtNetlink::new() {
        Ok(nl) => nl,
        Err(e) => {
            reporter.info(&format!("netlink: {}", crate::chain::error_chain(&e)));
            return None;
        }
    };
    rename_links(reporter, network, &mut nl);
    let links = crate::netmap::links(Path::new("/sys"));
    let planned = crate::netmap::plan(network, &links, hostname.clone()).map(Ok);
    let plan = match planned.unwrap_or_else(|| net::default_plan(Path::new("/sys"))) {
        Ok(mut p) => {
            p.hostname = p.hostname.or(hostname);
            p
        }
        Err(e) => {
            reporter.info(&format!("network plan: {}", crate::chain::error_chain(&e)));
            return None;
        }
    };
    let clock = Arc::new(net::SystemClock);
    let mut emit = |e: &net::NetEvent| reporter.event(&events::network(e));
    let st = net::bring_up(
        &plan,
        Box::new(nl),
        &net::RawFactory,
        clock,
        &mut emit,
        NETWORK_TIMEOUT,
    );
    for f in &st.failures {
        reporter.info(&format!("network: {f}"));
    }
    let resolv = net::render_resolv_conf(&st.nameservers, &st.search);
    let tmp = Path::new("/etc/.resolv.conf.kiln");
    if let Err(e) =
        std::fs::write(tmp, resolv).and_then(|()| std::fs::rename(tmp, "/etc/resolv.conf"))
    {
        reporter.info(&format!("write /etc/resolv.conf: {e}"));
    }
    Some(st.keeper)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn sets_hostname_only_when_unset() {
        let cases = [
            ("(none)\n", true, "kiln"),
            ("\n", true, "kiln"),
            ("node-1\n", false, "node-1\n"),
        ];
        for (before, want_set, after) in cases {
            let tmp = TempDir::new("hostname");
            let file = tmp.write("sys/kernel/hostname", before);
            assert_eq!(
                ensure_hostname(tmp.path(), "kiln").unwrap(),
                want_set,
                "{before:?}"
            );
            assert_eq!(std::fs::read_to_string(file).unwrap(), after);
        }
    }

    #[test]
    fn unreadable_hostname_names_the_file() {
        let tmp = TempDir::new("hostname-missing");
        let got = ensure_hostname(tmp.path(), "kiln");
        assert!(matches!(got, Err(Stage2Error::Hostname(..))), "{got:?}");
    }
}
