//! kubeconfig files: written as kubeadm writes them (one cluster, one user, one context,
//! credentials embedded as base64), and read back by the stand-in kubectl (the current
//! context's cluster: server URL and CA).

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use serde::Deserialize;

use super::Root;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How the kubeconfig's user authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A client certificate and key (PEM).
    ClientCert { cert_pem: String, key_pem: String },
    /// A bearer token (the bootstrap token of a joining kubelet).
    Token(String),
}

/// The text of a kubeconfig for `user` of `cluster` at `server` (`https://host:port`).
pub fn render(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    creds: &Credentials,
) -> String {
    let auth = match creds {
        Credentials::ClientCert { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            B64.encode(cert_pem),
            B64.encode(key_pem)
        ),
        Credentials::Token(t) => format!("    token: {t}\n"),
    };
    let context = format!("{user}@{cluster}");
    format!(
        "# Written by {banner}: not a real cluster's credentials.\n\
         apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {cluster}\n\
         contexts:\n\
         - context:\n    cluster: {cluster}\n    user: {user}\n  name: {context}\n\
         current-context: {context}\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: {user}\n  user:\n{auth}",
        banner = super::BANNER,
        ca = B64.encode(ca_pem),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    clusters: Option<Vec<Named<ClusterEntry>>>,
    contexts: Option<Vec<Named<ContextEntry>>>,
    current_context: Option<String>,
}

fn parse(text: &str) -> Result<File> {
    serde_saphyr::from_str(text).map_err(|e| anyhow!("{}", e.without_snippet()))
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context")]
    cluster: T,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterEntry {
    #[serde(default)]
    server: String,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Deserialize)]
struct ContextEntry {
    cluster: String,
}

/// Where the current context points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://host:port`.
    pub server: String,
    /// The CA bundle (PEM); `None` with insecure-skip-tls-verify.
    pub ca_pem: Option<String>,
}

/// The first cluster of a kubeconfig without contexts (kube-public/cluster-info).
pub fn first_cluster(text: &str, root: &Root) -> Result<Target> {
    let file = parse(text)?;
    let first = file.clusters.unwrap_or_default().into_iter().next();
    let cluster = first.ok_or_else(|| anyhow!("the kubeconfig has no cluster"))?;
    cluster_target(&cluster.cluster, root)
}

/// Reads the current context's cluster; CA files are read under `root`.
pub fn target(text: &str, root: &Root) -> Result<Target> {
    let file = parse(text)?;
    let (clusters, contexts) = (
        file.clusters.unwrap_or_default(),
        file.contexts.unwrap_or_default(),
    );
    let current = file
        .current_context
        .filter(|c| !c.is_empty())
        .ok_or_else(|| anyhow!("current-context is not set"))?;
    let context = contexts
        .iter()
        .find(|c| c.name == current)
        .ok_or_else(|| anyhow!("context was not found for specified context: {current}"))?;
    let cluster = clusters
        .iter()
        .find(|c| c.name == context.cluster.cluster)
        .map(|c| &c.cluster)
        .ok_or_else(|| {
            anyhow!(
                "cluster {:?} of context {current} not found",
                context.cluster.cluster
            )
        })?;
    cluster_target(cluster, root)
}

fn cluster_target(cluster: &ClusterEntry, root: &Root) -> Result<Target> {
    if !cluster.server.starts_with("https://") {
        bail!("server {:?} is not an https:// URL", cluster.server);
    }
    let ca_pem = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => {
            let bytes = B64
                .decode(data.trim())
                .context("certificate-authority-data is not base64")?;
            Some(String::from_utf8(bytes).context("certificate-authority-data is not PEM")?)
        }
        (None, Some(path)) => Some(root.read(path)?),
        (None, None) if cluster.insecure_skip_tls_verify => None,
        (None, None) => bail!("the cluster has no certificate-authority(-data)"),
    };
    Ok(Target {
        server: cluster.server.clone(),
        ca_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let creds = Credentials::ClientCert {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let text = render(
            "kubernetes",
            "https://apiserver.cluster.local:6443",
            "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
            "kubernetes-admin",
            &creds,
        );
        let root = Root::new("/nonexistent");
        let t = target(&text, &root).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
        assert_eq!(t.server, "https://apiserver.cluster.local:6443");
        assert!(t.ca_pem.is_some_and(|p| p.contains("BEGIN CERTIFICATE")));
        assert!(text.contains("client-key-data: S0VZ"), "{text}");
    }

    #[test]
    fn refuses_a_missing_context_and_plain_http() {
        let text = "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters: []\ncontexts: []\n";
        let Err(e) = target(text, &Root::new("/")) else {
            panic!("accepted");
        };
        assert!(e.to_string().contains("context was not found"), "{e}");
        let text = "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n\
                    clusters:\n- name: c\n  cluster: {server: 'http://x:1', insecure-skip-tls-verify: true}\n";
        let Err(e) = target(text, &Root::new("/")) else {
            panic!("accepted");
        };
        assert!(e.to_string().contains("not an https"), "{e}");
    }
}
