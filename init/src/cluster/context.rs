//! What PID 1 hands to the cluster steps it supervises: the validated settings plus the
//! facts only PID 1 knows (node name, role, VIP), as JSON in /run/kiln/cluster.json
//! (tmpfs, 0600: it holds CA keys). Steps are separate processes (`init cluster …`), so
//! this file is their whole input.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::settings::ClusterSettings;
use crate::config::{NodeConfig, Role};

pub const CONTEXT_PATH: &str = "/run/kiln/cluster.json";

/// One node's cluster facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub settings: ClusterSettings,
    /// The node's name (hostname): etcd member name, kubelet node name.
    pub node_name: String,
    pub role: Role,
    /// The load balancer's VIP: this node's, else the cluster's.
    pub vip: Option<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("kiln: cluster: needs role control-plane or worker, not standalone")]
    Standalone,
    #[error("control plane without {0} (kiln cluster gen writes it)")]
    Missing(&'static str),
    #[error("write {CONTEXT_PATH}")]
    Write(#[source] std::io::Error),
    #[error("read {CONTEXT_PATH}")]
    Read(#[source] std::io::Error),
    #[error("parse {CONTEXT_PATH}: {0}")]
    Parse(String),
}

impl Context {
    /// The cluster context of a node config; None without `kiln: cluster:`.
    pub fn from_config(cfg: &NodeConfig) -> Result<Option<Self>, ContextError> {
        let Some(settings) = cfg.kiln.cluster.clone() else {
            return Ok(None);
        };
        let role = cfg.kiln.role;
        match role {
            Role::Standalone => return Err(ContextError::Standalone),
            Role::ControlPlane => {
                if settings.ca.key.is_none() {
                    return Err(ContextError::Missing("ca.key"));
                }
                if settings
                    .etcd_ca
                    .as_ref()
                    .and_then(|c| c.key.as_ref())
                    .is_none()
                {
                    return Err(ContextError::Missing("etcd_ca with its key"));
                }
            }
            Role::Worker => {}
        }
        let node_name = cfg
            .hostname
            .as_ref()
            .map(|h| h.as_str().to_string())
            .or_else(|| settings.initial_member().map(|m| m.name.to_string()))
            .unwrap_or_else(|| format!("node-{}", settings.address).replace([':', '.'], "-"));
        let vip = cfg
            .kiln
            .lb
            .as_ref()
            .and_then(|lb| lb.vip.parse().ok())
            .or(settings.vip);
        Ok(Some(Self {
            settings,
            node_name,
            role,
            vip,
        }))
    }

    pub fn is_control_plane(&self) -> bool {
        self.role == Role::ControlPlane
    }

    /// Writes the context for the steps (0600, temp + rename).
    pub fn write(&self, path: &Path) -> Result<(), ContextError> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| ContextError::Parse(e.to_string()))?;
        write_private(path, &json).map_err(ContextError::Write)
    }

    pub fn read(path: &Path) -> Result<Self, ContextError> {
        let bytes = std::fs::read(path).map_err(ContextError::Read)?;
        serde_json::from_slice(&bytes).map_err(|e| ContextError::Parse(e.to_string()))
    }
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic::write(path, bytes, 0o600)
}
