//! Per-MAC NoCloud seeds: which file answers `GET /seeds/<mac>/<name>`.
//!
//! `<seeds>/macs.toml` (optional) maps MACs to node names, top-level
//! `"52:54:00:12:34:56" = "cp-1"`; that node's files are the ones `kiln cluster gen` wrote
//! in `<seeds>/nodes/<name>/`. A MAC not listed there may have its own folder
//! `<seeds>/52:54:00:12:34:56/` (or `52-54-00-12-34-56/`, lower case). macs.toml is read
//! and checked once, at start; the files themselves are opened per request, so seeds
//! rewritten by `kiln cluster add` are served without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_init::config::Hostname;

use super::mac::{dashed, normalize_mac};
use super::PxeError;

/// The file names cloud-init's NoCloud datasource fetches below its `s=` URL:
/// meta-data and user-data are required, vendor-data and network-config optional (a 404
/// is "absent").
pub const SEED_FILES: [&str; 4] = ["meta-data", "user-data", "vendor-data", "network-config"];

pub const MACS_TOML: &str = "macs.toml";

/// The seeds folder with its checked MAC table.
#[derive(Debug, Clone)]
pub struct Seeds {
    root: PathBuf,
    /// Normalised MAC → node name.
    macs: BTreeMap<String, Hostname>,
}

/// Where a seed request leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedLookup {
    /// The path to open (it may still be missing: vendor-data usually is).
    Path(PathBuf),
    /// Neither macs.toml nor a folder knows this MAC.
    UnknownMac,
}

impl Seeds {
    /// Reads and checks `<root>/macs.toml` when present; `root` must be a folder.
    pub fn load(root: &Path) -> Result<Self, PxeError> {
        let root = super::folder("--seeds", root)?;
        let path = root.join(MACS_TOML);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(PxeError::Read { path, source }),
        };
        let macs = match text {
            Some(text) => parse_macs(&text, &path)?,
            None => BTreeMap::new(),
        };
        for (mac, name) in &macs {
            let dir = root.join(super::NODES).join(name.as_str());
            if !dir.is_dir() {
                return Err(PxeError::Macs {
                    path,
                    reason: format!("MAC {mac}: node {name} has no folder {}", dir.display()),
                });
            }
        }
        Ok(Self { root, macs })
    }

    /// The canonical seeds folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many MACs macs.toml lists.
    pub fn mapped(&self) -> usize {
        self.macs.len()
    }

    /// The file for `name` (one of [`SEED_FILES`]) of the normalised `mac`.
    pub fn lookup(&self, mac: &str, name: &str) -> SeedLookup {
        if let Some(node) = self.macs.get(mac) {
            let dir = self.root.join(super::NODES).join(node.as_str());
            return SeedLookup::Path(dir.join(name));
        }
        [mac.to_string(), dashed(mac)]
            .into_iter()
            .map(|folder| self.root.join(folder))
            .find(|dir| dir.is_dir())
            .map_or(SeedLookup::UnknownMac, |dir| {
                SeedLookup::Path(dir.join(name))
            })
    }
}

/// macs.toml's text → normalised MAC → node name; `path` names the file in errors.
pub fn parse_macs(text: &str, path: &Path) -> Result<BTreeMap<String, Hostname>, PxeError> {
    let err = |reason: String| PxeError::Macs {
        path: path.to_path_buf(),
        reason,
    };
    let raw: BTreeMap<String, String> = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(String::new(), |s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" at line {line}")
        });
        err(format!("{}{at}", e.message().trim()))
    })?;
    let mut macs = BTreeMap::new();
    for (key, name) in raw {
        let mac = normalize_mac(&key).map_err(|e| err(e.to_string()))?;
        let node = Hostname::try_from(name.as_str())
            .map_err(|_| err(format!("MAC {mac}: invalid node name {name:?}")))?;
        if macs.insert(mac.clone(), node).is_some() {
            return Err(err(format!("MAC {mac} is listed twice")));
        }
    }
    Ok(macs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
        parse_macs(text, Path::new("m.toml"))
            .map(|m| m.into_iter().map(|(k, v)| (k, v.to_string())).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn good_tables() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let cases: &[(&str, Vec<(String, String)>)] = &[
            ("", vec![]),
            ("# none yet\n", vec![]),
            (
                "\"52:54:00:12:34:56\" = \"cp-1\"\n\"52-54-00-12-34-57\" = \"worker-1\"",
                vec![
                    pair("52:54:00:12:34:56", "cp-1"),
                    pair("52:54:00:12:34:57", "worker-1"),
                ],
            ),
            (
                "\"52:54:00:AB:CD:EF\" = \"cp-1\"\n\"52:54:00:ab:cd:ee\" = \"cp-1\"",
                vec![
                    pair("52:54:00:ab:cd:ee", "cp-1"),
                    pair("52:54:00:ab:cd:ef", "cp-1"),
                ],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_tables() {
        let cases = [
            (
                "\"52:54:00:12:34\" = \"cp-1\"",
                "m.toml: invalid MAC address \"52:54:00:12:34\"",
            ),
            (
                "\"52:54:00:12:34:56\" = \"../etc\"",
                "invalid node name \"../etc\"",
            ),
            (
                "\"52:54:00:12:34:56\" = \"a/b\"",
                "invalid node name \"a/b\"",
            ),
            ("\"52:54:00:12:34:56\" = \"\"", "invalid node name \"\""),
            (
                "\"52:54:00:12:34:56\" = \"cp-1\"\n\"52-54-00-12-34-56\" = \"cp-2\"",
                "MAC 52:54:00:12:34:56 is listed twice",
            ),
            ("\"52:54:00:12:34:56\" = 3", "at line 1"),
            ("x = \"cp-1\"\n[y]\nz = 1", "at line"),
            ("\"52:54:00:12:34:56\" = \"cp-1\"\n= \"cp-2\"", "at line 2"),
        ];
        for (text, want) in cases {
            let Err(got) = parse(text) else {
                panic!("{text:?} was accepted");
            };
            assert!(got.contains(want), "{text:?}: {got:?} lacks {want:?}");
            assert!(got.starts_with("m.toml: "), "{got}");
            assert_eq!(got.lines().count(), 1, "{got}");
        }
    }
}
