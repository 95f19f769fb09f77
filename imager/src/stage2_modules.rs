//! Stage-2 kernel modules: the modules a running node may load on demand (load balancer,
//! container networking) and the depmod-style text `modules.dep` and `modules.softdep`
//! for their dependency closure, which init's `kmod` reads.
//!
//! Debian's linux-image package ships no modules.dep (depmod runs in its postinst, which
//! kiln never runs). Owns the wanted list and the two text formats; finding modules and
//! reading `.modinfo` is [`crate::modules`]' job. It never writes depmod's binary `.bin`
//! indexes, so kmod's own tools (which read only those) do not see these files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::modules::{Kernel, ModDeps, ModuleError};
use crate::spec::Arch;
use crate::tree::{Node, Tree, TreeError};

/// Modules stage 2 may load besides the initramfs ones: IPVS and its schedulers, nftables
/// and iptables NAT/filtering, and what container networking (bridge, veth, vxlan,
/// overlayfs) needs. Built-ins are skipped; names a kernel lacks entirely are an error.
const STAGE2_MODULES: &[&str] = &[
    // IPVS load balancer.
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_sh",
    "ip_vs_mh",
    "nf_conntrack",
    "nf_conntrack_netlink",
    "nf_nat",
    "dummy",
    // nftables.
    "nf_tables",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_chain_nat",
    "nft_compat",
    // iptables (kube-proxy, CNI plugins).
    "xt_MASQUERADE",
    "xt_conntrack",
    "xt_mark",
    "xt_comment",
    "xt_addrtype",
    "xt_nat",
    "xt_statistic",
    "xt_multiport",
    "iptable_nat",
    "iptable_filter",
    "iptable_mangle",
    "ip6table_filter",
    "ip6table_nat",
    "ipt_REJECT",
    "ip6t_REJECT",
    "nf_reject_ipv4",
    // Container networking and storage.
    "veth",
    "bridge",
    "br_netfilter",
    "vxlan",
    "overlay",
    "tun",
];

/// Stage-2 modules plus the initramfs ones (so stage 2 finds those too), sorted, once.
pub fn wanted(arch: Arch) -> Vec<&'static str> {
    let all: BTreeSet<&str> = STAGE2_MODULES
        .iter()
        .copied()
        .chain(crate::initramfs::wanted(arch))
        .collect();
    all.into_iter().collect()
}

#[derive(Debug, thiserror::Error)]
pub enum Stage2Error {
    #[error("stage-2 modules")]
    Modules(#[from] ModuleError),
    #[error("stage-2 modules: dependency cycle through {0}")]
    Cycle(String),
    #[error("stage-2 module {0} is not in the root (removed by drop_modules?)")]
    Dropped(String),
    #[error("write modules.dep")]
    Tree(#[from] TreeError),
}

/// `modules.dep` and `modules.softdep` for one kernel, as text, plus what they list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepFiles {
    /// `usr/lib/modules/<release>`.
    pub dir: String,
    pub dep: String,
    pub softdep: String,
    /// Module files listed, relative to `dir`, sorted.
    pub paths: Vec<String>,
}

/// One module of the closure.
struct Vertex {
    rel: String,
    /// Hard dependencies that are modules (built-ins dropped).
    hard: Vec<String>,
    softdep: Vec<String>,
}

/// The closure of `wanted` over hard dependencies and resolvable soft dependencies,
/// read breadth first so each level's `.modinfo` can be read in parallel.
fn closure(kernel: &Kernel, wanted: &[&str]) -> Result<BTreeMap<String, Vertex>, ModuleError> {
    let mut level = BTreeSet::new();
    for w in wanted {
        let name = kernel
            .resolve_name(w)
            .ok_or_else(|| ModuleError::Missing(w.to_string()))?;
        level.insert(name);
    }
    let mut graph = BTreeMap::new();
    while !level.is_empty() {
        let names: Vec<String> = level
            .into_iter()
            .filter(|n| !graph.contains_key(n) && !kernel.is_builtin(n))
            .collect();
        level = BTreeSet::new();
        for (name, d) in names.iter().zip(deps_parallel(kernel, &names)) {
            let d = d?;
            let rel = kernel
                .rel_path(name)
                .ok_or_else(|| ModuleError::Missing(name.clone()))?
                .to_string();
            let mut hard = Vec::new();
            for h in d.hard.into_iter().filter(|h| !kernel.is_builtin(h)) {
                kernel
                    .rel_path(&h)
                    .ok_or_else(|| ModuleError::Missing(h.clone()))?;
                hard.push(h);
            }
            level.extend(hard.iter().cloned());
            // A soft dependency that names nothing we have is optional by definition.
            level.extend(
                d.pre
                    .iter()
                    .chain(&d.post)
                    .filter_map(|s| kernel.resolve_name(s)),
            );
            let softdep = d.softdep;
            graph.insert(name.clone(), Vertex { rel, hard, softdep });
        }
    }
    Ok(graph)
}

/// [`Kernel::deps`] of each name, in order, on all cores: decompressing the `.ko.xz`
/// files is nearly all the cost of this module. Threads take the next name as they go,
/// since module sizes vary a hundredfold.
fn deps_parallel(kernel: &Kernel, names: &[String]) -> Vec<Result<ModDeps, ModuleError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(name) = names.get(i) else {
                return done;
            };
            done.push((i, kernel.deps(name)));
        }
    };
    let mut all: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(names.len()))
            .map(|_| s.spawn(work))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, d)| d).collect()
}

/// Load order of the whole graph (dependencies first): each module's position in it.
fn load_index(graph: &BTreeMap<String, Vertex>) -> Result<BTreeMap<&str, usize>, Stage2Error> {
    fn visit<'a>(
        name: &'a str,
        graph: &'a BTreeMap<String, Vertex>,
        active: &mut BTreeSet<&'a str>,
        index: &mut BTreeMap<&'a str, usize>,
    ) -> Result<(), Stage2Error> {
        if index.contains_key(name) {
            return Ok(());
        }
        if !active.insert(name) {
            return Err(Stage2Error::Cycle(name.to_string()));
        }
        for d in graph
            .get(name)
            .map(|n| n.hard.as_slice())
            .unwrap_or_default()
        {
            visit(d, graph, active, index)?;
        }
        active.remove(name);
        let n = index.len();
        index.insert(name, n);
        Ok(())
    }
    let mut index = BTreeMap::new();
    let mut active = BTreeSet::new();
    for name in graph.keys() {
        visit(name, graph, &mut active, &mut index)?;
    }
    Ok(index)
}

/// All modules `name` needs, transitively.
fn all_deps<'a>(name: &str, graph: &'a BTreeMap<String, Vertex>) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<&str> = vec![name];
    while let Some(n) = todo.pop() {
        for d in graph.get(n).map(|n| n.hard.as_slice()).unwrap_or_default() {
            if out.insert(d.as_str()) {
                todo.push(d);
            }
        }
    }
    out
}

/// Computes modules.dep and modules.softdep for the closure of `wanted`.
///
/// Like depmod, each line lists a module's full dependency closure ordered so that a
/// module comes before the modules it needs (modprobe loads from the end of the line);
/// soft dependencies go to modules.softdep only. Lines are sorted by path.
pub fn plan(kernel: &Kernel, wanted: &[&str]) -> Result<DepFiles, Stage2Error> {
    let graph = closure(kernel, wanted)?;
    let index = load_index(&graph)?;
    let mut lines: Vec<(String, String)> = Vec::new();
    for (name, node) in &graph {
        let mut deps: Vec<&str> = all_deps(name, &graph).into_iter().collect();
        deps.sort_by_key(|d| std::cmp::Reverse(index.get(d).copied().unwrap_or_default()));
        let mut line = format!("{}:", node.rel);
        for d in deps {
            if let Some(n) = graph.get(d) {
                line.push(' ');
                line.push_str(&n.rel);
            }
        }
        lines.push((node.rel.clone(), line));
    }
    lines.sort();
    let dep = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut softdep = String::from("# Soft dependencies extracted from modules themselves.\n");
    for (name, node) in &graph {
        for v in &node.softdep {
            softdep.push_str(&format!("softdep {name} {v}\n"));
        }
    }
    Ok(DepFiles {
        dir: kernel.dir().to_string(),
        dep,
        softdep,
        paths: lines.into_iter().map(|(p, _)| p).collect(),
    })
}

impl DepFiles {
    /// Adds both files to the root, after checking every listed module is still there.
    pub fn add_to(&self, tree: &mut Tree) -> Result<(), Stage2Error> {
        for p in &self.paths {
            let full = format!("{}/{p}", self.dir);
            if !matches!(tree.get(&full).map(|e| &e.node), Some(Node::File(_))) {
                return Err(Stage2Error::Dropped(p.clone()));
            }
        }
        let dir = &self.dir;
        tree.add_file(
            &format!("{dir}/modules.dep"),
            0o644,
            self.dep.clone().into(),
        )?;
        tree.add_file(
            &format!("{dir}/modules.softdep"),
            0o644,
            self.softdep.clone().into(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "stage2_modules_tests.rs"]
mod tests;
