//! `kiln cluster gen` / `kiln cluster add`: a cluster's secrets and every node's seed.
//!
//! `gen` checks the whole topology (`topology`), makes the CAs, keys and tokens
//! (`secrets`, with init's `pki`), renders each node's files from init's own config types
//! (`node`), the admin kubeconfig (`admin`), and writes it all into a temporary folder
//! renamed to `--out` at the end (`output`). `add` reads secrets.toml back, checks the
//! topology with one more node, and writes that node's folder and the new secrets.toml.
//! Nothing is written before every check has passed; a failure leaves nothing behind.

pub mod admin;
pub mod node;
pub mod output;
pub mod secrets;
pub mod topology;

#[cfg(test)]
mod tests;

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kiln_init::config::Cidr;
use kiln_init::pki::PkiError;

use crate::fat::FatError;
pub use kiln_init::config::Role;
use output::{make_dir, write_new, write_node, Staging};
pub use secrets::ClusterFile;
pub use topology::{GenOptions, NodeEntry, Topology};

/// Why no cluster (or node) was written. One line each; sources add the cause.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("invalid {what} {value:?}: {reason}")]
    Value {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("no control planes given (--control-plane ADDR[,ADDR…])")]
    NoControlPlanes,
    #[error("pod CIDR {0} overlaps service CIDR {1}")]
    Overlap(Cidr, Cidr),
    #[error("{0} address {1} is not a usable unicast address")]
    Unusable(String, IpAddr),
    #[error("{0} address {1} is not of the VIP's address family ({2})")]
    Family(String, IpAddr, IpAddr),
    #[error("address {0} is used twice ({1} and {2})")]
    Duplicate(IpAddr, String, String),
    #[error("{0} address {1} lies in the {2} CIDR {3}")]
    InCidr(String, IpAddr, &'static str, Cidr),
    #[error("gateway {0} is not on {1}'s network {2}")]
    Gateway(IpAddr, String, Cidr),
    #[error("interface {0} is listed twice")]
    InterfaceTwice(String),
    #[error("{0} already exists and is not an empty folder")]
    OutExists(PathBuf),
    #[error("the folder {0} would go in does not exist")]
    NoParent(PathBuf),
    #[error("generate {what}")]
    Pki {
        what: &'static str,
        #[source]
        source: PkiError,
    },
    #[error("render {what}: {reason}")]
    Render { what: &'static str, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write seed.img")]
    Seed {
        #[source]
        source: FatError,
    },
}

/// What was written, for the command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub dir: PathBuf,
    pub cluster: String,
    /// The nodes written by this run, with their folders.
    pub nodes: Vec<(NodeEntry, PathBuf)>,
}

pub const SECRETS: &str = "secrets.toml";
pub const ADMIN_CONF: &str = "admin.conf";
pub const NODES: &str = "nodes";

/// `kiln cluster gen`: a new cluster in `out` (absent or an empty folder).
pub fn gen(opts: &GenOptions, out: &Path) -> Result<Summary, GenError> {
    let cluster = Topology::from_options(opts)?;
    if opts.etcd_restore.is_some() && cluster.control_planes.len() > 1 {
        // The restored member starts a new one-member cluster; the other initial members
        // would form a different one. More control planes join later with `add`.
        return Err(GenError::Value {
            what: "--etcd-restore",
            value: format!("{} control planes", cluster.control_planes.len()),
            reason: "restore into one control plane, then add more with `kiln cluster add`".into(),
        });
    }
    let restore = match &opts.etcd_restore {
        Some(path) => Some(fs::read(path).map_err(|source| GenError::Read {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let first = cluster.control_planes.first().map(|m| m.address);
    let staging = Staging::new(out)?;
    let secrets = secrets::Secrets::generate(cluster.ca_validity_hours)?;
    let file = ClusterFile { cluster, secrets };
    let rendered = file
        .cluster
        .nodes
        .iter()
        .map(|n| {
            let restore = restore.as_deref().filter(|_| Some(n.address) == first);
            Ok((n.clone(), node::render_with(&file, n, restore)?))
        })
        .collect::<Result<Vec<_>, GenError>>()?;
    let admin = admin::admin_conf(&file)?;
    let root = staging.path();
    write_new(&root.join(SECRETS), file.to_toml()?.as_bytes())?;
    write_new(&root.join(ADMIN_CONF), admin.as_bytes())?;
    make_dir(&root.join(NODES))?;
    for (n, files) in &rendered {
        let dir = root.join(NODES).join(n.name.as_str());
        make_dir(&dir)?;
        write_node(&dir, files)?;
    }
    staging.finish()?;
    Ok(Summary {
        dir: out.to_path_buf(),
        cluster: file.cluster.name.to_string(),
        nodes: rendered
            .into_iter()
            .map(|(n, _)| {
                let dir = out.join(NODES).join(n.name.as_str());
                (n, dir)
            })
            .collect(),
    })
}

/// `kiln cluster add`: one more node (the next free `cp-N` / `worker-N`) in `dir`, and
/// secrets.toml updated to list it. A new control plane joins the existing members: the
/// seeds' `control_planes` stay the initial ones.
pub fn add(dir: &Path, role: Role, address: &str) -> Result<Summary, GenError> {
    let secrets_path = dir.join(SECRETS);
    let mut file = ClusterFile::load(&secrets_path)?;
    let address: IpAddr = address.trim().parse().map_err(|_| GenError::Value {
        what: "address",
        value: address.to_string(),
        reason: "not an IP address".into(),
    })?;
    let name = topology::next_name(&file.cluster.nodes, role)?;
    let node = NodeEntry {
        name,
        role,
        address,
    };
    file.cluster.nodes.push(node.clone());
    file.cluster.check()?;
    let files = node::render(&file, &node)?;
    let text = file.to_toml()?;

    let node_dir = dir.join(NODES).join(node.name.as_str());
    let staging = Staging::new(&node_dir)?;
    write_node(staging.path(), &files)?;
    let tmp = secrets_path.with_extension(format!("toml.kiln-tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, text.as_bytes())?;
    let placed = staging.finish().and_then(|()| {
        fs::rename(&tmp, &secrets_path).map_err(|source| {
            let _ = fs::remove_dir_all(&node_dir);
            GenError::Write {
                path: secrets_path.clone(),
                source,
            }
        })
    });
    if placed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    placed?;
    Ok(Summary {
        dir: dir.to_path_buf(),
        cluster: file.cluster.name.to_string(),
        nodes: vec![(node, node_dir)],
    })
}
