//! admin.conf: a kubeconfig for `https://apiserver.cluster.local:6443` with the cluster CA
//! embedded and a client certificate for `kubernetes-admin` in `kubeadm:cluster-admins`
//! (the group kubeadm binds to cluster-admin), signed by the cluster CA.

use base64::Engine;
use kiln_init::cluster::settings::{API_ENDPOINT_NAME, API_PORT};
use kiln_init::pki::{self, Leaf, Usage};
use serde::Serialize;

use super::secrets::ClusterFile;
use super::GenError;

pub const ADMIN_CN: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "kubeadm:cluster-admins";

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct KubeConfig {
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<Named<ClusterEntry>>,
    contexts: Vec<Named<ContextEntry>>,
    current_context: String,
    users: Vec<Named<UserEntry>>,
}

#[derive(Serialize)]
struct Named<T> {
    name: String,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize)]
struct ClusterEntry {
    cluster: ClusterData,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterData {
    certificate_authority_data: String,
    server: String,
}

#[derive(Serialize)]
struct ContextEntry {
    context: ContextData,
}

#[derive(Serialize)]
struct ContextData {
    cluster: String,
    user: String,
}

#[derive(Serialize)]
struct UserEntry {
    user: UserData,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserData {
    client_certificate_data: String,
    client_key_data: String,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// The kubeconfig text, with a freshly issued admin client certificate.
pub fn admin_conf(file: &ClusterFile) -> Result<String, GenError> {
    let t = &file.cluster;
    let leaf = Leaf {
        common_name: ADMIN_CN,
        organization: Some(ADMIN_GROUP),
        dns: &[],
        ips: &[],
        usage: Usage::Client,
        validity_hours: t.cert_validity_hours,
    };
    let cert = pki::issue(&file.secrets.ca.cert_key(), &leaf).map_err(|source| GenError::Pki {
        what: "admin client certificate",
        source,
    })?;
    let cluster = t.name.to_string();
    let context = format!("{ADMIN_CN}@{cluster}");
    let doc = KubeConfig {
        api_version: "v1",
        kind: "Config",
        clusters: vec![Named {
            name: cluster.clone(),
            value: ClusterEntry {
                cluster: ClusterData {
                    certificate_authority_data: b64(file.secrets.ca.cert.as_str()),
                    server: format!("https://{API_ENDPOINT_NAME}:{API_PORT}"),
                },
            },
        }],
        contexts: vec![Named {
            name: context.clone(),
            value: ContextEntry {
                context: ContextData {
                    cluster,
                    user: ADMIN_CN.into(),
                },
            },
        }],
        current_context: context,
        users: vec![Named {
            name: ADMIN_CN.into(),
            value: UserEntry {
                user: UserData {
                    client_certificate_data: b64(&cert.cert_pem),
                    client_key_data: b64(&cert.key_pem),
                },
            },
        }],
    };
    serde_saphyr::to_string(&doc).map_err(|e| GenError::Render {
        what: "admin.conf",
        reason: e.to_string(),
    })
}
