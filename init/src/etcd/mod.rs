//! etcd on control-plane nodes (kubeadm's external-etcd topology): the certificates it
//! needs (`certs`), its command line and the restore command (`args`), a small v3 client
//! over etcd's HTTP/JSON gateway (`client`, `gateway`, `http`) and snapshot files
//! (`snapshot`).
//!
//! These are library functions: starting etcd, deciding between a new and an existing
//! cluster and scheduling snapshots belong to PID 1's services, not to this module. It
//! touches only the files under the paths it is given and the sockets to the endpoints
//! it is given.

mod args;
mod certs;
mod client;
mod gateway;
pub(crate) mod http;
mod snapshot;

#[cfg(test)]
mod args_tests;
#[cfg(test)]
mod certs_tests;
#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod gateway_tests;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod snapshot_tests;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use args::{
    client_url, data_exists, etcd_args, initial_members, peer_url, restore_args, Initial,
    ETCDUTL_BIN, ETCD_BIN,
};
pub use certs::{ensure_certs, RENEW_BEFORE};
pub use client::Client;
pub use gateway::Member;
pub use snapshot::{parse_snapshot_name, prune, snapshot_name, SnapshotInfo};

/// etcd's client port (gateway and gRPC).
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// Plain-HTTP `/metrics` and `/health`, on the loopback address only.
pub const METRICS_URL: &str = "http://127.0.0.1:2381";

/// Where etcd's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// kubeadm's PKI directory; etcd's own files are in its `etcd/` subdirectory.
    pub pki_dir: PathBuf,
    /// Periodic snapshots.
    pub backup_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/etcd"),
            pki_dir: PathBuf::from("/etc/kubernetes/pki"),
            backup_dir: PathBuf::from("/var/lib/kiln/etcd-backup"),
        }
    }
}

/// Why an etcd operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// A request failed at `endpoint` (after the endpoints in `earlier` failed too).
    #[error("etcd {endpoint}: {op}{}", earlier_text(.earlier))]
    Request {
        endpoint: SocketAddr,
        op: &'static str,
        earlier: Vec<(SocketAddr, RequestError)>,
        #[source]
        source: RequestError,
    },
    #[error("etcd client: no endpoints given")]
    NoEndpoints,
    #[error("read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("etcd client TLS setup: {0}")]
    TlsSetup(String),
    #[error("the cluster settings carry no etcd CA (etcd_ca)")]
    NoCa,
    #[error("the etcd CA in the cluster settings has no key: control planes need it to issue etcd certificates")]
    NoCaKey,
    #[error("issue {name}")]
    Issue {
        name: String,
        #[source]
        source: crate::pki::PkiError,
    },
}

/// What went wrong with one request at one endpoint.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("connect: {0}")]
    Connect(io::Error),
    /// Includes a server certificate the CA does not vouch for.
    #[error("TLS handshake: {0}")]
    Handshake(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{op}: {error}")]
    Io { op: &'static str, error: io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    /// The gateway answered with an error (its message, from the error JSON).
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("snapshot checksum mismatch: the stream does not end with the sha256 of its data")]
    Checksum,
}

impl RequestError {
    /// Whether the request may have reached etcd: writes are only retried at the next
    /// endpoint when it certainly did not.
    pub fn may_have_arrived(&self) -> bool {
        !matches!(self, Self::Connect(_) | Self::Handshake(_))
    }
}

fn earlier_text(earlier: &[(SocketAddr, RequestError)]) -> String {
    if earlier.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = earlier
        .iter()
        .map(|(endpoint, e)| format!("{endpoint}: {e}"))
        .collect();
    format!(" (tried before: {})", parts.join("; "))
}
