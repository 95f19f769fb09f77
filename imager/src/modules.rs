//! Kernel modules: reads `.modinfo` from (compressed) `.ko` files and computes a load order.
//!
//! Debian's linux-image package ships no modules.dep (depmod runs in its postinst), so the
//! order comes from each module's own `depends=` and `softdep=` fields. Owns ELF section
//! lookup and decompression of `.ko.xz`/`.ko.zst`; it must not decide which modules an
//! image wants (the caller does).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::tree::Tree;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModuleError {
    #[error("no kernel modules folder in the root (is a linux-image package listed?)")]
    NoKernel,
    #[error("several kernels in the root: {0}")]
    SeveralKernels(String),
    #[error("kernel module {0} not found (neither a module nor built in)")]
    Missing(String),
    #[error("decompress module {0}")]
    Decompress(String),
    #[error("module {0}: not an ELF64 little-endian object")]
    BadElf(String),
    #[error("module {0}: no .modinfo section")]
    NoModinfo(String),
}

/// A module to load: its name, path in the root, and plain (decompressed) bytes.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub path: String,
    pub data: Vec<u8>,
}

/// What one module's `.modinfo` says it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModDeps {
    /// `depends=`: canonical module names, in modinfo order.
    pub hard: Vec<String>,
    /// `softdep=` `pre:` and `post:` names, canonical but unresolved (may be aliases).
    pub pre: Vec<String>,
    pub post: Vec<String>,
    /// The raw `softdep=` values, for modules.softdep.
    pub softdep: Vec<String>,
}

/// The modules of the one kernel in a root tree.
pub struct Kernel<'a> {
    pub release: String,
    root: &'a Tree,
    dir: String,
    by_name: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
}

/// `ip_vs-rr` and `ip_vs_rr` name the same module.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = file
        .strip_suffix(".ko.xz")
        .or_else(|| file.strip_suffix(".ko.zst"))
        .or_else(|| file.strip_suffix(".ko.gz"))
        .or_else(|| file.strip_suffix(".ko"))?;
    Some(canonical(stem))
}

impl<'a> Kernel<'a> {
    pub fn find(root: &'a Tree) -> Result<Self, ModuleError> {
        let releases: BTreeSet<String> = root
            .files_under("usr/lib/modules")
            .iter()
            .filter_map(|(p, _)| p.split('/').nth(3).map(str::to_string))
            .collect();
        let release = match releases.len() {
            0 => return Err(ModuleError::NoKernel),
            1 => releases.into_iter().next().ok_or(ModuleError::NoKernel)?,
            _ => {
                let all: Vec<_> = releases.into_iter().collect();
                return Err(ModuleError::SeveralKernels(all.join(", ")));
            }
        };
        let dir = format!("usr/lib/modules/{release}");
        let mut by_name = BTreeMap::new();
        for (p, _) in root.files_under(&format!("{dir}/kernel")) {
            if let Some(n) = module_name(p) {
                by_name.insert(n, p.to_string());
            }
        }
        let builtin = root
            .get(&format!("{dir}/modules.builtin"))
            .and_then(|e| match &e.node {
                crate::tree::Node::File(d) => Some(String::from_utf8_lossy(d).into_owned()),
                _ => None,
            })
            .unwrap_or_default()
            .lines()
            .filter_map(module_name)
            .collect();
        Ok(Kernel {
            release,
            root,
            dir,
            by_name,
            builtin,
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&canonical(name))
    }

    /// Decompressed bytes of a module file in the root.
    pub fn load(&self, name: &str) -> Result<Module, ModuleError> {
        let path = self
            .by_name
            .get(&canonical(name))
            .ok_or_else(|| ModuleError::Missing(name.to_string()))?;
        let raw = match self.root.get(path).map(|e| &e.node) {
            Some(crate::tree::Node::File(d)) => d,
            _ => return Err(ModuleError::Missing(name.to_string())),
        };
        let data = decompress(path, raw)?;
        let plain = path
            .trim_end_matches(".xz")
            .trim_end_matches(".zst")
            .trim_end_matches(".gz")
            .to_string();
        Ok(Module {
            name: canonical(name),
            path: plain,
            data,
        })
    }

    /// Path of a module file relative to the release folder, as depmod writes it
    /// (`kernel/net/netfilter/ipvs/ip_vs.ko.xz`); `None` for built-ins and unknown names.
    pub fn rel_path(&self, name: &str) -> Option<&str> {
        let p = self.by_name.get(&canonical(name))?;
        p.strip_prefix(self.dir.as_str())?.strip_prefix('/')
    }

    /// A module's hard dependencies (`depends=`) and soft `pre:`/`post:` names as written.
    pub fn deps(&self, name: &str) -> Result<ModDeps, ModuleError> {
        let m = self.load(name)?;
        let info = modinfo(&m.path, &m.data)?;
        let (pre, post) = softdeps(&info);
        Ok(ModDeps {
            hard: hard_deps(&info),
            pre,
            post,
            softdep: info
                .into_iter()
                .filter(|(k, _)| k == "softdep")
                .map(|(_, v)| v)
                .collect(),
        })
    }

    /// Resolves a softdep or alias name: a module, a built-in, or a crypto alias (preferring
    /// the portable `_generic` implementation, which is what works under emulation).
    pub fn resolve_name(&self, name: &str) -> Option<String> {
        let c = canonical(name);
        let known = |n: &str| self.by_name.contains_key(n) || self.builtin.contains(n);
        if known(&c) {
            return Some(c);
        }
        // Soft dependencies name crypto algorithms by module alias (`crypto-crc32c`).
        let algo = c.strip_prefix("crypto_").unwrap_or(&c);
        [algo.to_string(), format!("{algo}_generic")]
            .into_iter()
            .find(|n| known(n))
    }

    /// Load order for `wanted`: dependencies first, soft pre-dependencies before, soft
    /// post-dependencies after; built-ins skipped; each module once.
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<Module>, ModuleError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for w in wanted {
            let name = self
                .resolve_name(w)
                .ok_or_else(|| ModuleError::Missing(w.to_string()))?;
            self.visit(&name, &mut seen, &mut out)?;
        }
        Ok(out)
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<Module>,
    ) -> Result<(), ModuleError> {
        if !seen.insert(name.to_string()) || self.builtin.contains(name) {
            return Ok(());
        }
        let m = self.load(name)?;
        let info = modinfo(&m.path, &m.data)?;
        let (pre, post) = softdeps(&info);
        for d in pre.iter().cloned().chain(hard_deps(&info)) {
            // A soft dependency that names nothing we have is optional by definition.
            if let Some(d) = self.resolve_name(&d) {
                self.visit(&d, seen, out)?;
            } else if !pre.contains(&d) {
                return Err(ModuleError::Missing(d));
            }
        }
        out.push(m);
        for d in post.iter().filter_map(|d| self.resolve_name(d)) {
            self.visit(&d, seen, out)?;
        }
        Ok(())
    }
}

fn decompress(path: &str, raw: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let mut out = Vec::with_capacity(raw.len() * 3);
    let err = |_| ModuleError::Decompress(path.to_string());
    if path.ends_with(".xz") {
        liblzma::read::XzDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(err)?;
    } else if path.ends_with(".zst") {
        zstd::stream::read::Decoder::new(raw)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(err)?;
    } else if path.ends_with(".gz") {
        flate2::read::GzDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(err)?;
    } else {
        out.extend_from_slice(raw);
    }
    Ok(out)
}

/// Canonical names of all `depends=` fields.
fn hard_deps(info: &[(String, String)]) -> Vec<String> {
    info.iter()
        .filter(|(k, _)| k == "depends")
        .flat_map(|(_, v)| v.split(',').filter(|s| !s.is_empty()).map(canonical))
        .collect()
}

/// `pre:` and `post:` names of all `softdep=` fields.
fn softdeps(info: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    for (_, v) in info.iter().filter(|(k, _)| k == "softdep") {
        let mut into_pre = true;
        for w in v.split_whitespace() {
            match w {
                "pre:" => into_pre = true,
                "post:" => into_pre = false,
                w if into_pre => pre.push(canonical(w)),
                w => post.push(canonical(w)),
            }
        }
    }
    (pre, post)
}

/// The `key=value` pairs of an ELF object's `.modinfo` section.
pub fn modinfo(path: &str, elf: &[u8]) -> Result<Vec<(String, String)>, ModuleError> {
    let bad = || ModuleError::BadElf(path.to_string());
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(|b| u64::from_le_bytes(b) as usize)
    };
    let shoff = u64_at(0x28).ok_or_else(bad)?;
    let shentsize = u16_at(0x3a).ok_or_else(bad)?;
    let shnum = u16_at(0x3c).ok_or_else(bad)?;
    let shstrndx = u16_at(0x3e).ok_or_else(bad)?;
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let h = shoff + i * shentsize;
        Some((
            u32::from_le_bytes(elf.get(h..h + 4)?.try_into().ok()?) as usize,
            u64_at(h + 0x18)?,
            u64_at(h + 0x20)?,
        ))
    };
    let (_, stroff, strsize) = section(shstrndx).ok_or_else(bad)?;
    let names = elf.get(stroff..stroff + strsize).ok_or_else(bad)?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i).ok_or_else(bad)?;
        let name = names.get(name_off..).unwrap_or_default();
        if name.starts_with(b".modinfo\0") {
            let data = elf.get(off..off + size).ok_or_else(bad)?;
            return Ok(data
                .split(|b| *b == 0)
                .filter_map(|kv| {
                    let s = std::str::from_utf8(kv).ok()?;
                    let (k, v) = s.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect());
        }
    }
    Err(ModuleError::NoModinfo(path.to_string()))
}

#[cfg(test)]
#[path = "modules_tests.rs"]
pub(crate) mod tests;
