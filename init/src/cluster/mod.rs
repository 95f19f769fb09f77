//! Cluster formation on a node: the `kiln: cluster:` settings, and the steps that run as
//! supervised services (`init cluster <step>`): etcd on control planes, kubeadm, kubelet.

pub mod settings;

pub use settings::{ClusterSettings, API_ENDPOINT_NAME, API_PORT};
