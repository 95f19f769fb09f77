//! An in-memory file tree: the root filesystem as plain data before any bytes are written.
//!
//! Owns path normalisation (merged /usr) and last-writer-wins insertion. It must not read
//! the host file system except in [`Tree::add_host_dir`], which copies overlay folders in.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("path {0:?} leaves the root")]
    Escapes(String),
    #[error("read overlay {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("overlay {0}: only files, folders and symlinks are supported")]
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Arc<Vec<u8>>),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub node: Node,
}

/// Top-level directories that are symlinks into /usr on a merged-/usr system.
const MERGED: [&str; 4] = ["bin", "sbin", "lib", "lib64"];

#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

/// Normalises `p` to a relative path without `.` components; folds /bin, /sbin, /lib and
/// /lib64 into /usr so packages that still ship the old paths land in one place.
pub fn normalize(p: &str) -> Result<String, TreeError> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(TreeError::Escapes(p.to_string())),
            c => parts.push(c),
        }
    }
    if parts.len() > 1 && MERGED.contains(&parts[0]) {
        parts.insert(0, "usr");
    }
    Ok(parts.join("/"))
}

impl Tree {
    pub fn new() -> Self {
        let mut t = Tree::default();
        for d in MERGED {
            t.insert_raw(d.into(), 0o777, Node::Symlink(format!("usr/{d}")));
        }
        t
    }

    fn insert_raw(&mut self, path: String, mode: u32, node: Node) {
        self.entries.insert(
            path,
            Entry {
                mode,
                uid: 0,
                gid: 0,
                node,
            },
        );
    }

    /// Inserts an entry, creating missing parent folders (0755, root). A later insert of the
    /// same path wins, except that a folder never replaces a folder's metadata with a
    /// symlink from the merged-/usr set.
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<(), TreeError> {
        let path = normalize(path)?;
        if path.is_empty() {
            return Ok(());
        }
        if MERGED.contains(&path.as_str()) {
            return Ok(());
        }
        self.ensure_parents(&path);
        if entry.node == Node::Dir {
            if let Some(old) = self.entries.get_mut(&path) {
                if old.node == Node::Dir {
                    old.mode = entry.mode;
                    old.uid = entry.uid;
                    old.gid = entry.gid;
                    return Ok(());
                }
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    fn ensure_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            if !self.entries.contains_key(parent) {
                self.insert_raw(parent.to_string(), 0o755, Node::Dir);
            }
            end += i + 1;
        }
    }

    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), TreeError> {
        self.insert(
            path,
            Entry {
                mode,
                uid: 0,
                gid: 0,
                node: Node::Dir,
            },
        )
    }

    pub fn add_file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<(), TreeError> {
        let node = Node::File(Arc::new(data));
        self.insert(
            path,
            Entry {
                mode,
                uid: 0,
                gid: 0,
                node,
            },
        )
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), TreeError> {
        let node = Node::Symlink(target.to_string());
        self.insert(
            path,
            Entry {
                mode: 0o777,
                uid: 0,
                gid: 0,
                node,
            },
        )
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        normalize(path).ok().and_then(|p| self.entries.get(&p))
    }

    pub fn remove_prefix(&mut self, prefix: &str) {
        let Ok(p) = normalize(prefix) else { return };
        let under = format!("{p}/");
        self.entries
            .retain(|k, _| k != &p && !k.starts_with(&under));
    }

    /// Entries in sorted path order (parents before children).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// Files under `prefix` (normalised), sorted.
    pub fn files_under<'a>(&'a self, prefix: &str) -> Vec<(&'a str, &'a Arc<Vec<u8>>)> {
        let p = normalize(prefix).unwrap_or_default();
        let under = format!("{p}/");
        self.entries
            .range(under.clone()..)
            .take_while(|(k, _)| k.starts_with(&under))
            .filter_map(|(k, e)| match &e.node {
                Node::File(d) => Some((k.as_str(), d)),
                _ => None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of file sizes.
    pub fn file_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match &e.node {
                Node::File(d) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Copies a host folder (an overlay) over the tree; owners become root, modes are kept.
    pub fn add_host_dir(&mut self, host: &Path, at: &str) -> Result<(), TreeError> {
        let read_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| TreeError::Read { path, source }
        };
        let mut names: Vec<_> = std::fs::read_dir(host)
            .map_err(read_err(host))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err(host))?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let hp = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let dest = format!("{at}/{name}");
            let meta = std::fs::symlink_metadata(&hp).map_err(read_err(&hp))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            if meta.is_dir() {
                self.add_dir(&dest, mode)?;
                self.add_host_dir(&hp, &dest)?;
            } else if meta.is_file() {
                let data = std::fs::read(&hp).map_err(read_err(&hp))?;
                self.add_file(&dest, mode, data)?;
            } else if meta.file_type().is_symlink() {
                let t = std::fs::read_link(&hp).map_err(read_err(&hp))?;
                self.add_symlink(&dest, &t.to_string_lossy())?;
            } else {
                return Err(TreeError::Unsupported(hp.display().to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn normalize_table() {
        let cases = [
            ("./usr/bin/x", "usr/bin/x"),
            ("/bin/sh", "usr/bin/sh"),
            ("lib/modules/6.12/x.ko", "usr/lib/modules/6.12/x.ko"),
            ("lib", "lib"),
            ("etc//a/./b", "etc/a/b"),
            ("./", ""),
        ];
        for (i, o) in cases {
            assert_eq!(normalize(i).unwrap(), o, "{i}");
        }
        assert!(matches!(normalize("a/../../b"), Err(TreeError::Escapes(_))));
    }

    #[test]
    fn parents_and_merged_links() {
        let mut t = Tree::new();
        t.add_file("/sbin/init", 0o755, b"x".to_vec()).unwrap();
        t.add_dir("lib", 0o700).unwrap();
        assert_eq!(t.get("usr/sbin").unwrap().node, Node::Dir);
        assert_eq!(t.get("lib").unwrap().node, Node::Symlink("usr/lib".into()));
        assert_eq!(t.get("usr/sbin/init").unwrap().mode, 0o755);
        let order: Vec<_> = t.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            order,
            [
                "bin",
                "lib",
                "lib64",
                "sbin",
                "usr",
                "usr/sbin",
                "usr/sbin/init"
            ]
        );
    }

    #[test]
    fn later_insert_wins_and_dirs_merge() {
        let mut t = Tree::new();
        t.add_file("etc/a", 0o644, b"1".to_vec()).unwrap();
        t.add_file("etc/a", 0o600, b"2".to_vec()).unwrap();
        t.add_dir("etc", 0o700).unwrap();
        assert_eq!(
            t.get("etc/a").unwrap().node,
            Node::File(Arc::new(b"2".to_vec()))
        );
        assert_eq!(t.get("etc").unwrap().mode, 0o700);
        assert_eq!(t.files_under("etc").len(), 1);
        t.remove_prefix("etc");
        assert!(t.get("etc/a").is_none());
    }
}
