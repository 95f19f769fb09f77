//! Stage-2 module loading, `modprobe`-like: a module name becomes its dependencies and
//! itself, in load order, read from the depmod-style text `modules.dep` the imager writes
//! (Debian's kernel package ships none, and no `.bin` index is read).
//!
//! Owns parsing modules.dep and modules.builtin, name resolution (dashes and underscores
//! are the same, as in kmod) and skipping what is built in or already loaded. It does not
//! read soft dependencies or aliases, and it never decompresses: `.ko.xz`/`.ko.zst`/
//! `.ko.gz` go to the kernel as they are (CONFIG_MODULE_DECOMPRESS). The syscall sits
//! behind [`Loader`]; deciding which modules to load is the caller's job.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// finit_module flag: the file is compressed and the kernel decompresses it.
pub const MODULE_INIT_COMPRESSED_FILE: libc::c_int = 4;

#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("modules.dep line {line}: {reason}: {text:?}")]
    Parse {
        line: usize,
        reason: &'static str,
        text: String,
    },
    #[error("module {name} not found in modules.dep of {release}")]
    NotFound { name: String, release: String },
    #[error("load {name} ({path})")]
    Load {
        name: String,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// `ip_vs-rr` and `ip_vs_rr` name the same module.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// Module name of a `.ko` path (`kernel/net/ip-vs.ko.xz` → `ip_vs`) and whether the file
/// is compressed; `None` when the path is not a module file.
pub fn module_name(path: &str) -> Option<(String, bool)> {
    let file = path.rsplit('/').next()?;
    let suffixes = [
        (".ko", false),
        (".ko.xz", true),
        (".ko.zst", true),
        (".ko.gz", true),
    ];
    let (stem, compressed) = suffixes
        .into_iter()
        .find_map(|(suffix, c)| file.strip_suffix(suffix).map(|s| (s, c)))?;
    (!stem.is_empty()).then(|| (canonical(stem), compressed))
}

/// One module of modules.dep: its path and its dependencies' paths, nearest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepLine {
    pub path: String,
    pub deps: Vec<String>,
}

/// A parsed modules.dep, by canonical module name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deps {
    pub modules: BTreeMap<String, DepLine>,
}

/// Parses modules.dep text: `path: dep dep…` per line; blank lines and `#` comments are
/// allowed. A module named twice keeps its first line, as in kmod.
pub fn parse(text: &str) -> Result<Deps, KmodError> {
    let mut deps = Deps::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason| KmodError::Parse {
            line: index + 1,
            reason,
            text: line.to_string(),
        };
        let (path, rest) = line.split_once(':').ok_or_else(|| bad("no colon"))?;
        let path = path.trim();
        let (name, _) = module_name(path).ok_or_else(|| bad("not a .ko file"))?;
        let list: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
        if list.iter().any(|d| module_name(d).is_none()) {
            return Err(bad("dependency is not a .ko file"));
        }
        deps.modules.entry(name).or_insert(DepLine {
            path: path.to_string(),
            deps: list,
        });
    }
    Ok(deps)
}

/// Names of modules.builtin (`kernel/fs/ext4/ext4.ko` per line), canonical.
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| module_name(l.trim()).map(|(n, _)| n))
        .collect()
}

impl Deps {
    /// Paths to load for `name`, dependencies first and the module last.
    pub fn load_order(&self, name: &str) -> Option<Vec<&str>> {
        let line = self.modules.get(&canonical(name))?;
        let mut order: Vec<&str> = line.deps.iter().rev().map(String::as_str).collect();
        order.push(&line.path);
        Some(order)
    }
}

/// Host boundary: loads one module file into the kernel.
pub trait Loader {
    /// `compressed`: the kernel must decompress the file (MODULE_INIT_COMPRESSED_FILE).
    fn load(&mut self, path: &Path, compressed: bool) -> io::Result<()>;
}

/// The real loader: open + finit_module(2).
#[derive(Debug, Default)]
pub struct SysLoader;

impl Loader for SysLoader {
    fn load(&mut self, path: &Path, compressed: bool) -> io::Result<()> {
        let file = File::open(path)?;
        let flags = if compressed {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        crate::sys::finit_module_flags(&file, flags).map_err(|e| match e.raw_os_error() {
            // finit_module's ENOENT means the kernel logged "Unknown symbol".
            Some(libc::ENOENT) => io::Error::other("unknown symbol (a dependency is missing)"),
            _ => e,
        })
    }
}

/// `<root>/usr/lib/modules/<release>`.
pub fn release_dir(root: &Path, release: &str) -> PathBuf {
    root.join("usr/lib/modules").join(release)
}

/// The running kernel's release, from `<root>/proc/sys/kernel/osrelease`.
pub fn running_release(root: &Path) -> Result<String, KmodError> {
    let path = root.join("proc/sys/kernel/osrelease");
    let text = std::fs::read_to_string(&path).map_err(|source| KmodError::Read { path, source })?;
    Ok(text.trim().to_string())
}

fn read(path: PathBuf) -> Result<String, KmodError> {
    std::fs::read_to_string(&path).map_err(|source| KmodError::Read { path, source })
}

/// One module to load: canonical name, path as modules.dep writes it, compressed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub path: String,
    pub compressed: bool,
}

/// What loading `names` takes, in order: their dependencies first, each module once,
/// without built-ins and without what `present` says is already loaded (nor, for a
/// wanted module that is, its dependencies). Fails before
/// anything is loaded when a name is neither in modules.dep nor built in.
pub fn plan(
    deps: &Deps,
    builtin: &BTreeSet<String>,
    present: &dyn Fn(&str) -> bool,
    names: &[&str],
    release: &str,
) -> Result<Vec<Step>, KmodError> {
    let mut seen = BTreeSet::new();
    let mut steps = Vec::new();
    for want in names {
        let want = canonical(want);
        // A loaded module has its dependencies loaded too (kmod stops here as well).
        if builtin.contains(&want) || present(&want) {
            continue;
        }
        let order = deps.load_order(&want).ok_or_else(|| KmodError::NotFound {
            name: want.clone(),
            release: release.to_string(),
        })?;
        for path in order {
            let Some((name, compressed)) = module_name(path) else {
                continue;
            };
            if builtin.contains(&name) || present(&name) || !seen.insert(name.clone()) {
                continue;
            }
            steps.push(Step {
                name,
                path: path.to_string(),
                compressed,
            });
        }
    }
    Ok(steps)
}

/// Loads `names` and their dependencies from `<root>/usr/lib/modules/<release>`, skipping
/// built-ins (modules.builtin, optional) and modules already in `<root>/sys/module`.
/// Returns the modules loaded now, in order (EEXIST from the kernel counts as loaded).
/// The first failure stops: later modules may need the one that failed.
pub fn load(
    names: &[&str],
    root: &Path,
    release: &str,
    loader: &mut dyn Loader,
) -> Result<Vec<String>, KmodError> {
    let dir = release_dir(root, release);
    let deps = parse(&read(dir.join("modules.dep"))?)?;
    let builtin = match std::fs::read_to_string(dir.join("modules.builtin")) {
        Ok(text) => parse_builtin(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeSet::new(),
        Err(source) => {
            let path = dir.join("modules.builtin");
            return Err(KmodError::Read { path, source });
        }
    };
    let present = |name: &str| root.join("sys/module").join(name).exists();
    let steps = plan(&deps, &builtin, &present, names, release)?;
    let mut loaded = Vec::new();
    for Step {
        name,
        path,
        compressed,
    } in steps
    {
        let full = match path.strip_prefix('/') {
            Some(abs) => root.join(abs),
            None => dir.join(&path),
        };
        match loader.load(&full, compressed) {
            Ok(()) => loaded.push(name),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => loaded.push(name),
            Err(source) => return Err(KmodError::Load { name, path, source }),
        }
    }
    Ok(loaded)
}

#[cfg(test)]
#[path = "kmod_tests.rs"]
mod tests;
