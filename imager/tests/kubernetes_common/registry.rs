//! A fake registry for the `kubernetes_*` tests: one repository `kiln/app`, tag `v1`, an
//! index (OCI or Docker list) of linux/amd64 and linux/arm64 (v8) manifests plus an
//! attestation entry, each manifest with a config and 2 layers, all behind an anonymous
//! bearer token from `/token`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kiln_imager::kubernetes::digest_of;
use kiln_imager::kubernetes::reference::ImageRef;
use kiln_imager::kubernetes::registry;
use serde_json::json;

use super::{case_dir, FakeServer, Request, Response};

pub const TOKEN: &str = "t0k3n";

/// The fake registry's one repository `kiln/app`, tag `v1`.
pub struct Fixture {
    pub index: (String, Vec<u8>),
    list_type: &'static str,
    /// Digest → (media type, bytes) of the platform manifests.
    manifests: BTreeMap<String, (String, Vec<u8>)>,
    blobs: BTreeMap<String, Vec<u8>>,
    /// amd64 manifest digest, then its config and layers.
    pub amd64: Vec<String>,
}

pub fn layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    t.append_data(&mut h, name, data)
        .unwrap_or_else(|e| panic!("{e}"));
    t.into_inner().unwrap_or_else(|e| panic!("{e}"))
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|e| panic!("{e}"))
}

pub fn fixture(list_type: &'static str, manifest_type: &str) -> Fixture {
    let mut blobs = BTreeMap::new();
    let mut manifests = BTreeMap::new();
    let mut descs = vec![];
    let mut amd64 = vec![];
    for arch in ["amd64", "arm64"] {
        let l1 = layer("etc/one", format!("one {arch}").as_bytes());
        let l2 = layer("etc/two", format!("two {arch}").as_bytes());
        let config = bytes(&json!({"architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(&l1), digest_of(&l2)]}}));
        let desc =
            |mt: &str, d: &[u8]| json!({"mediaType": mt, "digest": digest_of(d), "size": d.len()});
        let layer_type = "application/vnd.oci.image.layer.v1.tar";
        let manifest = bytes(&json!({"schemaVersion": 2, "mediaType": manifest_type,
            "config": desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": [desc(layer_type, &l1), desc(layer_type, &l2)]}));
        let mut d = desc(manifest_type, &manifest);
        d["platform"] = json!({"os": "linux", "architecture": arch});
        if arch == "arm64" {
            d["platform"]["variant"] = json!("v8");
        }
        descs.push(d);
        if arch == "amd64" {
            amd64 = vec![
                digest_of(&manifest),
                digest_of(&config),
                digest_of(&l1),
                digest_of(&l2),
            ];
        }
        manifests.insert(digest_of(&manifest), (manifest_type.to_string(), manifest));
        for b in [config, l1, l2] {
            blobs.insert(digest_of(&b), b);
        }
    }
    // An attestation manifest, as BuildKit adds: not a platform.
    descs.push(
        json!({"mediaType": manifest_type, "digest": format!("sha256:{}", "0".repeat(64)),
        "size": 2, "platform": {"os": "unknown", "architecture": "unknown"}}),
    );
    let index = bytes(&json!({"schemaVersion": 2, "mediaType": list_type, "manifests": descs}));
    Fixture {
        index: (digest_of(&index), index),
        list_type,
        manifests,
        blobs,
        amd64,
    }
}

pub fn oci() -> Fixture {
    fixture(registry::OCI_INDEX, registry::OCI_MANIFEST)
}

/// Serves `f`; blobs whose digest is in `corrupt` come back with one byte changed.
pub fn serve(f: Fixture, corrupt: Option<String>, basic: Arc<AtomicBool>) -> FakeServer {
    FakeServer::start(move |base, req: &Request| {
        if let Some(q) = req.path.strip_prefix("/token?") {
            return match q == "service=fake&scope=repository%3Akiln%2Fapp%3Apull" {
                true => Response::ok(format!("{{\"token\":\"{TOKEN}\"}}")),
                false => Response::status(400),
            };
        }
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            let challenge = match basic.load(Ordering::SeqCst) {
                true => "Basic realm=\"fake\"".to_string(),
                false => format!(
                    "Bearer realm=\"{base}/token\",service=\"fake\",scope=\"repository:kiln/app:pull\""
                ),
            };
            return Response::status(401).with_header("WWW-Authenticate", &challenge);
        }
        let Some(rest) = req.path.strip_prefix("/v2/kiln/app/") else {
            return Response::status(404);
        };
        if rest == "manifests/v1" {
            return Response::ok(f.index.1.clone())
                .with_header("Content-Type", f.list_type)
                .with_header("Docker-Content-Digest", &f.index.0);
        }
        if let Some((mt, m)) = rest
            .strip_prefix("manifests/")
            .and_then(|d| f.manifests.get(d))
        {
            return Response::ok(m.clone()).with_header("Content-Type", mt);
        }
        match rest
            .strip_prefix("blobs/")
            .and_then(|d| f.blobs.get(d).map(|b| (d, b)))
        {
            Some((d, b)) => {
                let mut b = b.clone();
                if corrupt.as_deref() == Some(d) {
                    b[0] ^= 1;
                }
                Response::ok(b)
            }
            None => Response::status(404),
        }
    })
}

pub fn image_ref(s: &FakeServer) -> ImageRef {
    ImageRef::parse(format!(
        "{}/kiln/app:v1",
        s.url.trim_start_matches("http://")
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A folder with stand-ins for kubeadm, kubelet and kubectl.
pub fn bin_dir(name: &str) -> std::path::PathBuf {
    let d = case_dir(name);
    for n in ["kubeadm", "kubelet", "kubectl"] {
        std::fs::write(d.join(n), n).unwrap_or_else(|e| panic!("{e}"));
    }
    d
}
