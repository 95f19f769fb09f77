//! Assembles the root filesystem tree: extracted packages, the few maintainer-script effects
//! a node needs (done natively), overlays and `init`.
//!
//! Owns what goes into the root and where. It must not write bytes to disk (the squashfs
//! writer does) nor fetch anything (the caller hands in package files).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::debian::deb::{self, EntryKind};
use crate::tree::{Entry, Node, Tree, TreeError};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("read package {0}")]
    Read(String, #[source] std::io::Error),
    #[error("extract package {0}")]
    Extract(String, #[source] deb::DebError),
    #[error("package {package}: hard link {path} to missing {target}")]
    Hardlink {
        package: String,
        path: String,
        target: String,
    },
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("overlay {0:?} not found (looked in {1})")]
    NoOverlay(String, String),
}

/// Paths an appliance never reads: documentation, manuals, translations.
const DROP_PREFIXES: [&str; 5] = [
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/locale/",
    "usr/share/lintian/",
    "usr/share/bug/",
];

/// Mount points the read-only root must provide for init.
const MOUNTPOINTS: [&str; 7] = ["proc", "sys", "dev", "run", "tmp", "var", "newroot"];

fn dropped(path: &str) -> bool {
    let dir = format!("{path}/");
    if DROP_PREFIXES
        .iter()
        .any(|p| path.starts_with(p) || dir == *p)
    {
        return true;
    }
    // Keep licences (copyright files), drop the rest of /usr/share/doc.
    path.starts_with("usr/share/doc/")
        && path.matches('/').count() > 3
        && !path.ends_with("/copyright")
}

/// One extracted package: its entries in archive order.
struct Extracted {
    name: String,
    entries: Vec<deb::Entry>,
}

/// Decompressed `data.tar` of a cached .deb, itself cached beside it (keyed by the .deb's
/// sha256, which is its file name): warm builds then skip xz, the slowest step.
fn plain_tar(name: &str, file: &Path) -> Result<Vec<u8>, RootfsError> {
    let read_err = |e| RootfsError::Read(name.to_string(), e);
    let plain = file.with_extension("data.tar");
    if let Ok(t) = std::fs::read(&plain) {
        return Ok(t);
    }
    let bytes = std::fs::read(file).map_err(read_err)?;
    let tar = deb::data_tar(&bytes).map_err(|e| RootfsError::Extract(name.to_string(), e))?;
    let tmp = crate::pipeline::tmp_path(&plain);
    // The cache is an optimisation: failing to fill it must not fail the build.
    if std::fs::write(&tmp, &tar).is_ok() && std::fs::rename(&tmp, &plain).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(tar)
}

fn extract_one(name: &str, file: &Path) -> Result<Extracted, RootfsError> {
    let tar = plain_tar(name, file)?;
    let mut entries = Vec::new();
    deb::extract_tar(&tar, &mut |e| {
        entries.push(e);
        Ok(())
    })
    .map_err(|e| RootfsError::Extract(name.to_string(), e))?;
    Ok(Extracted {
        name: name.to_string(),
        entries,
    })
}

/// Extracts packages on `threads` workers; results come back in input order.
fn extract_all(pkgs: &[(String, PathBuf)], threads: usize) -> Result<Vec<Extracted>, RootfsError> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Result<Extracted, RootfsError>>>> =
        Mutex::new((0..pkgs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some((name, path)) = pkgs.get(i) else {
                    return;
                };
                let r = extract_one(name, path);
                if let Ok(mut res) = results.lock() {
                    res[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .zip(pkgs)
        .map(|(r, (name, _))| {
            r.unwrap_or_else(|| {
                Err(RootfsError::Read(
                    name.clone(),
                    std::io::Error::other("worker failed"),
                ))
            })
        })
        .collect()
}

/// Builds the package part of the root: every package's data, last package (by name) wins.
pub fn from_packages(pkgs: &[(String, PathBuf)], threads: usize) -> Result<Tree, RootfsError> {
    let mut tree = Tree::new();
    for x in extract_all(pkgs, threads)? {
        for e in x.entries {
            if dropped(&e.path) {
                continue;
            }
            let node = match e.kind {
                EntryKind::Dir => Node::Dir,
                EntryKind::File(d) => Node::File(std::sync::Arc::new(d)),
                EntryKind::Symlink(t) => Node::Symlink(t),
                EntryKind::Hardlink(target) => match tree.get(&target).map(|t| t.node.clone()) {
                    Some(n @ Node::File(_)) => n,
                    _ => {
                        return Err(RootfsError::Hardlink {
                            package: x.name,
                            path: e.path,
                            target,
                        })
                    }
                },
            };
            tree.insert(
                &e.path,
                Entry {
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    node,
                },
            )?;
        }
    }
    for m in MOUNTPOINTS {
        tree.add_dir(m, 0o755)?;
    }
    tree.add_dir("tmp", 0o1777)?;
    // Lower layers of the /root and /home overlays whose upper layers live on STATE.
    tree.add_dir("root", 0o700)?;
    tree.add_dir("home", 0o755)?;
    Ok(tree)
}

/// What `update-ca-certificates` would produce: every shipped certificate in one bundle.
pub fn ca_bundle(tree: &mut Tree) -> Result<usize, RootfsError> {
    let mut bundle = Vec::new();
    let certs: Vec<_> = tree
        .files_under("usr/share/ca-certificates")
        .into_iter()
        .filter(|(p, _)| p.ends_with(".crt"))
        .map(|(_, d)| d.clone())
        .collect();
    for d in &certs {
        bundle.extend_from_slice(d);
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
    }
    if !certs.is_empty() {
        tree.add_file("etc/ssl/certs/ca-certificates.crt", 0o644, bundle)?;
    }
    Ok(certs.len())
}

/// Removes kernel modules under the given `kernel/…` prefixes (drivers a node never has).
pub fn drop_modules(tree: &mut Tree, release: &str, prefixes: &[String]) {
    for p in prefixes {
        tree.remove_prefix(&format!("usr/lib/modules/{release}/kernel/{p}"));
    }
}

/// Secrets get the modes Debian gives them whatever the source tree said (git keeps only
/// the executable bit): root-owned, group `shadow` (42), not world-readable.
pub fn fix_secret_modes(tree: &mut Tree) -> Result<(), RootfsError> {
    for path in ["etc/shadow", "etc/gshadow"] {
        if let Some(e) = tree.get(path).cloned() {
            tree.insert(
                path,
                Entry {
                    mode: 0o640,
                    uid: 0,
                    gid: 42,
                    ..e
                },
            )?;
        }
    }
    Ok(())
}

/// Copies overlays over the tree. `base` is embedded in kiln and used when no folder is found.
pub fn apply_overlays(
    tree: &mut Tree,
    names: &[String],
    search: &[PathBuf],
) -> Result<(), RootfsError> {
    for name in names {
        let found = search.iter().map(|d| d.join(name)).find(|d| d.is_dir());
        match found {
            Some(dir) => tree.add_host_dir(&dir, "")?,
            None if name == "base" => {
                for (path, mode, data) in crate::embedded::BASE_OVERLAY {
                    tree.add_file(path, *mode, data.to_vec())?;
                }
            }
            None => {
                let looked: Vec<_> = search.iter().map(|d| d.display().to_string()).collect();
                return Err(RootfsError::NoOverlay(name.clone(), looked.join(", ")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn drop_table() {
        for (p, want) in [
            ("usr/share/man/man1/ls.1.gz", true),
            ("usr/share/man", true),
            ("usr/share/manx", false),
            ("usr/share/doc/runc/copyright", false),
            ("usr/share/doc/runc/changelog.gz", true),
            ("usr/share/doc/runc", false),
            ("usr/bin/runc", false),
        ] {
            assert_eq!(dropped(p), want, "{p}");
        }
    }

    #[test]
    fn shadow_is_not_world_readable() {
        let mut t = Tree::new();
        t.add_file("etc/shadow", 0o644, b"root:*::0:::::\n".to_vec())
            .unwrap();
        fix_secret_modes(&mut t).unwrap();
        let e = t.get("etc/shadow").unwrap();
        assert_eq!((e.mode, e.uid, e.gid), (0o640, 0, 42));
        assert!(t.get("etc/gshadow").is_none());
    }

    #[test]
    fn bundle_collects_certs_in_order() {
        let mut t = Tree::new();
        t.add_file(
            "usr/share/ca-certificates/mozilla/B.crt",
            0o644,
            b"B".to_vec(),
        )
        .unwrap();
        t.add_file(
            "usr/share/ca-certificates/mozilla/A.crt",
            0o644,
            b"A\n".to_vec(),
        )
        .unwrap();
        assert_eq!(ca_bundle(&mut t).unwrap(), 2);
        let e = t.get("etc/ssl/certs/ca-certificates.crt").unwrap();
        assert_eq!(e.node, Node::File(std::sync::Arc::new(b"A\nB\n".to_vec())));
    }
}
