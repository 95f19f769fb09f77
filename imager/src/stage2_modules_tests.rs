#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::modules::tests::{fake_ko, xz};

const DIR: &str = "usr/lib/modules/6.12.0-test";

/// Modules as (path under kernel/, modinfo fields); `.xz` ones are compressed.
const MODS: &[(&str, &[&str])] = &[
    ("net/a.ko.xz", &["depends=b,c"]),
    ("net/b.ko.xz", &["depends=c"]),
    ("net/c.ko.xz", &["depends="]),
    ("net/d.ko", &["depends=in_kernel,c"]),
    (
        "net/e.ko.xz",
        &["depends=", "softdep=pre: crypto-crc32c post: f not_here"],
    ),
    ("net/f.ko.xz", &["depends=a"]),
    ("net/ip-vs-x.ko.xz", &["depends=d"]),
    ("crypto/crc32c_generic.ko.xz", &["alias=crc32c", "depends="]),
    ("net/broken.ko.xz", &["depends=gone"]),
    ("net/cyc1.ko.xz", &["depends=cyc2"]),
    ("net/cyc2.ko.xz", &["depends=cyc1"]),
    ("net/unused.ko.xz", &["depends="]),
];

fn tree() -> Tree {
    let mut t = Tree::new();
    for (p, info) in MODS {
        let ko = fake_ko(info);
        let data = if p.ends_with(".xz") { xz(&ko) } else { ko };
        t.add_file(&format!("{DIR}/kernel/{p}"), 0o644, data)
            .unwrap();
    }
    let builtin = "kernel/net/in_kernel.ko\n";
    t.add_file(&format!("{DIR}/modules.builtin"), 0o644, builtin.into())
        .unwrap();
    t
}

#[test]
fn dep_lines_table() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["c"], "kernel/net/c.ko.xz:\n"),
        (
            &["a"],
            "kernel/net/a.ko.xz: kernel/net/b.ko.xz kernel/net/c.ko.xz\n\
             kernel/net/b.ko.xz: kernel/net/c.ko.xz\n\
             kernel/net/c.ko.xz:\n",
        ),
        // Built-ins are neither lines nor dependencies; uncompressed paths stay as they are.
        (
            &["d", "in_kernel"],
            "kernel/net/c.ko.xz:\nkernel/net/d.ko: kernel/net/c.ko.xz\n",
        ),
        // Dashes and underscores name the same module; depth-2 closure, nearest first.
        (
            &["ip_vs_x"],
            "kernel/net/c.ko.xz:\n\
             kernel/net/d.ko: kernel/net/c.ko.xz\n\
             kernel/net/ip-vs-x.ko.xz: kernel/net/d.ko kernel/net/c.ko.xz\n",
        ),
        // Soft dependencies join the closure (alias resolved) but not the dep lines.
        (
            &["e"],
            "kernel/crypto/crc32c_generic.ko.xz:\n\
             kernel/net/a.ko.xz: kernel/net/b.ko.xz kernel/net/c.ko.xz\n\
             kernel/net/b.ko.xz: kernel/net/c.ko.xz\n\
             kernel/net/c.ko.xz:\n\
             kernel/net/e.ko.xz:\n\
             kernel/net/f.ko.xz: kernel/net/a.ko.xz kernel/net/b.ko.xz kernel/net/c.ko.xz\n",
        ),
    ];
    for (want, dep) in cases {
        let files = plan(&k, want).unwrap();
        assert_eq!(files.dep, *dep, "{want:?}");
        assert_eq!(files.dir, DIR);
        let paths: Vec<String> = dep
            .lines()
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(files.paths, paths, "{want:?}");
    }
}

#[test]
fn softdep_file_keeps_raw_values() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    assert_eq!(
        plan(&k, &["e"]).unwrap().softdep,
        "# Soft dependencies extracted from modules themselves.\n\
         softdep e pre: crypto-crc32c post: f not_here\n"
    );
    assert_eq!(
        plan(&k, &["a"]).unwrap().softdep,
        "# Soft dependencies extracted from modules themselves.\n"
    );
}

#[test]
fn deterministic_whatever_the_wanted_order() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    let one = plan(&k, &["ip-vs-x", "e", "a"]).unwrap();
    let two = plan(&k, &["a", "e", "ip_vs_x", "a"]).unwrap();
    assert_eq!(one, two);
}

/// Every line's dependencies are ordered users before what they use, so loading the line
/// from the end never loads a module before its own dependencies.
#[test]
fn every_line_loads_from_the_end() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    let files = plan(&k, &["ip-vs-x", "e", "a", "d"]).unwrap();
    let deps: BTreeMap<&str, Vec<&str>> = files
        .dep
        .lines()
        .map(|l| {
            let (m, d) = l.split_once(':').unwrap();
            (m, d.split_whitespace().collect())
        })
        .collect();
    for (m, line) in &deps {
        for (i, d) in line.iter().enumerate() {
            for dd in &deps[d] {
                assert!(line[i + 1..].contains(dd), "{m}: {dd} after {d}");
            }
        }
    }
}

#[test]
fn errors() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["nope"],
            "kernel module nope not found (neither a module nor built in)",
        ),
        (
            &["broken"],
            "kernel module gone not found (neither a module nor built in)",
        ),
    ];
    for (want, text) in cases {
        match plan(&k, want) {
            Err(Stage2Error::Modules(e)) => assert_eq!(e.to_string(), *text, "{want:?}"),
            other => panic!("{want:?}: {other:?}"),
        }
    }
    assert!(matches!(plan(&k, &["cyc1"]), Err(Stage2Error::Cycle(_))));
}

#[test]
fn add_to_writes_both_files_and_refuses_dropped_modules() {
    let t = tree();
    let files = plan(&Kernel::find(&t).unwrap(), &["a"]).unwrap();
    let mut root = t.clone();
    files.add_to(&mut root).unwrap();
    for (name, text) in [
        ("modules.dep", &files.dep),
        ("modules.softdep", &files.softdep),
    ] {
        match root.get(&format!("{DIR}/{name}")).map(|e| &e.node) {
            Some(Node::File(d)) => assert_eq!(d.as_slice(), text.as_bytes()),
            other => panic!("{name}: {other:?}"),
        }
    }
    let mut dropped = t.clone();
    crate::rootfs::drop_modules(&mut dropped, "6.12.0-test", &["net/b.ko.xz".into()]);
    match files.add_to(&mut dropped) {
        Err(Stage2Error::Dropped(p)) => assert_eq!(p, "kernel/net/b.ko.xz"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wanted_list_is_sorted_unique_and_includes_the_initramfs() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let w = wanted(arch);
        assert!(w.windows(2).all(|p| p[0] < p[1]), "{arch:?}");
        for m in crate::initramfs::wanted(arch).iter().chain(STAGE2_MODULES) {
            assert!(w.contains(m), "{arch:?}: {m}");
        }
    }
}
