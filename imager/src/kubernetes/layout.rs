//! OCI image layout archives: a tar holding `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`, the format `ctr images import` reads.
//!
//! Deterministic: entries sorted by path, mtime 0, owner 0:0, fixed modes and no user names,
//! so the same image always yields the same bytes (and the same root squashfs).

use std::collections::BTreeMap;

use serde::Serialize;

/// Raw bytes with their digest (`sha256:<hex>`) and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: String, digest: String, data: Vec<u8>) -> Self {
        Blob {
            media_type,
            digest,
            data,
        }
    }
}

pub const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// containerd's name for an imported image.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: [Descriptor<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: usize,
    annotations: BTreeMap<&'a str, &'a str>,
}

/// The `index.json` naming `manifest` as `name` (a full reference such as
/// `registry.k8s.io/pause:3.10.1`) for both containerd and OCI tools.
pub fn index_json(name: &str, manifest: &Blob) -> Vec<u8> {
    let index = Index {
        schema_version: 2,
        media_type: super::registry::OCI_INDEX,
        manifests: [Descriptor {
            media_type: &manifest.media_type,
            digest: &manifest.digest,
            size: manifest.data.len(),
            annotations: BTreeMap::from([(CONTAINERD_NAME, name), (REF_NAME, name)]),
        }],
    };
    serde_json::to_vec(&index).unwrap_or_default()
}

/// The archive of one image: `manifest` plus `blobs` (config and layers), under `name`.
pub fn archive(name: &str, manifest: &Blob, blobs: &[Blob]) -> std::io::Result<Vec<u8>> {
    let mut files: BTreeMap<String, &[u8]> = BTreeMap::new();
    for b in std::iter::once(manifest).chain(blobs) {
        let hex = b.digest.strip_prefix("sha256:").unwrap_or(&b.digest);
        files.insert(format!("blobs/sha256/{hex}"), &b.data);
    }
    let index = index_json(name, manifest);
    files.insert("index.json".into(), &index);
    files.insert("oci-layout".into(), LAYOUT);
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        // By hand: the tar crate drops a path's trailing slash, which folders carry by custom.
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        h.as_old_mut().name[..dir.len()].copy_from_slice(dir.as_bytes());
        h.set_cksum();
        tar.append(&h, std::io::empty())?;
    }
    for (path, data) in &files {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        tar.append_data(&mut h, path, *data)?;
    }
    tar.into_inner()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}
