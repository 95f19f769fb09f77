//! Cluster formation on a node: the `kiln: cluster:` settings, the context PID 1 hands
//! to its steps, and the steps themselves, run as supervised services
//! (`init cluster <step>`): etcd on control planes, kubeadm, kubelet.

pub mod context;
pub mod kubeadm;
pub mod settings;
pub mod specs;
pub mod steps;

pub use settings::{ClusterSettings, API_ENDPOINT_NAME, API_PORT};
