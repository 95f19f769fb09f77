//! kube-standin `kubectl` (NOT Kubernetes): `kubectl --kubeconfig F apply -f DIR|FILE
//! [--server-side] [-R]` checks that the kubeconfig's server answers `/readyz` over TLS
//! verified by the kubeconfig's CA, validates every manifest (YAML/JSON documents with
//! apiVersion, kind and metadata.name), prints what it would apply and records file names
//! and sha256 in calls.jsonl; nothing is applied. `kubectl … get --raw PATH` prints what the
//! stand-in API server answers. Anything else exits 1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::config::yaml_documents;
use super::flags::{self, flag, Kind, Spec, VERBOSITY};
use super::formats::host_port;
use super::https::{self, Response, Trust};
use super::kubeconfig;
use super::probe::resolve;
use super::{Call, Root, BANNER};

const FLAGS: &[Spec] = &[
    flag("kubeconfig", None, Kind::Value),
    flag("filename", Some('f'), Kind::Value),
    flag("server-side", None, Kind::Bool),
    flag("recursive", Some('R'), Kind::Bool),
    flag("raw", None, Kind::Value),
    VERBOSITY,
];

pub fn run(root: &Root, args: &[String], call: &mut Call) -> Result<()> {
    let p = flags::parse(args, FLAGS)?;
    let cmd = p.args.first().map(String::as_str);
    let only = |allowed: &[&str]| -> Result<()> {
        match p.flags.iter().find(|(n, _)| !allowed.contains(n)) {
            Some((n, _)) => bail!(
                "error: unknown flag: --{n} (for kubectl {})",
                cmd.unwrap_or("")
            ),
            None => Ok(()),
        }
    };
    match (cmd, p.args.len()) {
        (Some("apply"), 1) => {
            only(&["kubeconfig", "filename", "server-side", "recursive", "v"])?;
            apply(root, &p, call)
        }
        (Some("get"), 1) => {
            only(&["kubeconfig", "raw", "v"])?;
            let path = p.get("raw").ok_or_else(|| anyhow!("{BANNER} kubectl get supports --raw PATH only"))?;
            let r = server_get(root, &p, path)?;
            if r.status != 200 {
                bail!("Error from server ({}): the server could not find the requested resource", status_reason(r.status));
            }
            println!("{}", String::from_utf8_lossy(&r.body));
            Ok(())
        }
        _ => bail!("{BANNER} kubectl supports `apply -f PATH [--server-side] [-R]` and `get --raw PATH`, not {:?}", p.args),
    }
}

fn status_reason(status: u16) -> &'static str {
    match status {
        401 => "Unauthorized",
        404 => "NotFound",
        _ => "InternalError",
    }
}

/// GET `path` from the kubeconfig's current server.
fn server_get(root: &Root, p: &flags::Parsed, path: &str) -> Result<Response> {
    let file = p
        .get("kubeconfig")
        .map(str::to_string)
        .or_else(|| std::env::var("KUBECONFIG").ok())
        .ok_or_else(|| anyhow!("{BANNER} kubectl needs --kubeconfig (or KUBECONFIG)"))?;
    let target = kubeconfig::target(&root.read(&file)?, root)
        .map_err(|e| anyhow!("error loading config file {file:?}: {e:#}"))?;
    let hp = target
        .server
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let (host, port) =
        host_port(hp, false).map_err(|e| anyhow!("server {:?}: {e}", target.server))?;
    let addr = resolve(root, &host, port.unwrap_or(443))?;
    let trust = target.ca_pem.map_or(Trust::Anything, Trust::Ca);
    let config = https::client_config(&trust)?;
    https::get(addr, &host, path, None, config, Duration::from_secs(10))
        .map_err(|e| anyhow!("The connection to the server {hp} was refused - did you specify the right host or port? ({e:#})"))
}

fn apply(root: &Root, p: &flags::Parsed, call: &mut Call) -> Result<()> {
    let inputs = p.all("filename");
    if inputs.is_empty() {
        bail!("error: must specify one of -f and -k");
    }
    let mut files = Vec::new();
    for input in &inputs {
        let path = root.path(input);
        if !path.exists() {
            bail!("error: the path {input:?} does not exist");
        }
        collect(&path, Path::new(input), p.is_true("recursive"), &mut files)?;
    }
    let mut records = Vec::new();
    let mut lines = Vec::new();
    for (shown, path) in &files {
        let bytes = std::fs::read(path).map_err(|e| anyhow!("error reading {shown:?}: {e}"))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| anyhow!("error reading {shown:?}: not UTF-8"))?;
        let docs = yaml_documents(&text).map_err(|e| anyhow!("error parsing {shown}: {e:#}"))?;
        let mut objects = Vec::new();
        for doc in &docs {
            objects.extend(
                objects_of(doc).map_err(|e| {
                    anyhow!("error validating {shown:?}: error validating data: {e}")
                })?,
            );
        }
        let sha: String = ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        lines.extend(objects.iter().cloned());
        records.push(json!({"file": shown, "sha256": sha, "objects": objects}));
    }
    call.manifests = Some(Value::Array(records));
    if lines.is_empty() {
        bail!("error: no objects passed to apply");
    }
    let r = server_get(root, p, "/readyz")?;
    if r.status != 200 {
        bail!("the server is not ready: /readyz answered {}", r.status);
    }
    let verb = if p.is_true("server-side") {
        "serverside-applied"
    } else {
        "created"
    };
    println!("{BANNER} kubectl: nothing is applied; the objects below were validated only");
    for o in lines {
        println!("{o} {verb}");
    }
    Ok(())
}

/// Files under `path` (shown as `shown`): .yaml, .yml and .json, sorted, recursing with -R.
fn collect(
    path: &Path,
    shown: &Path,
    recursive: bool,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    if !path.is_dir() {
        out.push((shown.display().to_string(), path.to_path_buf()));
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| anyhow!("error reading {}: {e}", shown.display()))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    entries.sort();
    for name in entries {
        let (p, s) = (path.join(&name), shown.join(&name));
        if p.is_dir() {
            if recursive {
                collect(&p, &s, true, out)?;
            }
        } else if p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push((s.display().to_string(), p));
        }
    }
    Ok(())
}

/// `kind.group/name` for each object of a document (a `…List` contributes its items).
fn objects_of(doc: &Value) -> Result<Vec<String>, String> {
    let mut missing = Vec::new();
    let api = doc["apiVersion"].as_str().unwrap_or_else(|| {
        missing.push("apiVersion not set");
        ""
    });
    let kind = doc["kind"].as_str().unwrap_or_else(|| {
        missing.push("kind not set");
        ""
    });
    if !missing.is_empty() {
        return Err(format!("[{}]", missing.join(", ")));
    }
    if kind.ends_with("List") {
        let items = doc["items"].as_array().ok_or("a List without items")?;
        return items
            .iter()
            .map(objects_of)
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat());
    }
    let name = doc["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name not set")?;
    let group = api
        .split_once('/')
        .map(|(g, _)| format!(".{g}"))
        .unwrap_or_default();
    Ok(vec![format!("{}{group}/{name}", kind.to_lowercase())])
}

#[cfg(test)]
mod tests {
    use super::objects_of;
    use serde_json::json;

    #[test]
    fn names_objects_and_refuses_incomplete_ones() {
        let d =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns"}});
        assert_eq!(
            objects_of(&d),
            Ok(vec!["deployment.apps/coredns".to_string()])
        );
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]});
        assert_eq!(objects_of(&list), Ok(vec!["configmap/a".to_string()]));
        assert_eq!(
            objects_of(&json!({"metadata": {"name": "x"}})),
            Err("[apiVersion not set, kind not set]".to_string())
        );
        assert_eq!(
            objects_of(&json!({"apiVersion": "v1", "kind": "Pod"})),
            Err("metadata.name not set".to_string())
        );
    }
}
