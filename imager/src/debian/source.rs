//! One Debian source: the verified InRelease of a suite and the package index of its
//! components for one architecture.
//!
//! Owns the trust chain: InRelease signature → Release SHA256 → Packages. Nothing is parsed
//! before its digest is checked.

use std::io::Read;

use super::fetch::{FetchError, Fetcher};
use super::packages::{parse_packages, Package, PackagesError};
use super::release::{parse_release, verify_inrelease, Release, ReleaseError};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("fetch the index of {suite}")]
    Fetch {
        suite: String,
        #[source]
        source: FetchError,
    },
    #[error("check the index of {suite}")]
    Release {
        suite: String,
        #[source]
        source: ReleaseError,
    },
    #[error("{suite} has no {path} in its Release file (wrong component or architecture?)")]
    NoIndex { suite: String, path: String },
    #[error("decompress {0}")]
    Decompress(String, #[source] std::io::Error),
    #[error("parse {0}")]
    Packages(String, #[source] PackagesError),
}

pub struct Source {
    pub release: Release,
    pub packages: Vec<Package>,
}

/// Fetches and verifies `suite`'s index for `components` and `arch` (Debian name).
pub fn load(
    fetcher: &Fetcher,
    suite: &str,
    components: &[String],
    arch: &str,
    keyring: &[u8],
) -> Result<Source, SourceError> {
    let fetch_err = |source| SourceError::Fetch {
        suite: suite.to_string(),
        source,
    };
    let rel_err = |source| SourceError::Release {
        suite: suite.to_string(),
        source,
    };
    let inrelease = fetcher
        .get(&format!("dists/{suite}/InRelease"))
        .map_err(fetch_err)?;
    let text = verify_inrelease(&inrelease, keyring).map_err(rel_err)?;
    let release = parse_release(&text).map_err(rel_err)?;
    let mut packages = Vec::new();
    for comp in components {
        let path = format!("{comp}/binary-{arch}/Packages.xz");
        let hash = release
            .sha256
            .get(&path)
            .ok_or_else(|| SourceError::NoIndex {
                suite: suite.to_string(),
                path: path.clone(),
            })?;
        let rel = if release.acquire_by_hash {
            format!(
                "dists/{suite}/{comp}/binary-{arch}/by-hash/SHA256/{}",
                hash.sha256
            )
        } else {
            format!("dists/{suite}/{path}")
        };
        let file = fetcher
            .fetch_verified(&rel, hash.size, &hash.sha256)
            .map_err(fetch_err)?;
        let mut text = String::new();
        std::fs::File::open(&file)
            .map(liblzma::read::XzDecoder::new)
            .and_then(|mut d| d.read_to_string(&mut text))
            .map_err(|e| SourceError::Decompress(path.clone(), e))?;
        packages.extend(parse_packages(&text).map_err(|e| SourceError::Packages(path, e))?);
    }
    Ok(Source { release, packages })
}
