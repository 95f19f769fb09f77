//! kubeadm, kubelet and kubectl: downloaded from a release URL and checked against the
//! published `<name>.sha256` (or the lock's digest), or read from a local folder.
//!
//! Downloads are cached by digest like every other blob. Nothing is returned unverified.

use std::path::Path;

use super::http::Http;
use super::{cache_get, cache_put, digest_of, verify, KubeError, Pins};
use crate::lock::LockedBinary;

/// What a node needs, installed 0755 under /usr/bin.
pub const NAMES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];
const BINARY_LIMIT: u64 = 512 << 20;

/// One verified binary and its lock entry.
#[derive(Debug)]
pub struct Binary {
    pub locked: LockedBinary,
    pub data: Vec<u8>,
}

/// Fetches every binary from `base` (a URL, or a local folder when `url` is false).
pub fn fetch(
    base: &str,
    url: bool,
    http: &Http,
    cache: &Path,
    pins: &Pins,
) -> Result<Vec<Binary>, KubeError> {
    NAMES
        .iter()
        .map(|name| match url {
            true => download(name, &format!("{base}/{name}"), http, cache, pins),
            false => local(name, &Path::new(base).join(name), pins),
        })
        .collect()
}

fn download(
    name: &str,
    url: &str,
    http: &Http,
    cache: &Path,
    pins: &Pins,
) -> Result<Binary, KubeError> {
    let expected = match pins.binary(name, url)? {
        Some(p) => p.sha256.to_ascii_lowercase(),
        None => published_digest(url, http)?,
    };
    let data = match cache_get(cache, &expected) {
        Some(d) => d,
        None => {
            let d = http.get_ok(url, BINARY_LIMIT)?;
            verify(name, &expected, &d)?;
            cache_put(cache, &expected, &d);
            d
        }
    };
    Ok(Binary {
        locked: LockedBinary {
            name: name.to_string(),
            url: url.to_string(),
            sha256: expected,
        },
        data,
    })
}

/// `<url>.sha256`: the hex digest, optionally followed by a file name (sha256sum style).
fn published_digest(url: &str, http: &Http) -> Result<String, KubeError> {
    let sums = format!("{url}.sha256");
    let body = http.get_ok(&sums, 4096)?;
    let text = String::from_utf8_lossy(&body);
    let hex = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KubeError::Invalid {
            what: sums,
            message: "not a sha256 digest file".into(),
        });
    }
    Ok(hex)
}

fn local(name: &str, path: &Path, pins: &Pins) -> Result<Binary, KubeError> {
    let data = std::fs::read(path).map_err(|source| KubeError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let source = path.display().to_string();
    if let Some(p) = pins.binary(name, &source)? {
        verify(name, &p.sha256, &data)?;
    }
    let sha256 = digest_of(&data)[7..].to_string();
    Ok(Binary {
        locked: LockedBinary {
            name: name.to_string(),
            url: source,
            sha256,
        },
        data,
    })
}
