//! Checks for `kubeadm join`: JoinConfiguration with bootstrap-token discovery.

use super::{certificate_key, endpoint, node_registration, token, Findings};
use crate::config::Docs;
use crate::formats::{host_port, is_ca_cert_hash};
use crate::v1beta4::BootstrapTokenDiscovery;

/// Checks a config for `kubeadm join`.
pub fn join(docs: &Docs) -> Findings {
    let mut f = Findings::default();
    for (present, kind) in [
        (docs.init.is_some(), "InitConfiguration"),
        (docs.cluster.is_some(), "ClusterConfiguration"),
        (docs.kubelet.is_some(), "KubeletConfiguration"),
        (docs.proxy.is_some(), "KubeProxyConfiguration"),
    ] {
        if present {
            f.warnings.push(format!(
                "ignored {kind} document (kubeadm join takes it from the cluster)"
            ));
        }
    }
    let Some(j) = &docs.join else {
        f.required(
            "JoinConfiguration",
            "kubeadm join needs a JoinConfiguration document",
        );
        return f;
    };
    const K: &str = "JoinConfiguration";
    node_registration(&mut f, K, j.node_registration.as_ref());
    match (&j.discovery.bootstrap_token, &j.discovery.file) {
        (Some(_), Some(_)) => f.errors.push(format!(
            "{K}.discovery: Invalid value: bootstrapToken and file are mutually exclusive"
        )),
        (None, Some(_)) => f.errors.push(format!(
            "{K}.discovery.file: kube-standin supports bootstrapToken discovery only"
        )),
        (None, None) => f.required(
            &format!("{K}.discovery.bootstrapToken"),
            "bootstrapToken or file",
        ),
        (Some(bt), None) => discovery(&mut f, bt),
    }
    if let Some(t) = &j.discovery.tls_bootstrap_token {
        token(&mut f, &format!("{K}.discovery.tlsBootstrapToken"), t);
    }
    if let Some(path) = &j.ca_cert_path {
        if !path.starts_with('/') {
            f.invalid(&format!("{K}.caCertPath"), path, "not an absolute path");
        }
    }
    if let Some(cp) = &j.control_plane {
        // Optional, as in kubeadm: without it the shared certificates must already be on
        // the node (manual certificate distribution; join.rs checks the files).
        if let Some(key) = cp.certificate_key.as_deref() {
            certificate_key(&mut f, &format!("{K}.controlPlane.certificateKey"), key);
        }
        endpoint(
            &mut f,
            &format!("{K}.controlPlane.localAPIEndpoint"),
            cp.local_api_endpoint.as_ref(),
        );
    }
    f
}

fn discovery(f: &mut Findings, bt: &BootstrapTokenDiscovery) {
    const F: &str = "JoinConfiguration.discovery.bootstrapToken";
    token(f, &format!("{F}.token"), &bt.token);
    match bt.api_server_endpoint.as_deref() {
        None | Some("") => f.required(
            &format!("{F}.apiServerEndpoint"),
            "host:port of the API server",
        ),
        Some(ep) => {
            if let Err(why) = host_port(ep, true) {
                f.invalid(&format!("{F}.apiServerEndpoint"), ep, &why);
            }
        }
    }
    let hashes = bt.ca_cert_hashes.as_deref().unwrap_or_default();
    for h in hashes {
        if !is_ca_cert_hash(h) {
            f.invalid(
                &format!("{F}.caCertHashes"),
                h,
                "not sha256:<64 hex digits>",
            );
        }
    }
    if hashes.is_empty() && bt.unsafe_skip_ca_verification != Some(true) {
        f.required(
            &format!("{F}.caCertHashes"),
            "using token-based discovery without caCertHashes can be unsafe; set \
             unsafeSkipCAVerification: true to continue",
        );
    }
}
