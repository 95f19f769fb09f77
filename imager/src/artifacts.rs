//! Extra files from the spec (`[[artifact]]`): a URL or a local path, always with a sha256.
//!
//! Owns fetching and verifying them into the root tree; nothing is trusted without its digest.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::debian::fetch::Fetcher;
use crate::lock::LockedArtifact;
use crate::spec::Artifact;
use crate::tree::Tree;

fn cache_path(cache: &Path, sha256: &str) -> std::path::PathBuf {
    cache.join("sha256").join(&sha256[..2]).join(sha256)
}

/// A cached copy is trusted by name, as for packages; it is only written after its digest
/// matched, below.
fn fetch_url(url: &str, sha256: &str, cache: &Path) -> Result<Vec<u8>> {
    if let Ok(d) = std::fs::read(cache_path(cache, sha256)) {
        return Ok(d);
    }
    let (base, rel) = url.rsplit_once('/').context("artifact url has no path")?;
    let data = Fetcher::new(base, cache.to_path_buf()).get(rel)?;
    Ok(data)
}

fn store(cache: &Path, sha256: &str, data: &[u8]) {
    let p = cache_path(cache, sha256);
    if p.exists() {
        return;
    }
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Caching is an optimisation: a failure here must not fail the build.
    let _ = crate::pipeline::write_atomic(&p, data);
}

/// Adds every artifact to `tree` after checking its digest; returns their lock entries.
pub fn add(list: &[Artifact], tree: &mut Tree, cache: &Path) -> Result<Vec<LockedArtifact>> {
    let mut locked = Vec::new();
    for a in list {
        let want = a.sha256.to_ascii_lowercase();
        let (data, source) = match (&a.url, &a.path) {
            (Some(u), _) => (fetch_url(u, &want, cache)?, u.clone()),
            (None, Some(p)) => {
                let d =
                    std::fs::read(p).with_context(|| format!("read artifact {}", p.display()))?;
                (d, p.display().to_string())
            }
            (None, None) => bail!("artifact {}: no url or path", a.dest),
        };
        let got = crate::digest::sha256_hex(&data);
        if got != want {
            bail!(
                "artifact {} from {source}: sha256 {got} does not match the spec's {want}",
                a.dest
            );
        }
        if a.url.is_some() {
            store(cache, &got, &data);
        }
        let mode = u32::from_str_radix(&a.mode, 8).unwrap_or(0o644);
        locked.push(LockedArtifact {
            dest: a.dest.clone(),
            source,
            size: data.len() as u64,
            sha256: got,
        });
        tree.add_file(&a.dest, mode, data)?;
    }
    Ok(locked)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn artifact(path: &Path, sha256: &str) -> Artifact {
        Artifact {
            dest: "/usr/local/bin/tool".into(),
            url: None,
            path: Some(path.to_path_buf()),
            sha256: sha256.into(),
            mode: "0755".into(),
        }
    }

    #[test]
    fn path_artifact_digest_checked() {
        let dir = std::env::temp_dir().join(format!("kiln-artifact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tool");
        std::fs::write(&f, b"hello").unwrap();
        let good = crate::digest::sha256_hex(b"hello");
        let mut tree = Tree::new();
        let locked = add(&[artifact(&f, &good)], &mut tree, &dir).unwrap();
        assert_eq!(locked[0].size, 5);
        assert_eq!(tree.get("usr/local/bin/tool").unwrap().mode, 0o755);
        let bad = "0".repeat(64);
        let e = add(&[artifact(&f, &bad)], &mut Tree::new(), &dir).unwrap_err();
        assert!(e.to_string().contains("does not match the spec's"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
