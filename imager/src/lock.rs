//! The lock file: every resolved package and artifact with its exact version and digest.
//!
//! Owns the lock format and the comparison that `--locked` enforces. Reading and writing
//! are thin wrappers around pure `parse`/`render`.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LockError {
    #[error("lock file {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("resolution differs from the lock file {origin}: {diff}")]
    Differs { origin: String, diff: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    pub suite: String,
    pub arch: String,
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
    #[serde(default, rename = "artifact")]
    pub artifacts: Vec<LockedArtifact>,
    // -- kubernetes (`[kubernetes]` in the spec; see crate::kubernetes) --
    #[serde(
        default,
        rename = "kubernetes_binary",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubernetes_binaries: Vec<LockedBinary>,
    #[serde(
        default,
        rename = "kubernetes_image",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubernetes_images: Vec<LockedImage>,
    // -- end kubernetes --
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedArtifact {
    pub dest: String,
    pub source: String,
    pub size: u64,
    pub sha256: String,
}

// -- kubernetes --
/// A Kubernetes binary (kubeadm, kubelet, kubectl): where it came from and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedBinary {
    pub name: String,
    /// The download URL, or the local file it was read from.
    pub url: String,
    pub sha256: String,
}

/// A container image: the platform manifest it resolved to (and the index it came from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// The full reference, e.g. `registry.k8s.io/pause:3.10.1`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `sha256:…` of the platform manifest baked into the image.
    pub digest: String,
    /// `sha256:…` of the multi-platform index the tag pointed to, if it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
}
// -- end kubernetes --

pub const VERSION: u32 = 1;

pub fn parse(text: &str, origin: &str) -> Result<Lock, LockError> {
    let lock: Lock = toml::from_str(text).map_err(|e| LockError::Parse {
        origin: origin.to_string(),
        message: e.message().trim().to_string(),
    })?;
    if lock.version != VERSION {
        return Err(LockError::Parse {
            origin: origin.to_string(),
            message: format!("version {} is not {VERSION}", lock.version),
        });
    }
    Ok(lock)
}

pub fn render(lock: &Lock) -> String {
    let body = toml::to_string(lock).unwrap_or_default();
    format!(
        "# Written by `kiln build`: the exact inputs of an image. `--locked` enforces it.\n{body}"
    )
}

/// Fails with the first differences (at most five named) between the locked and resolved sets.
pub fn check(locked: &Lock, resolved: &Lock, origin: &str) -> Result<(), LockError> {
    let mut diff = Vec::new();
    if locked.suite != resolved.suite || locked.arch != resolved.arch {
        diff.push(format!(
            "suite/arch {}/{} vs {}/{}",
            locked.suite, locked.arch, resolved.suite, resolved.arch
        ));
    }
    let key = |p: &LockedPackage| format!("{} {}", p.name, p.version);
    let l: std::collections::BTreeSet<_> = locked.packages.iter().map(key).collect();
    let r: std::collections::BTreeSet<_> = resolved.packages.iter().map(key).collect();
    diff.extend(l.difference(&r).map(|p| format!("-{p}")));
    diff.extend(r.difference(&l).map(|p| format!("+{p}")));
    if diff.is_empty() && locked.packages != resolved.packages {
        diff.push("same versions, different files or digests".into());
    }
    if diff.is_empty() {
        return Ok(());
    }
    let more = diff.len().saturating_sub(5);
    diff.truncate(5);
    let mut d = diff.join(", ");
    if more > 0 {
        d.push_str(&format!(" and {more} more"));
    }
    Err(LockError::Differs {
        origin: origin.to_string(),
        diff: d,
    })
}

/// Artifacts (`[[artifact]]`, and the archives and manifests of `[kubernetes]`) are known
/// only once the root is assembled, so they are compared after the packages: the first
/// artifact that differs is named.
pub fn check_artifacts(locked: &Lock, resolved: &Lock, origin: &str) -> Result<(), LockError> {
    let differs = |diff: String| LockError::Differs {
        origin: origin.to_string(),
        diff,
    };
    for r in &resolved.artifacts {
        match locked.artifacts.iter().find(|l| l.dest == r.dest) {
            None => return Err(differs(format!("+artifact {}", r.dest))),
            Some(l) if l != r => {
                return Err(differs(format!(
                    "artifact {}: {} sha256 {} vs {} sha256 {}",
                    r.dest, l.source, l.sha256, r.source, r.sha256
                )))
            }
            Some(_) => {}
        }
    }
    match locked
        .artifacts
        .iter()
        .find(|l| !resolved.artifacts.contains(l))
    {
        Some(l) => Err(differs(format!("-artifact {}", l.dest))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pkg(name: &str, version: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            filename: format!("pool/{name}.deb"),
            size: 1,
            sha256: "0".repeat(64),
        }
    }

    fn lock(p: Vec<LockedPackage>) -> Lock {
        Lock {
            version: 1,
            suite: "trixie".into(),
            arch: "amd64".into(),
            packages: p,
            artifacts: vec![],
            kubernetes_binaries: vec![],
            kubernetes_images: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let l = lock(vec![pkg("a", "1"), pkg("b", "2")]);
        assert_eq!(parse(&render(&l), "x").unwrap(), l);
    }

    #[test]
    fn differences() {
        let a = lock(vec![pkg("a", "1"), pkg("b", "2")]);
        let b = lock(vec![pkg("a", "1"), pkg("b", "3"), pkg("c", "1")]);
        assert_eq!(
            check(&a, &b, "k").unwrap_err(),
            LockError::Differs {
                origin: "k".into(),
                diff: "-b 2, +b 3, +c 1".into()
            }
        );
        let mut c = a.clone();
        c.packages[0].sha256 = "1".repeat(64);
        assert_eq!(
            check(&a, &c, "k").unwrap_err(),
            LockError::Differs {
                origin: "k".into(),
                diff: "same versions, different files or digests".into()
            }
        );
        assert!(check(&a, &a, "k").is_ok());
        // Artifacts are not the packages' business: compared on their own, first one named.
        let mut d = a.clone();
        d.artifacts.push(LockedArtifact {
            dest: "/x".into(),
            source: "x".into(),
            size: 1,
            sha256: "0".repeat(64),
        });
        assert!(check(&a, &d, "k").is_ok());
        let differs = |diff: &str| LockError::Differs {
            origin: "k".into(),
            diff: diff.into(),
        };
        assert_eq!(check_artifacts(&a, &d, "k"), Err(differs("+artifact /x")));
        assert_eq!(check_artifacts(&d, &a, "k"), Err(differs("-artifact /x")));
        let mut e = d.clone();
        e.artifacts[0].sha256 = "1".repeat(64);
        let changed = format!(
            "artifact /x: x sha256 {} vs x sha256 {}",
            "0".repeat(64),
            "1".repeat(64)
        );
        assert_eq!(check_artifacts(&d, &e, "k"), Err(differs(&changed)));
        assert_eq!(check_artifacts(&d, &d, "k"), Ok(()));
        let bad = "version = 2\nsuite = \"t\"\narch = \"amd64\"\n";
        assert_eq!(
            parse(bad, "k").unwrap_err(),
            LockError::Parse {
                origin: "k".into(),
                message: "version 2 is not 1".into()
            }
        );
    }
}
