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
    if diff.is_empty() && locked.artifacts != resolved.artifacts {
        diff.push("artifacts differ".into());
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
