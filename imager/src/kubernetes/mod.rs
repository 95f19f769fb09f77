//! The spec's `[kubernetes]` section baked into the root: kubeadm, kubelet and kubectl in
//! /usr/bin, container images as OCI archives in /usr/share/kiln/images (init imports every
//! `*.tar` there into containerd before kubeadm runs), manifests in
//! /usr/share/kiln/manifests.
//!
//! Owns fetching and verifying those inputs (every byte is checked against a digest: the
//! lock's, the release's `.sha256`, or the registry's content address), caching them by
//! digest, and the lock entries that pin them. It must not touch the rest of the root.

use std::path::Path;

use crate::lock::{Lock, LockedArtifact, LockedBinary, LockedImage};
use crate::spec::Arch;
use crate::tree::{Tree, TreeError};

pub mod auth;
pub mod binaries;
pub mod config;
pub mod http;
pub mod layout;
pub mod reference;
pub mod registry;

pub use config::Kubernetes;

/// Where the baked files go in the root.
pub const BIN_DIR: &str = "usr/bin";
pub const IMAGES_DIR: &str = "usr/share/kiln/images";
pub const MANIFESTS_DIR: &str = "usr/share/kiln/manifests";
const MANIFEST_LIMIT: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("GET {url}: HTTP status {status}")]
    Http { url: String, status: u16 },
    #[error("GET {url}")]
    Request {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("GET {url}: response larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: {message}")]
    Auth { url: String, message: String },
    #[error("sha256 mismatch for {what}: expected {expected} got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes got {actual}")]
    Size {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("--locked: {what} is not in the lock file {origin}")]
    NotLocked { what: String, origin: String },
    #[error("--locked: the lock file {origin} pins {what}, which the spec no longer names")]
    Unused { what: String, origin: String },
    #[error("read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("write the OCI archive of {0}")]
    Archive(String, #[source] std::io::Error),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// `sha256:<hex>` of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", crate::digest::sha256_hex(data))
}

/// Fails unless `data` hashes to `expected` (`sha256:<hex>` or bare hex, printed alike).
pub fn verify(what: &str, expected: &str, data: &[u8]) -> Result<(), KubeError> {
    let actual = digest_of(data);
    let bare = !expected.starts_with("sha256:");
    let actual = if bare {
        actual[7..].to_string()
    } else {
        actual
    };
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(KubeError::Digest {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// `<cache>/sha256/<2 hex>/<hex>`, the layout Debian packages use too.
fn cache_path(cache: &Path, digest: &str) -> Option<std::path::PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .to_ascii_lowercase();
    let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| cache.join("sha256").join(&hex[..2]).join(&hex))
}

/// A cached blob is trusted by name: it was only stored after its digest matched.
pub(crate) fn cache_get(cache: &Path, digest: &str) -> Option<Vec<u8>> {
    std::fs::read(cache_path(cache, digest)?).ok()
}

pub(crate) fn cache_put(cache: &Path, digest: &str, data: &[u8]) {
    let Some(p) = cache_path(cache, digest) else {
        return;
    };
    if p.exists() {
        return;
    }
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Caching is an optimisation: a failure here must not fail the build.
    let _ = crate::pipeline::write_atomic(&p, data);
}

/// What the previous lock file pins. Pinned digests are used instead of the release's
/// `.sha256` files and instead of resolving tags; with `locked`, anything unpinned fails.
#[derive(Debug, Clone, Default)]
pub struct Pins {
    origin: String,
    locked: bool,
    binaries: Vec<LockedBinary>,
    images: Vec<LockedImage>,
}

impl Pins {
    pub fn new(lock: Option<&Lock>, origin: &str, locked: bool) -> Self {
        Pins {
            origin: origin.to_string(),
            locked,
            binaries: lock
                .map(|l| l.kubernetes_binaries.clone())
                .unwrap_or_default(),
            images: lock
                .map(|l| l.kubernetes_images.clone())
                .unwrap_or_default(),
        }
    }

    /// The pins of the lock file at `path`; a missing or unreadable lock pins nothing (with
    /// `--locked` the package phase has already refused such a lock).
    pub fn read(path: &Path, locked: bool) -> Self {
        let origin = path.display().to_string();
        let lock = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| crate::lock::parse(&t, &origin).ok());
        Pins::new(lock.as_ref(), &origin, locked)
    }

    /// For `kiln build`: the lock `--locked` already read and checked, else whatever lock
    /// file is at `path` (pins only).
    pub fn for_build(locked: Option<&Lock>, path: &Path) -> Self {
        match locked {
            Some(l) => Pins::new(Some(l), &path.display().to_string(), true),
            None => Pins::read(path, false),
        }
    }

    fn not_locked(&self, what: String) -> KubeError {
        KubeError::NotLocked {
            what,
            origin: self.origin.clone(),
        }
    }

    pub fn binary(&self, name: &str, url: &str) -> Result<Option<&LockedBinary>, KubeError> {
        let pin = self
            .binaries
            .iter()
            .find(|b| b.name == name && b.url == url);
        match (pin, self.locked) {
            (None, true) => Err(self.not_locked(format!("kubernetes binary {name} from {url}"))),
            (pin, _) => Ok(pin),
        }
    }

    pub fn image(&self, reference: &str) -> Result<Option<&LockedImage>, KubeError> {
        let pin = self.images.iter().find(|i| i.reference == reference);
        match (pin, self.locked) {
            (None, true) => Err(self.not_locked(format!("kubernetes image {reference}"))),
            (pin, _) => Ok(pin),
        }
    }

    /// With `--locked`, a pin nothing used means the spec and the lock disagree.
    pub fn check_unused(&self, baked: &Baked) -> Result<(), KubeError> {
        if !self.locked {
            return Ok(());
        }
        let unused_bin = self.binaries.iter().find(|p| !baked.binaries.contains(p));
        let unused_img = self.images.iter().find(|p| !baked.images.contains(p));
        let what = match (unused_bin, unused_img) {
            (Some(b), _) => format!("kubernetes binary {} from {}", b.name, b.url),
            (None, Some(i)) => format!("kubernetes image {}", i.reference),
            (None, None) => return Ok(()),
        };
        Err(KubeError::Unused {
            what,
            origin: self.origin.clone(),
        })
    }
}

/// The lock entries of what was baked; manifests and local archives count as artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baked {
    pub binaries: Vec<LockedBinary>,
    pub images: Vec<LockedImage>,
    pub artifacts: Vec<LockedArtifact>,
}

/// Bakes the `[kubernetes]` section (if any) into `tree` for `arch`.
pub fn bake(
    k: Option<&Kubernetes>,
    arch: Arch,
    tree: &mut Tree,
    cache: &Path,
    pins: &Pins,
) -> Result<Baked, KubeError> {
    let baked = match k {
        Some(k) => bake_with(k, arch.debian(), tree, cache, pins, &http::Http::new())?,
        None => Baked::default(),
    };
    pins.check_unused(&baked)?;
    Ok(baked)
}

fn bake_with(
    k: &Kubernetes,
    arch: &str,
    tree: &mut Tree,
    cache: &Path,
    pins: &Pins,
    http: &http::Http,
) -> Result<Baked, KubeError> {
    let mut baked = Baked::default();
    let (base, is_url) = match k.binaries_url(arch) {
        Some(u) => (u, true),
        None => (k.binaries.clone(), false),
    };
    for b in binaries::fetch(&base, is_url, http, cache, pins)? {
        tree.add_file(&format!("{BIN_DIR}/{}", b.locked.name), 0o755, b.data)?;
        baked.binaries.push(b.locked);
    }
    let refs = k.image_refs().map_err(|message| KubeError::Invalid {
        what: "kubernetes.images".into(),
        message,
    })?;
    let registry_url = k.registry_url();
    let mut client = registry::Registry::new(http, cache);
    for r in &refs {
        let name = r.to_string();
        let pulled = client.pull(r, &r.endpoint(&registry_url), arch, pins.image(&name)?)?;
        let tar = layout::archive(&name, &pulled.manifest, &pulled.blobs)
            .map_err(|e| KubeError::Archive(name.clone(), e))?;
        tree.add_file(&format!("{IMAGES_DIR}/{}", r.archive_name()), 0o644, tar)?;
        baked.images.push(LockedImage {
            reference: name,
            digest: pulled.manifest.digest,
            index_digest: pulled.index_digest,
        });
    }
    for a in &k.image_archives {
        let (data, locked) = local_archive(a)?;
        tree.add_file(&locked.dest, 0o644, data)?;
        baked.artifacts.push(locked);
    }
    for m in &k.manifests {
        let (data, locked) = manifest(m, http, cache)?;
        tree.add_file(&locked.dest, 0o644, data)?;
        baked.artifacts.push(locked);
    }
    Ok(baked)
}

fn read(path: &Path) -> Result<Vec<u8>, KubeError> {
    std::fs::read(path).map_err(|source| KubeError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn artifact(dest: String, source: String, data: &[u8]) -> LockedArtifact {
    LockedArtifact {
        dest: format!("/{dest}"),
        source,
        size: data.len() as u64,
        sha256: digest_of(data)[7..].to_string(),
    }
}

/// A local OCI archive, checked to be a tar with `oci-layout` and `index.json`.
fn local_archive(path: &Path) -> Result<(Vec<u8>, LockedArtifact), KubeError> {
    let data = read(path)?;
    let shown = path.display().to_string();
    let mut found = [false; 2];
    let entries = tar::Archive::new(data.as_slice()).entries().and_then(|es| {
        es.map(|e| Ok(e?.path()?.into_owned()))
            .collect::<Result<Vec<_>, _>>()
    });
    let names = entries.map_err(|e| KubeError::Invalid {
        what: format!("image archive {shown}"),
        message: format!("not a tar: {e}"),
    })?;
    for n in names {
        let n = n.to_string_lossy().trim_start_matches("./").to_string();
        found[0] |= n == "oci-layout";
        found[1] |= n == "index.json";
    }
    if found != [true, true] {
        return Err(KubeError::Invalid {
            what: format!("image archive {shown}"),
            message: "not an OCI image layout (needs oci-layout and index.json)".into(),
        });
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let locked = artifact(format!("{IMAGES_DIR}/{name}"), shown, &data);
    Ok((data, locked))
}

fn manifest(
    m: &config::Manifest,
    http: &http::Http,
    cache: &Path,
) -> Result<(Vec<u8>, LockedArtifact), KubeError> {
    let (source, data) = match m {
        config::Manifest::Path(p) => (p.clone(), read(Path::new(p))?),
        config::Manifest::Url(u) => {
            let want = u.sha256.clone().unwrap_or_default().to_ascii_lowercase();
            let data = match cache_get(cache, &want) {
                Some(d) => d,
                None => {
                    let d = http.get_ok(&u.url, MANIFEST_LIMIT)?;
                    verify(&format!("manifest {}", u.url), &want, &d)?;
                    cache_put(cache, &want, &d);
                    d
                }
            };
            (u.url.clone(), data)
        }
    };
    let dest = format!("{MANIFESTS_DIR}/{}", config::manifest_name(&source));
    let locked = artifact(dest, source, &data);
    Ok((data, locked))
}
