//! Kiln's PID 1. One binary, two stages chosen by the initramfs marker file:
//! stage 1 (initramfs: find and mount the root, switch root) and stage 2 (real root:
//! finish mounts, reap zombies, shut down on request).
//!
//! This module owns the entry point and the PID 1 guarantees: refuse to run as any other
//! pid, never return, never let a panic escape (it becomes a `fatal` event), and fall
//! back to a maintenance state that keeps reaping and honouring shutdown signals.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub mod apply;
pub mod atomic;
pub mod blockdev;
pub mod chain;
pub mod children;
pub mod civil;
pub mod cluster;
pub mod cmdline;
pub mod config;
pub mod control;
pub mod discovery;
pub mod etcd;
pub mod events;
pub mod fetch;
pub mod firstboot;
pub mod kmod;
pub mod kube;
pub mod lb;
pub mod loopdev;
pub mod modules;
pub mod mountinfo;
pub mod mounts;
pub mod net;
pub mod netboot;
pub mod netmap;
pub mod pki;
pub mod powerbutton;
pub mod report;
pub mod services;
pub mod shutdown;
pub mod stage1;
pub mod stage2;
pub mod state;
pub mod supervise;
pub mod switch_root;
pub mod sys;
#[cfg(test)]
mod testutil;

use chain::{error_chain, panic_message};
use report::Reporter;

/// Entry point for `main`: exits 2 with one line when not PID 1 (except for the
/// `ipvs-dump` debugging command), otherwise never returns.
pub fn main() -> ExitCode {
    let pid = std::process::id();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if pid != 1 && args == ["ipvs-dump"] {
        use std::io::Write;
        return match lb::dump::dump() {
            Ok(text) => {
                let _ = write!(std::io::stdout(), "{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "kiln-init: ipvs-dump: {}",
                    chain::error_chain(&e)
                );
                ExitCode::from(1)
            }
        };
    }
    if pid != 1 && args.first().is_some_and(|a| a == "cluster") {
        return cluster::steps::main(&args[1..]);
    }
    if pid != 1 {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "kiln-init: refusing to run as pid {pid}: this is the PID 1 of a Kiln node"
        );
        return ExitCode::from(2);
    }
    pid1()
}

fn pid1() -> ! {
    sys::ensure_std_fds(Path::new("/dev/console"));
    let stage: u8 = if Path::new(stage1::MARKER).exists() {
        1
    } else {
        2
    };
    let mut reporter = Reporter::console();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match stage {
        1 => failure_text(stage1::run(&mut reporter)),
        _ => failure_text(stage2::run(&mut reporter)),
    }));
    let reason = match outcome {
        Ok(text) => text,
        Err(payload) => panic_message(payload.as_ref()),
    };
    maintenance(&mut reporter, stage, &reason)
}

/// The error chain of a stage that returned (stages only return on failure).
fn failure_text<E: std::error::Error>(result: Result<std::convert::Infallible, E>) -> String {
    match result {
        Ok(never) => match never {},
        Err(e) => error_chain(&e),
    }
}

/// Reports the fatal error, then reaps and serves shutdown signals forever.
fn maintenance(reporter: &mut Reporter, stage: u8, reason: &str) -> ! {
    reporter.event(&events::fatal(reason, stage));
    reporter.info(&format!(
        "fatal error in stage {stage}, maintenance mode: {reason}"
    ));
    sys::sync();
    let signals = match sys::SignalFd::new(&supervise::SIGNALS) {
        Ok(fd) => Some(fd),
        Err(e) => {
            reporter.info(&format!("block signals and open signalfd: {e}"));
            None
        }
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Stage 2 keeps the node reachable: DHCPv4 on every wired NIC, as with no config.
        let dhcp = (stage == 2).then(|| stage2::default_network(reporter));
        let node = supervise::Node {
            dhcp: dhcp.flatten(),
            ..supervise::Node::default()
        };
        supervise::serve(reporter, signals, node);
    }));
    // Only a panic inside `serve` gets here: keep reaping, PID 1 must not exit.
    loop {
        supervise::reap_all(|_, _| ());
        std::thread::sleep(Duration::from_secs(1));
    }
}
