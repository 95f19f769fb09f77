//! Extra files from the spec (`[[artifact]]`): a URL or a local path, always with a sha256.
//!
//! Owns fetching and verifying them into the root tree; nothing is trusted without its digest.

use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::debian::fetch::Fetcher;
use crate::lock::LockedArtifact;
use crate::spec::Artifact;
use crate::tree::Tree;

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn fetch_url(url: &str, sha256: &str, cache: &Path) -> Result<Vec<u8>> {
    let cached = cache.join("sha256").join(&sha256[..2]).join(sha256);
    if let Ok(d) = std::fs::read(&cached) {
        return Ok(d);
    }
    let (base, rel) = url.rsplit_once('/').context("artifact url has no path")?;
    let data = Fetcher::new(base, cache.to_path_buf()).get(rel)?;
    Ok(data)
}

/// Adds every artifact to `tree` after checking its digest; returns their lock entries.
pub fn add(
    list: &[Artifact],
    tree: &mut Tree,
    _fetcher: &Fetcher,
    cache: &Path,
) -> Result<Vec<LockedArtifact>> {
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
        let got = hex(&Sha256::digest(&data));
        if got != want {
            bail!(
                "artifact {} from {source}: sha256 {got} does not match the spec's {want}",
                a.dest
            );
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
