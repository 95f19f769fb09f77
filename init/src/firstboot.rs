//! Stage 2's configuration sequence: STATE on /var (or tmpfs), config discovery, parse and
//! validate everything, persist the copy, then apply it (cloud-init semantics).
//!
//! Owns the order and the failure policy: a missing STATE is not fatal (tmpfs instead); a
//! broken config is (`config_error`, then maintenance) and nothing of it is applied. It
//! must run before the PID-1 reaper loop: commands run here are waited for directly.

use std::path::{Path, PathBuf};

use crate::apply;
use crate::chain::error_chain;
use crate::config::{self, NodeConfig};
use crate::discovery::{self, WaitPolicy};
use crate::events::{Event, Value};
use crate::report::Reporter;
use crate::state;

#[derive(Debug, thiserror::Error)]
pub enum FirstbootError {
    #[error("discover config")]
    Discovery(#[source] discovery::DiscoveryError),
    #[error("config from {0}")]
    Config(String, #[source] Box<config::ConfigError>),
    #[error("apply config")]
    Apply(#[source] apply::ApplyError),
}

/// Mounts STATE on /var (falling back to tmpfs); returns whether /var is persistent.
/// `mbr_disk`: `kiln.mbr=` from the kernel command line.
pub fn mount_state(reporter: &mut Reporter, mbr_disk: Option<u32>) -> bool {
    let mut events = Vec::new();
    let mut host = state::SysHost {
        mbr_disk,
        ..state::SysHost::default()
    };
    let outcome = state::prepare(&mut host.env(&mut |e: &Event| events.push(e.clone())));
    let persistent = match outcome {
        Ok(_) => true,
        Err(e) => {
            let reason = error_chain(&e);
            events.push(state::unavailable_event(&reason));
            let fallback =
                state::fallback_tmpfs(&mut host.env(&mut |e: &Event| events.push(e.clone())));
            if let Err(e) = fallback {
                events.push(Event {
                    name: "state_fallback_failed",
                    fields: vec![("reason", Value::Str(error_chain(&e)))],
                });
            }
            false
        }
    };
    for e in &events {
        reporter.event(e);
    }
    persistent
}

fn config_error(origin: &str, reason: &str) -> Event {
    Event {
        name: "config_error",
        fields: vec![
            ("source", Value::Str(origin.to_string())),
            ("reason", Value::Str(reason.to_string())),
        ],
    }
}

/// Finds, validates, persists and applies the node's config. On a broken config emits
/// `config_error` and returns the error (the caller enters maintenance).
pub fn configure(
    reporter: &mut Reporter,
    cmdline: &str,
    persistent: bool,
) -> Result<NodeConfig, FirstbootError> {
    let sys = discovery::System::default();
    let found = discovery::discover(&sys.env(cmdline, WaitPolicy::default())).map_err(|e| {
        reporter.event(&config_error("discovery", &error_chain(&e)));
        FirstbootError::Discovery(e)
    })?;
    for n in &found.notes {
        reporter.info(n);
    }
    let cfg = config::assemble(&found.sources, &found.origin).map_err(|e| {
        reporter.event(&config_error(&found.origin, &error_chain(&e)));
        FirstbootError::Config(found.origin.clone(), Box::new(e))
    })?;
    reporter.event(&Event {
        name: "config_found",
        fields: vec![
            ("source", Value::Str(found.origin.clone())),
            ("instance_id", Value::Str(cfg.instance_id.clone())),
        ],
    });
    if persistent && found.origin != "state" && found.origin != "defaults" {
        if let Err(e) = discovery::persist(&found, Path::new(discovery::STATE_DIR)) {
            reporter.info(&format!("persist config: {}", error_chain(&e)));
        }
    }
    let mut runner = apply::SysRunner::new(PathBuf::from("/var/log/kiln/cloud-config.log"));
    apply::apply(&cfg, Path::new("/"), &mut runner, &mut |e| {
        reporter.event(e)
    })
    .map_err(|e| {
        reporter.event(&config_error(&found.origin, &error_chain(&e)));
        FirstbootError::Apply(e)
    })?;
    Ok(cfg)
}
