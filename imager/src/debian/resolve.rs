//! Dependency closure over parsed Packages indices: which packages a set of roots needs.
//!
//! Owns the package index (by name and by provided name) and the choice rules below. It
//! must not fetch, verify or unpack anything, and it ignores everything but Depends and
//! Pre-Depends (no Recommends, Suggests, Conflicts or Breaks).
//!
//! Choice rules, applied to each dependency group (`a | b | c`) of each selected package, in
//! breadth-first order from the roots (so the result is deterministic):
//! 1. If an alternative is excluded (its name is in `exclude`, or it is a virtual name one of
//!    whose matching providers is in `exclude`), the group counts as satisfied.
//! 2. If an already-selected package satisfies an alternative (by name and version, or by a
//!    matching Provides), nothing new is pulled.
//! 3. Otherwise the first alternative, in order, that can be satisfied wins: by the highest
//!    version of a real package meeting the constraint, else by a provider. A versioned
//!    dependency is met by a provider only through a versioned Provides that satisfies it.
//!    Among several providers the lexicographically smallest package name is chosen.
//!
//! One version per name: a candidate whose name is already selected at another version is
//! skipped. Arch qualifiers (`:any`, `:native`, `:amd64`) are ignored (single-arch build).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::debian::packages::{Dep, Package};
use crate::debian::version;

/// Errors from [`resolve`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("root package {name} not found in the index")]
    MissingPackage { name: String },
    #[error("root package {name} is in the exclude list")]
    ExcludedRoot { name: String },
    #[error("{package}: cannot satisfy dependency {dependency}")]
    Unsatisfiable { package: String, dependency: String },
}

/// All candidate packages, indexed by name and by provided (virtual) name.
#[derive(Debug, Default)]
pub struct Index {
    packages: Vec<Package>,
    /// Name -> package indices, highest version first.
    by_name: BTreeMap<String, Vec<usize>>,
    /// Provided name -> indices of providing packages, by name then highest version first.
    providers: BTreeMap<String, Vec<usize>>,
}

impl Index {
    /// Builds the index from the packages of all components (concatenate them first).
    pub fn new(packages: Vec<Package>) -> Self {
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut providers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in packages.iter().enumerate() {
            by_name.entry(p.name.clone()).or_default().push(i);
            let provided: BTreeSet<&str> = p.provides.iter().map(|v| v.name.as_str()).collect();
            for name in provided {
                providers.entry(name.to_owned()).or_default().push(i);
            }
        }
        let newest_first = |a: &usize, b: &usize| {
            let (pa, pb) = (&packages[*a], &packages[*b]);
            let by_version = version::compare(&pb.version, &pa.version);
            pa.name.cmp(&pb.name).then(by_version)
        };
        by_name.values_mut().for_each(|v| v.sort_by(newest_first));
        providers.values_mut().for_each(|v| v.sort_by(newest_first));
        Index {
            packages,
            by_name,
            providers,
        }
    }

    /// The highest version of the real package `name`.
    pub fn get(&self, name: &str) -> Option<&Package> {
        let first = self.by_name.get(name)?.first()?;
        self.packages.get(*first)
    }

    fn real(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        self.by_name.get(name).into_iter().flatten().copied()
    }

    /// Providers of `dep.name` whose Provides meets the dependency's constraint.
    fn providing<'a>(&'a self, dep: &'a Dep) -> impl Iterator<Item = usize> + 'a {
        let all = self.providers.get(&dep.name).into_iter().flatten().copied();
        all.filter(move |&i| {
            self.packages[i].provides.iter().any(|p| {
                p.name == dep.name
                    && match (&dep.constraint, &p.version) {
                        (None, _) => true,
                        (Some((rel, want)), Some(v)) => version::satisfies(v, *rel, want),
                        (Some(_), None) => false,
                    }
            })
        })
    }

    fn real_meets(&self, i: usize, dep: &Dep) -> bool {
        let p = &self.packages[i];
        p.name == dep.name
            && dep
                .constraint
                .as_ref()
                .is_none_or(|(rel, want)| version::satisfies(&p.version, *rel, want))
    }
}

/// Computes the closure of `roots` over Depends and Pre-Depends; sorted by name, each once.
pub fn resolve(
    index: &Index,
    roots: &[String],
    exclude: &[String],
) -> Result<Vec<Package>, ResolveError> {
    let mut r = Resolver {
        index,
        exclude: exclude.iter().map(String::as_str).collect(),
        selected: BTreeMap::new(),
        queue: VecDeque::new(),
    };
    for name in roots {
        r.add_root(name)?;
    }
    while let Some(i) = r.queue.pop_front() {
        let p = &index.packages[i];
        for group in p.pre_depends.iter().chain(&p.depends) {
            r.satisfy(&p.name, group)?;
        }
    }
    Ok(r.selected
        .values()
        .map(|&i| index.packages[i].clone())
        .collect())
}

/// Resolution state: selected packages by name and the packages still to expand.
struct Resolver<'a> {
    index: &'a Index,
    exclude: BTreeSet<&'a str>,
    selected: BTreeMap<&'a str, usize>,
    queue: VecDeque<usize>,
}

impl<'a> Resolver<'a> {
    fn add_root(&mut self, name: &str) -> Result<(), ResolveError> {
        if self.exclude.contains(name) {
            return Err(ResolveError::ExcludedRoot {
                name: name.to_owned(),
            });
        }
        let dep = Dep {
            name: name.to_owned(),
            arch: None,
            constraint: None,
        };
        if self.selected_meets(&dep) {
            return Ok(());
        }
        let i = self
            .candidate(&dep)
            .ok_or_else(|| ResolveError::MissingPackage {
                name: name.to_owned(),
            })?;
        self.select(i);
        Ok(())
    }

    fn satisfy(&mut self, parent: &str, group: &[Dep]) -> Result<(), ResolveError> {
        if group.iter().any(|d| self.excluded(d)) || group.iter().any(|d| self.selected_meets(d)) {
            return Ok(());
        }
        match group.iter().find_map(|d| self.candidate(d)) {
            Some(i) => {
                self.select(i);
                Ok(())
            }
            None => Err(ResolveError::Unsatisfiable {
                package: parent.to_owned(),
                dependency: render(group),
            }),
        }
    }

    fn excluded(&self, dep: &Dep) -> bool {
        let idx = self.index;
        self.exclude.contains(dep.name.as_str())
            || idx
                .providing(dep)
                .any(|i| self.exclude.contains(idx.packages[i].name.as_str()))
    }

    fn selected_meets(&self, dep: &Dep) -> bool {
        let idx = self.index;
        let real = self.selected.get(dep.name.as_str());
        real.is_some_and(|&i| idx.real_meets(i, dep))
            || idx
                .providing(dep)
                .any(|i| self.selected.get(idx.packages[i].name.as_str()) == Some(&i))
    }

    /// Best not-yet-conflicting package for one alternative (see the module rules).
    fn candidate(&self, dep: &Dep) -> Option<usize> {
        let idx = self.index;
        let free = |i: &usize| {
            let name = idx.packages[*i].name.as_str();
            !self.exclude.contains(name) && !self.selected.contains_key(name)
        };
        let real_ok = |i: &usize| idx.real_meets(*i, dep) && free(i);
        idx.real(&dep.name)
            .find(real_ok)
            .or_else(|| idx.providing(dep).find(free))
    }

    fn select(&mut self, i: usize) {
        let idx: &'a Index = self.index;
        self.selected.insert(idx.packages[i].name.as_str(), i);
        self.queue.push_back(i);
    }
}

/// Renders a group like `libc6 (>= 2.38) | foo:any`.
fn render(group: &[Dep]) -> String {
    let alts: Vec<String> = group
        .iter()
        .map(|d| {
            let mut s = d.name.clone();
            if let Some(arch) = &d.arch {
                s = format!("{s}:{arch}");
            }
            if let Some((rel, v)) = &d.constraint {
                s = format!("{s} ({} {v})", rel.as_str());
            }
            s
        })
        .collect();
    alts.join(" | ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::debian::packages::{parse_provides, parse_relations};

    /// `(name, version, depends, provides)`; Pre-Depends is given as a `pre:` depends prefix.
    const SYNTHETIC: &[(&str, &str, &str, &str)] = &[
        (
            "app",
            "1.0",
            "libc6 (>= 2.38), mta | default-mta, logger (>= 2), cyc-a",
            "",
        ),
        ("libc6", "2.36-1", "", ""),
        ("libc6", "2.41-12", "", ""),
        ("libold", "1", "libc6 (<< 2.40)", ""),
        ("postfix", "3.9", "libc6", "mta"),
        ("dma", "0.13", "libc6:any", "mta"),
        ("rsyslog", "8", "", "logger (= 3)"),
        ("busybox-syslogd", "1.37", "", "logger"),
        ("wants-logger", "1", "logger", ""),
        ("cyc-a", "1", "cyc-b", ""),
        ("cyc-b", "1", "cyc-a (>= 1)", ""),
        (
            "tool",
            "1",
            "pre:init-system-helpers, debconf (>= 0.5) | cdebconf, perl-base",
            "",
        ),
        ("debconf", "1.5", "perl-base", "debconf-2.0"),
        ("cdebconf", "0.2", "", "debconf-2.0"),
        ("init-system-helpers", "1.68", "perl-base", ""),
        ("perl-base", "5.40", "", ""),
        ("needs-debconf", "1", "debconf-2.0", ""),
        ("broken", "1", "ghost (>= 1) | ghost2:any", ""),
        ("fallback", "1", "ghost | libc6 (>= 9) | cdebconf", ""),
    ];

    fn index() -> Index {
        let pkgs = SYNTHETIC.iter().map(|(name, version, deps, provides)| {
            let (pre, deps) = deps
                .strip_prefix("pre:")
                .map_or(("", *deps), |d| d.split_once(',').unwrap_or((d, "")));
            Package {
                name: name.to_string(),
                version: version.to_string(),
                arch: "amd64".into(),
                depends: parse_relations(deps, "Depends", 1).unwrap(),
                pre_depends: parse_relations(pre, "Pre-Depends", 1).unwrap(),
                provides: parse_provides(provides, 1).unwrap(),
                filename: format!("pool/{name}.deb"),
                size: 1,
                sha256: "0".repeat(64),
                essential: false,
                priority: String::new(),
                multi_arch: String::new(),
            }
        });
        Index::new(pkgs.collect())
    }

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn resolve_table() {
        let idx = index();
        let unsat = |package: &str, dependency: &str| ResolveError::Unsatisfiable {
            package: package.into(),
            dependency: dependency.into(),
        };
        let cases: &[(&str, &str, Result<&str, ResolveError>)] = &[
            ("libc6", "", Ok("libc6=2.41-12")),
            ("libold", "", Ok("libc6=2.36-1 libold=1")),
            (
                "app",
                "",
                Ok("app=1.0 cyc-a=1 cyc-b=1 dma=0.13 libc6=2.41-12 rsyslog=8"),
            ),
            (
                "postfix app",
                "",
                Ok("app=1.0 cyc-a=1 cyc-b=1 libc6=2.41-12 postfix=3.9 rsyslog=8"),
            ),
            (
                "wants-logger",
                "",
                Ok("busybox-syslogd=1.37 wants-logger=1"),
            ),
            ("rsyslog wants-logger", "", Ok("rsyslog=8 wants-logger=1")),
            ("cyc-b cyc-b", "", Ok("cyc-a=1 cyc-b=1")),
            ("mta", "", Ok("dma=0.13 libc6=2.41-12")),
            (
                "tool",
                "debconf perl-base init-system-helpers",
                Ok("tool=1"),
            ),
            (
                "tool",
                "",
                Ok("debconf=1.5 init-system-helpers=1.68 perl-base=5.40 tool=1"),
            ),
            (
                "tool",
                "perl-base",
                Ok("debconf=1.5 init-system-helpers=1.68 tool=1"),
            ),
            ("needs-debconf", "debconf", Ok("needs-debconf=1")),
            ("needs-debconf", "", Ok("cdebconf=0.2 needs-debconf=1")),
            ("fallback", "", Ok("cdebconf=0.2 fallback=1")),
            (
                "nope",
                "",
                Err(ResolveError::MissingPackage {
                    name: "nope".into(),
                }),
            ),
            (
                "tool",
                "tool",
                Err(ResolveError::ExcludedRoot {
                    name: "tool".into(),
                }),
            ),
            (
                "broken",
                "",
                Err(unsat("broken", "ghost (>= 1) | ghost2:any")),
            ),
            ("app libold", "", Err(unsat("libold", "libc6 (<< 2.40)"))),
        ];
        for (roots, exclude, want) in cases {
            let got = resolve(&idx, &strings(roots), &strings(exclude)).map(|pkgs| {
                let v: Vec<_> = pkgs
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.version))
                    .collect();
                v.join(" ")
            });
            let want = want.clone().map(str::to_owned);
            assert_eq!(got, want, "roots {roots:?} exclude {exclude:?}");
        }
        assert_eq!(idx.get("libc6").unwrap().version, "2.41-12");
        assert!(idx.get("mta").is_none());
    }

    #[test]
    fn resolves_real_node_set() {
        let Ok(text) = std::fs::read_to_string("/tmp/trixie-Packages") else {
            println!("skipped: /tmp/trixie-Packages absent");
            return;
        };
        let idx = Index::new(crate::debian::packages::parse_packages(&text).unwrap());
        let roots = strings(
            "linux-image-amd64 containerd runc containernetworking-plugins etcd-server \
             etcd-client e2fsprogs nftables iptables conntrack ca-certificates systemd-boot-efi",
        );
        let exclude = strings(
            "initramfs-tools linux-base debconf dpkg perl-base systemd systemd-sysv \
             init-system-helpers adduser",
        );
        let pkgs = resolve(&idx, &roots, &exclude).unwrap();
        let total: u64 = pkgs.iter().map(|p| p.size).sum();
        println!("resolved {} packages, {} bytes of .debs", pkgs.len(), total);
        for p in &pkgs {
            println!("  {} {} {}", p.name, p.version, p.size);
        }
        assert!(pkgs.iter().any(|p| p.name == "libc6"));
        assert!(!pkgs.iter().any(|p| exclude.contains(&p.name)));
    }
}
