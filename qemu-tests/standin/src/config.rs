//! A kubeadm `--config` file: multi-document YAML, each document dispatched on
//! `apiVersion` + `kind` to its typed struct. Errors name the document and the field path,
//! in kubeadm's words where it has some (`strict decoding error: unknown field "…"`).
//! What the values must be (required pieces, formats) is [`super::checks`].

use anyhow::{anyhow, bail, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::components::{
    KubeProxyConfiguration, KubeletConfiguration, KUBELET_API_VERSION, PROXY_API_VERSION,
};
use super::v1beta4::{self, ClusterConfiguration, InitConfiguration, JoinConfiguration};

/// The documents of one config file.
#[derive(Debug, Default)]
pub struct Docs {
    pub init: Option<InitConfiguration>,
    pub cluster: Option<ClusterConfiguration>,
    pub join: Option<JoinConfiguration>,
    pub kubelet: Option<KubeletConfiguration>,
    pub proxy: Option<KubeProxyConfiguration>,
    /// Every non-empty document as JSON, in file order (what calls.jsonl records).
    pub json: Vec<Value>,
}

/// Parses YAML text into JSON documents (empty documents dropped).
pub fn yaml_documents(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| anyhow!("{}", e.without_snippet()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Parses a kubeadm config file: every document must be one of the five known kinds, at
/// most once each, and match its schema.
pub fn parse(text: &str) -> Result<Docs> {
    let mut docs = Docs {
        json: yaml_documents(text)?,
        ..Docs::default()
    };
    if docs.json.is_empty() {
        bail!("the config file holds no documents");
    }
    for (i, doc) in docs.json.iter().enumerate() {
        let n = i + 1;
        let Some(obj) = doc.as_object() else {
            bail!("document {n}: not a mapping");
        };
        let field = |name: &str| match obj.get(name) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(anyhow!("document {n}: {name} is not a string")),
            None => Err(anyhow!("document {n}: '{name}' is missing in the document")),
        };
        let (api_version, kind) = (field("apiVersion")?, field("kind")?);
        let twice = || anyhow!("document {n}: a second {kind} document");
        match (api_version, kind) {
            (v1beta4::API_VERSION, "InitConfiguration") => {
                let t = typed(kind, n, doc)?;
                docs.init.replace(t).map_or(Ok(()), |_| Err(twice()))?;
            }
            (v1beta4::API_VERSION, "ClusterConfiguration") => {
                let t = typed(kind, n, doc)?;
                docs.cluster.replace(t).map_or(Ok(()), |_| Err(twice()))?;
            }
            (v1beta4::API_VERSION, "JoinConfiguration") => {
                let t = typed(kind, n, doc)?;
                docs.join.replace(t).map_or(Ok(()), |_| Err(twice()))?;
            }
            (KUBELET_API_VERSION, "KubeletConfiguration") => {
                let t = typed(kind, n, doc)?;
                docs.kubelet.replace(t).map_or(Ok(()), |_| Err(twice()))?;
            }
            (PROXY_API_VERSION, "KubeProxyConfiguration") => {
                let t = typed(kind, n, doc)?;
                docs.proxy.replace(t).map_or(Ok(()), |_| Err(twice()))?;
            }
            (v, k) if v.starts_with("kubeadm.k8s.io/") && v != v1beta4::API_VERSION => bail!(
                "document {n}: {k} has apiVersion {v:?}; kube-standin accepts {} only \
                 (v1beta3 and older are not what Kiln must write)",
                v1beta4::API_VERSION
            ),
            (v, k) => bail!(
                "document {n}: unsupported document kind {k:?} (apiVersion {v:?}); \
                 kube-standin knows InitConfiguration, ClusterConfiguration, \
                 JoinConfiguration ({}), KubeletConfiguration ({KUBELET_API_VERSION}) and \
                 KubeProxyConfiguration ({PROXY_API_VERSION})",
                v1beta4::API_VERSION
            ),
        }
    }
    Ok(docs)
}

/// Parses one KubeletConfiguration file (what the kubelet's `--config` names).
pub fn parse_kubelet(text: &str) -> Result<KubeletConfiguration> {
    let docs = yaml_documents(text)?;
    let [doc] = docs.as_slice() else {
        bail!("expected one document, found {}", docs.len());
    };
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (api, kind) != (KUBELET_API_VERSION, "KubeletConfiguration") {
        bail!(
            "expected kind KubeletConfiguration ({KUBELET_API_VERSION}), found {kind:?} ({api:?})"
        );
    }
    typed(kind, 1, doc)
}

/// Deserializes `doc` as `T`, naming the field path on failure.
pub fn typed<T: DeserializeOwned>(kind: &str, n: usize, doc: &Value) -> Result<T> {
    serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        anyhow!("{kind} (document {n}): {}", describe(&path, &inner))
    })
}

fn describe(path: &str, inner: &str) -> String {
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let full = if path == "." {
            field.to_string()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path.to_string()
        } else {
            format!("{path}.{field}")
        };
        return format!("strict decoding error: unknown field \"{full}\"");
    }
    let hint = if inner.contains("invalid type: map, expected a sequence")
        && (path.ends_with("extraArgs") || path.ends_with("kubeletExtraArgs"))
    {
        " (a v1beta3-style map; v1beta4 wants a list of {name, value})"
    } else {
        ""
    };
    format!("{path}: {inner}{hint}")
}
