//! The spec's `[kubernetes]` section: which release, where its binaries and images come
//! from, and what else is baked in (local OCI archives, manifests).
//!
//! Owns parsing and validation only, like `crate::spec`; nothing here touches the network
//! or the disk. kubeadm's add-on image versions live in [`ADDONS`], the one table to update
//! when a Kubernetes minor release is added.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::reference::{self, ImageRef};

/// Upstream release binaries; `{version}` and `{arch}` (amd64, arm64) are substituted.
pub const DEFAULT_BINARIES: &str = "https://dl.k8s.io/release/{version}/bin/linux/{arch}";
/// Upstream control-plane images.
pub const DEFAULT_REGISTRY: &str = "registry.k8s.io";

/// kubeadm's pinned add-on images per minor release (`CoreDNSVersion` and `PauseVersion` in
/// kubeadm's `cmd/kubeadm/app/constants`): (minor, CoreDNS tag, pause tag). etcd is absent
/// on purpose: Kiln runs Debian's etcd outside the cluster.
pub const ADDONS: [(u32, &str, &str); 3] = [
    (33, "v1.12.0", "3.10"),
    (34, "v1.12.1", "3.10.1"),
    (35, "v1.13.1", "3.10.1"),
];

/// A release version `vMAJOR.MINOR.PATCH` with an optional pre-release (`-rc.1`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct KubeVersion {
    text: String,
    pub major: u32,
    pub minor: u32,
}

impl TryFrom<String> for KubeVersion {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("version {text:?}: expected vMAJOR.MINOR.PATCH such as v1.34.2");
        let rest = text.strip_prefix('v').ok_or_else(bad)?;
        let (core, pre) = rest.split_once('-').unwrap_or((rest, ""));
        let num = |n: &str| match n.bytes().all(|b| b.is_ascii_digit()) {
            true => n.parse::<u32>().ok(),
            false => None,
        };
        let nums: Vec<u32> = core
            .split('.')
            .map(num)
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let pre_ok = pre.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if nums.len() != 3 || !pre_ok || (rest.contains('-') && pre.is_empty()) {
            return Err(bad());
        }
        Ok(KubeVersion {
            major: nums[0],
            minor: nums[1],
            text,
        })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `images = "default"` (kubeadm's control-plane set for the version) or explicit refs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Images {
    Keyword(String),
    List(Vec<ImageRef>),
}

impl Default for Images {
    fn default() -> Self {
        Images::Keyword("default".into())
    }
}

/// A manifest baked into /usr/share/kiln/manifests: a local file, or a URL with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Path(String),
    Url(ManifestUrl),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestUrl {
    pub url: String,
    pub sha256: Option<String>,
}

/// A string or a list/table, keeping the inner error messages (serde's untagged enums
/// replace them with "did not match any variant").
struct StrOr<T>(std::marker::PhantomData<T>, &'static str);

impl<'de, T: Deserialize<'de>> Visitor<'de> for StrOr<T> {
    type Value = Result<String, T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        T::deserialize(SeqAccessDeserializer::new(a)).map(Err)
    }
    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(a)).map(Err)
    }
}

impl<'de> Deserialize<'de> for Images {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = StrOr(PhantomData, "\"default\" or a list of image references");
        Ok(match d.deserialize_any(v)? {
            Ok(k) => Images::Keyword(k),
            Err(list) => Images::List(list),
        })
    }
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = StrOr(PhantomData, "a path or { url = \"…\", sha256 = \"…\" }");
        Ok(match d.deserialize_any(v)? {
            Ok(p) => Manifest::Path(p),
            Err(u) => Manifest::Url(u),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    pub version: KubeVersion,
    /// A URL template (see [`DEFAULT_BINARIES`]) or a local folder holding the binaries.
    #[serde(default = "default_binaries")]
    pub binaries: String,
    /// Where registry.k8s.io images are fetched from: `host[:port]` or `http(s)://host[:port]`.
    #[serde(default = "default_registry")]
    pub registry: String,
    /// Allow plain HTTP to a `registry` that is not on this machine.
    #[serde(default)]
    pub insecure_registry: bool,
    #[serde(default)]
    pub images: Images,
    #[serde(default)]
    pub extra_images: Vec<ImageRef>,
    /// Local OCI image archives, baked as they are.
    #[serde(default)]
    pub image_archives: Vec<PathBuf>,
    #[serde(default)]
    pub manifests: Vec<Manifest>,
}

fn default_binaries() -> String {
    DEFAULT_BINARIES.into()
}
fn default_registry() -> String {
    DEFAULT_REGISTRY.into()
}

impl Kubernetes {
    /// Every image to pull, control plane first, in spec order.
    pub fn image_refs(&self) -> Result<Vec<ImageRef>, String> {
        let mut all = match &self.images {
            Images::List(l) => l.clone(),
            Images::Keyword(k) if k == "default" => default_images(&self.version)?,
            Images::Keyword(k) => {
                return Err(format!(
                    "kubernetes.images {k:?}: use \"default\" or a list of image references"
                ))
            }
        };
        all.extend(self.extra_images.iter().cloned());
        Ok(all)
    }

    /// The binaries' base URL for `arch` (amd64, arm64), or `None` for a local folder.
    pub fn binaries_url(&self, arch: &str) -> Option<String> {
        is_url(&self.binaries).then(|| {
            self.binaries
                .replace("{version}", &self.version.to_string())
                .replace("{arch}", arch)
                .trim_end_matches('/')
                .to_string()
        })
    }

    /// The base URL registry.k8s.io images are fetched from.
    pub fn registry_url(&self) -> String {
        match is_url(&self.registry) {
            true => self.registry.trim_end_matches('/').to_string(),
            false => format!("https://{}", self.registry.trim_end_matches('/')),
        }
    }
}

/// kubeadm's control-plane images for `v` (what `kubeadm config images list` prints, minus
/// etcd), all under registry.k8s.io.
pub fn default_images(v: &KubeVersion) -> Result<Vec<ImageRef>, String> {
    let Some((_, coredns, pause)) = ADDONS.iter().find(|a| v.major == 1 && a.0 == v.minor) else {
        let known: Vec<_> = ADDONS.iter().map(|a| format!("1.{}", a.0)).collect();
        return Err(format!(
            "kubernetes.version {v}: no default image set for {}.{} (known: {}); list the images explicitly",
            v.major,
            v.minor,
            known.join(", ")
        ));
    };
    let mut refs: Vec<String> = ["kube-apiserver", "kube-controller-manager"]
        .iter()
        .chain(&["kube-scheduler", "kube-proxy"])
        .map(|n| format!("{DEFAULT_REGISTRY}/{n}:{v}"))
        .collect();
    refs.push(format!("{DEFAULT_REGISTRY}/coredns/coredns:{coredns}"));
    refs.push(format!("{DEFAULT_REGISTRY}/pause:{pause}"));
    refs.into_iter().map(ImageRef::parse).collect()
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// `url`'s host (without port), if it is an http(s) URL.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next().unwrap_or_default();
    Some(reference::host_only(authority))
}

/// Plain HTTP is allowed only to this machine, unless the spec opts in.
fn check_scheme(what: &str, url: &str, insecure_ok: bool) -> Result<(), String> {
    let host = url_host(url).unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{what} {url:?}: no host"));
    }
    if url.starts_with("http://") && !reference::is_loopback(host) && !insecure_ok {
        return Err(format!(
            "{what} {url:?}: plain HTTP is only allowed to localhost/127.0.0.1{}",
            if what == "kubernetes.registry" {
                ", or set insecure_registry = true"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

fn check_sha256(what: &str, s: &str) -> Result<(), String> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{what}: sha256 must be 64 hex digits"));
    }
    Ok(())
}

/// Checks what types alone cannot: URLs, the default image set, unique file names.
pub fn validate(k: &Kubernetes) -> Result<(), String> {
    if is_url(&k.binaries) {
        check_scheme("kubernetes.binaries", &k.binaries, false)?;
        let stripped = k.binaries.replace("{version}", "").replace("{arch}", "");
        if stripped.contains('{') || stripped.contains('}') {
            return Err(format!(
                "kubernetes.binaries {:?}: only {{version}} and {{arch}} are substituted",
                k.binaries
            ));
        }
    } else if k.binaries.is_empty() || k.binaries.contains("://") {
        return Err(format!(
            "kubernetes.binaries {:?}: give an http(s) URL or a local folder",
            k.binaries
        ));
    }
    let registry = k.registry_url();
    check_scheme("kubernetes.registry", &registry, k.insecure_registry)?;
    if registry
        .split_once("://")
        .is_some_and(|(_, r)| r.contains('/'))
    {
        return Err(format!(
            "kubernetes.registry {:?}: give a host[:port], without a path",
            k.registry
        ));
    }
    let mut names = std::collections::BTreeMap::new();
    for r in k.image_refs()? {
        if let Some(other) = names.insert(r.archive_name(), r.to_string()) {
            return Err(format!(
                "kubernetes images {other} and {r} would both be stored as {}",
                r.archive_name()
            ));
        }
    }
    for a in &k.image_archives {
        let name = a.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.filter(|n| n.ends_with(".tar")).ok_or_else(|| {
            format!(
                "kubernetes.image_archives {}: must name a .tar file",
                a.display()
            )
        })?;
        if let Some(other) = names.insert(name.clone(), a.display().to_string()) {
            return Err(format!(
                "kubernetes image archive {} and {other} would both be stored as {name}",
                a.display()
            ));
        }
    }
    let mut manifests = std::collections::BTreeSet::new();
    for m in &k.manifests {
        let name = validate_manifest(m)?;
        if !manifests.insert(name.clone()) {
            return Err(format!(
                "kubernetes.manifests: two manifests are named {name}"
            ));
        }
    }
    Ok(())
}

/// Returns the file name the manifest gets under /usr/share/kiln/manifests.
fn validate_manifest(m: &Manifest) -> Result<String, String> {
    let (source, sha256) = match m {
        Manifest::Path(p) if is_url(p) => (p.as_str(), None),
        Manifest::Path(p) => (p.as_str(), Some("")),
        Manifest::Url(u) => (u.url.as_str(), u.sha256.as_deref()),
    };
    match sha256 {
        None => {
            return Err(format!(
                "kubernetes manifest {source}: a URL needs its digest: {{ url = \"…\", sha256 = \"…\" }}"
            ))
        }
        Some("") => {}
        Some(s) => {
            check_scheme("kubernetes manifest", source, false)?;
            check_sha256(&format!("kubernetes manifest {source}"), s)?;
        }
    }
    let name = manifest_name(source);
    if name.is_empty() || name.starts_with('.') {
        return Err(format!("kubernetes manifest {source:?}: names no file"));
    }
    Ok(name.to_string())
}

/// The file name a manifest source gets in the image (validated by [`validate`]).
pub fn manifest_name(source: &str) -> &str {
    let s = source.split(['?', '#']).next().unwrap_or_default();
    s.rsplit('/').next().unwrap_or(s)
}
