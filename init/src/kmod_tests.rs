#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::testutil::TempDir;

const REL: &str = "6.12.0-test";

/// A modules.dep as the imager writes it: full closure per line, nearest first.
const DEP: &str = "\
kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz kernel/lib/libcrc32c.ko.xz
kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz kernel/net/netfilter/nf_conntrack.ko.xz kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz kernel/lib/libcrc32c.ko.xz
kernel/net/netfilter/nf_conntrack.ko.xz: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz kernel/lib/libcrc32c.ko.xz
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz:
kernel/lib/libcrc32c.ko.xz:
kernel/drivers/net/dummy.ko:
kernel/net/bridge/br_netfilter.ko.zst: kernel/net/bridge/bridge.ko.zst
kernel/net/bridge/bridge.ko.zst:
";

const BUILTIN: &str = "kernel/fs/overlayfs/overlay.ko\nkernel/drivers/net/tun.ko\n";

/// Fake loader: records (path relative to the release folder, compressed) and fails with
/// a chosen errno per module file name.
#[derive(Default)]
struct FakeLoader {
    base: PathBuf,
    calls: Vec<(String, bool)>,
    errors: Vec<(&'static str, i32)>,
}

impl Loader for FakeLoader {
    fn load(&mut self, path: &Path, compressed: bool) -> io::Result<()> {
        let rel = path.strip_prefix(&self.base).unwrap_or(path);
        self.calls.push((rel.display().to_string(), compressed));
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match self.errors.iter().find(|(n, _)| *n == file) {
            Some((_, errno)) => Err(io::Error::from_raw_os_error(*errno)),
            None => Ok(()),
        }
    }
}

/// A fake root with modules.dep, modules.builtin and the given /sys/module entries.
fn root(sys_modules: &[&str]) -> (TempDir, FakeLoader) {
    let dir = TempDir::new("kmod");
    dir.write(&format!("usr/lib/modules/{REL}/modules.dep"), DEP);
    dir.write(&format!("usr/lib/modules/{REL}/modules.builtin"), BUILTIN);
    for m in sys_modules {
        std::fs::create_dir_all(dir.path().join("sys/module").join(m)).unwrap();
    }
    let loader = FakeLoader {
        base: release_dir(dir.path(), REL),
        ..FakeLoader::default()
    };
    (dir, loader)
}

#[test]
fn parses_good_inputs() {
    /// (text, expected (name, path, deps) per module)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str, &'static [&'static str])],
    );
    let cases: &[Case] = &[
        ("", &[]),
        ("\n# comment\n\n", &[]),
        ("kernel/a.ko:", &[("a", "kernel/a.ko", &[])]),
        (
            "kernel/x/ip-vs.ko.xz:  kernel/b.ko.zst\tkernel/c.ko.gz \r\n",
            &[(
                "ip_vs",
                "kernel/x/ip-vs.ko.xz",
                &["kernel/b.ko.zst", "kernel/c.ko.gz"],
            )],
        ),
        // A module named twice keeps its first line.
        (
            "kernel/a.ko: kernel/b.ko\nextra/a.ko.xz:\n",
            &[("a", "kernel/a.ko", &["kernel/b.ko"])],
        ),
        ("/opt/m/a.ko:", &[("a", "/opt/m/a.ko", &[])]),
    ];
    for (text, want) in cases {
        let got = parse(text).unwrap();
        let want: BTreeMap<String, DepLine> = want
            .iter()
            .map(|(n, p, d)| {
                let line = DepLine {
                    path: p.to_string(),
                    deps: d.iter().map(|s| s.to_string()).collect(),
                };
                (n.to_string(), line)
            })
            .collect();
        assert_eq!(got.modules, want, "{text:?}");
    }
}

#[test]
fn rejects_bad_inputs_with_line_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        ("kernel/a.ko kernel/b.ko", 1, "no colon"),
        ("kernel/a.ko:\n\nkernel/readme.txt:", 3, "not a .ko file"),
        (": kernel/b.ko", 1, "not a .ko file"),
        ("kernel/.ko:", 1, "not a .ko file"),
        ("kernel/a.ko: kernel/b.o", 1, "dependency is not a .ko file"),
    ];
    for (text, want_line, want_reason) in cases {
        match parse(text) {
            Err(KmodError::Parse { line, reason, .. }) => {
                assert_eq!((line, reason), (*want_line, *want_reason), "{text:?}");
            }
            other => panic!("{text:?}: got {other:?}"),
        }
    }
}

#[test]
fn module_names() {
    let cases: &[(&str, Option<(&str, bool)>)] = &[
        ("kernel/net/ip-vs-rr.ko.xz", Some(("ip_vs_rr", true))),
        ("kernel/fs/ext4/ext4.ko", Some(("ext4", false))),
        ("a.ko.zst", Some(("a", true))),
        ("a.ko.gz", Some(("a", true))),
        ("a.ko.bz2", None),
        ("a.o", None),
        (".ko", None),
    ];
    for (path, want) in cases {
        let got = module_name(path);
        assert_eq!(got.as_ref().map(|(n, c)| (n.as_str(), *c)), *want, "{path}");
    }
}

#[test]
fn load_order_is_the_line_reversed_then_the_module() {
    let deps = parse(DEP).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("kernel/lib/libcrc32c.ko.xz", &[]),
        (
            "ip-vs-rr",
            &[
                "kernel/lib/libcrc32c.ko.xz",
                "kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz",
                "kernel/net/netfilter/nf_conntrack.ko.xz",
                "kernel/net/netfilter/ipvs/ip_vs.ko.xz",
                "kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz",
            ],
        ),
        ("dummy", &["kernel/drivers/net/dummy.ko"]),
    ];
    for (name, want) in cases {
        let got = deps.load_order(name);
        if want.is_empty() {
            assert_eq!(got, None, "{name}");
        } else {
            assert_eq!(got.unwrap(), *want, "{name}");
        }
    }
}

#[test]
fn load_table() {
    // (names, /sys/module entries, expected finit calls (path, compressed), returned names)
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        &'static [(&'static str, bool)],
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            &["ip_vs"],
            &[],
            &[
                ("kernel/lib/libcrc32c.ko.xz", true),
                ("kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz", true),
                ("kernel/net/netfilter/nf_conntrack.ko.xz", true),
                ("kernel/net/netfilter/ipvs/ip_vs.ko.xz", true),
            ],
            &["libcrc32c", "nf_defrag_ipv6", "nf_conntrack", "ip_vs"],
        ),
        // Already loaded modules (and built-ins with parameters) are skipped; each module
        // is loaded once per call even when several names need it.
        (
            &["ip-vs", "ip_vs_rr", "dummy"],
            &["libcrc32c", "nf_conntrack"],
            &[
                ("kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz", true),
                ("kernel/net/netfilter/ipvs/ip_vs.ko.xz", true),
                ("kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz", true),
                ("kernel/drivers/net/dummy.ko", false),
            ],
            &["nf_defrag_ipv6", "ip_vs", "ip_vs_rr", "dummy"],
        ),
        // Built-ins need no loading and no modules.dep line.
        (&["overlay", "tun"], &[], &[], &[]),
        (&["br_netfilter"], &["br_netfilter"], &[], &[]),
        (
            &["br_netfilter"],
            &[],
            &[
                ("kernel/net/bridge/bridge.ko.zst", true),
                ("kernel/net/bridge/br_netfilter.ko.zst", true),
            ],
            &["bridge", "br_netfilter"],
        ),
    ];
    for (names, sys, calls, loaded) in cases {
        let (dir, mut loader) = root(sys);
        let got = load(names, dir.path(), REL, &mut loader).unwrap();
        let want_calls: Vec<(String, bool)> =
            calls.iter().map(|(p, c)| (p.to_string(), *c)).collect();
        assert_eq!(loader.calls, want_calls, "{names:?}");
        assert_eq!(got, *loaded, "{names:?}");
    }
}

#[test]
fn eexist_counts_as_loaded_and_other_errors_stop_with_the_module_named() {
    let (dir, mut loader) = root(&[]);
    loader.errors = vec![("nf_conntrack.ko.xz", libc::EEXIST)];
    let got = load(&["nf_conntrack"], dir.path(), REL, &mut loader).unwrap();
    assert_eq!(got, ["libcrc32c", "nf_defrag_ipv6", "nf_conntrack"]);

    let (dir, mut loader) = root(&[]);
    loader.errors = vec![("nf_defrag_ipv6.ko.xz", libc::ENOEXEC)];
    let err = load(&["ip_vs", "dummy"], dir.path(), REL, &mut loader).unwrap_err();
    assert_eq!(loader.calls.len(), 2, "stops at the first failure");
    assert_eq!(
        crate::chain::error_chain(&err),
        format!(
            "load nf_defrag_ipv6 (kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.xz): {}",
            io::Error::from_raw_os_error(libc::ENOEXEC)
        )
    );
}

#[test]
fn missing_module_and_missing_files_name_what_is_missing() {
    let (dir, mut loader) = root(&[]);
    let err = load(&["dummy", "ip-vs-nope"], dir.path(), REL, &mut loader).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module ip_vs_nope not found in modules.dep of 6.12.0-test"
    );
    assert!(
        loader.calls.is_empty(),
        "nothing loaded when a name is unknown"
    );

    let err = load(&["dummy"], dir.path(), "7.0", &mut loader).unwrap_err();
    match err {
        KmodError::Read { path, source } => {
            assert!(
                path.ends_with("usr/lib/modules/7.0/modules.dep"),
                "{path:?}"
            );
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }

    // No modules.builtin is fine: nothing is built in.
    std::fs::remove_file(release_dir(dir.path(), REL).join("modules.builtin")).unwrap();
    let err = load(&["tun"], dir.path(), REL, &mut loader).unwrap_err();
    assert!(matches!(err, KmodError::NotFound { .. }), "{err:?}");
}

#[test]
fn running_release_is_trimmed() {
    let dir = TempDir::new("kmod-release");
    dir.write("proc/sys/kernel/osrelease", "6.12.38+deb13-amd64\n");
    assert_eq!(running_release(dir.path()).unwrap(), "6.12.38+deb13-amd64");
    assert!(matches!(
        running_release(&dir.path().join("nope")),
        Err(KmodError::Read { .. })
    ));
}
