//! kubeadm, kubelet and kubectl from a fake release server (with `.sha256` files) or a
//! local folder, manifests by URL and digest, the lock entries and `--locked`.

mod kubernetes_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kiln_imager::kubernetes::{bake, Baked, KubeError, Pins};
use kiln_imager::lock::{self, Lock, LockedBinary, LockedImage};
use kiln_imager::spec::Arch;
use kiln_imager::tree::{Node, Tree};
use kubernetes_common::{case_dir, kube, sha256_hex, FakeServer, Response};

const NAMES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];
const MANIFEST: &[u8] = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kiln\n";

fn content(name: &str, arch: &str) -> Vec<u8> {
    format!("#!/bin/true {name} {arch}\n").into_bytes()
}

/// A release server for v1.34.2 (amd64 and arm64) and one manifest; `sums` overrides the
/// `.sha256` file of a binary (`None` removes the binary and its sum).
fn release_server(sums: BTreeMap<&'static str, Option<String>>) -> FakeServer {
    FakeServer::start(move |_, req| {
        if req.path == "/manifests/ns.yaml" {
            return Response::ok(MANIFEST);
        }
        let Some(rest) = req.path.strip_prefix("/release/v1.34.2/bin/linux/") else {
            return Response::status(404);
        };
        let Some((arch, file)) = rest.split_once('/') else {
            return Response::status(404);
        };
        let (name, sum) = match file.strip_suffix(".sha256") {
            Some(n) => (n, true),
            None => (file, false),
        };
        let data = content(name, arch);
        match (NAMES.contains(&name), sums.get(name), sum) {
            (false, _, _) | (_, Some(None), _) => Response::status(404),
            (_, Some(Some(s)), true) => Response::ok(s.clone()),
            (_, _, true) => Response::ok(format!("{}\n", sha256_hex(&data))),
            (_, _, false) => Response::ok(data),
        }
    })
}

fn section(s: &FakeServer) -> String {
    format!(
        "version = \"v1.34.2\"\nbinaries = \"{}/release/{{version}}/bin/linux/{{arch}}\"\nimages = []\n",
        s.url
    )
}

fn run(section: &str, arch: Arch, cache: &Path, pins: &Pins) -> Result<(Baked, Tree), KubeError> {
    let k = kube(section);
    let mut tree = Tree::new();
    bake(Some(&k), arch, &mut tree, cache, pins).map(|b| (b, tree))
}

fn no_pins() -> Pins {
    Pins::new(None, "none", false)
}

fn lock_of(b: &Baked) -> Lock {
    Lock {
        version: lock::VERSION,
        suite: "trixie".into(),
        arch: "amd64".into(),
        packages: vec![],
        artifacts: b.artifacts.clone(),
        kubernetes_binaries: b.binaries.clone(),
        kubernetes_images: b.images.clone(),
    }
}

#[test]
fn downloads_are_verified_cached_and_pinned() {
    let s = release_server(BTreeMap::new());
    let cache = case_dir("download");
    let (baked, tree) =
        run(&section(&s), Arch::X86_64, &cache, &no_pins()).unwrap_or_else(|e| panic!("{e}"));
    let base = format!("{}/release/v1.34.2/bin/linux/amd64", s.url);
    let want: Vec<LockedBinary> = NAMES
        .iter()
        .map(|n| LockedBinary {
            name: n.to_string(),
            url: format!("{base}/{n}"),
            sha256: sha256_hex(&content(n, "amd64")),
        })
        .collect();
    assert_eq!(baked.binaries, want);
    for n in NAMES {
        let e = tree
            .get(&format!("usr/bin/{n}"))
            .unwrap_or_else(|| panic!("no {n}"));
        assert_eq!(
            (e.mode, &e.node),
            (0o755, &Node::File(Arc::new(content(n, "amd64"))))
        );
    }
    let fetched: Vec<String> = NAMES
        .iter()
        .flat_map(|n| {
            [
                format!("/release/v1.34.2/bin/linux/amd64/{n}.sha256"),
                format!("/release/v1.34.2/bin/linux/amd64/{n}"),
            ]
        })
        .collect();
    assert_eq!(s.paths(), fetched);

    // Warm cache: only the published digests are asked for.
    s.clear();
    run(&section(&s), Arch::X86_64, &cache, &no_pins()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        s.paths().iter().all(|p| p.ends_with(".sha256")),
        "{:?}",
        s.paths()
    );
    // Pinned by the lock (and --locked): nothing is asked for at all.
    s.clear();
    let pins = Pins::new(Some(&lock_of(&baked)), "k.lock", true);
    let (again, _) =
        run(&section(&s), Arch::X86_64, &cache, &pins).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again, s.paths()), (baked, vec![]));

    // arm64 specs fetch arm64 binaries.
    let (arm, _) =
        run(&section(&s), Arch::Aarch64, &cache, &no_pins()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        arm.binaries[0].url,
        format!("{}/release/v1.34.2/bin/linux/arm64/kubeadm", s.url)
    );
    assert_eq!(
        arm.binaries[0].sha256,
        sha256_hex(&content("kubeadm", "arm64"))
    );
}

#[test]
fn bad_release_files_fail_naming_url_and_cause() {
    let wrong = "ab".repeat(32);
    let cases: [(&str, Option<String>, String); 3] = [
        (
            "kubelet",
            Some(format!("{wrong}  kubelet\n")),
            format!(
                "sha256 mismatch for kubelet: expected {wrong} got {}",
                sha256_hex(&content("kubelet", "amd64"))
            ),
        ),
        (
            "kubelet",
            Some("<html>not found</html>".into()),
            "{base}/kubelet.sha256: not a sha256 digest file".into(),
        ),
        (
            "kubectl",
            None,
            "GET {base}/kubectl.sha256: HTTP status 404".into(),
        ),
    ];
    for (name, sum, want) in cases {
        let s = release_server(BTreeMap::from([(name, sum)]));
        let base = format!("{}/release/v1.34.2/bin/linux/amd64", s.url);
        let cache = case_dir("bad-release");
        let e = run(&section(&s), Arch::X86_64, &cache, &no_pins())
            .err()
            .map(|e| e.to_string());
        assert_eq!(e, Some(want.replace("{base}", &base)));
        // Nothing unverified is cached.
        let cached = cache.join("sha256").join(&wrong[..2]).join(&wrong);
        assert!(!cached.exists());
    }
}

#[test]
fn local_folder_and_locked_mismatches() {
    let dir = case_dir("local-bins");
    for n in NAMES {
        std::fs::write(dir.join(n), content(n, "local")).unwrap_or_else(|e| panic!("{e}"));
    }
    let text = format!(
        "version = \"v1.34.2\"\nbinaries = \"{}\"\nimages = []\n",
        dir.display()
    );
    let cache = case_dir("local-cache");
    let (baked, tree) =
        run(&text, Arch::X86_64, &cache, &no_pins()).unwrap_or_else(|e| panic!("{e}"));
    let kubeadm = dir.join("kubeadm").display().to_string();
    let local = sha256_hex(&content("kubeadm", "local"));
    assert_eq!(
        baked.binaries[0],
        LockedBinary {
            name: "kubeadm".into(),
            url: kubeadm.clone(),
            sha256: local.clone()
        }
    );
    assert_eq!(tree.get("usr/bin/kubelet").map(|e| e.mode), Some(0o755));

    let mut lock = lock_of(&baked);
    let locked = |l: &Lock| {
        run(
            &text,
            Arch::X86_64,
            &cache,
            &Pins::new(Some(l), "k.lock", true),
        )
        .err()
        .map(|e| e.to_string())
    };
    assert_eq!(locked(&lock), None);
    lock.kubernetes_binaries[0].sha256 = "0".repeat(64);
    assert_eq!(
        locked(&lock),
        Some(format!(
            "sha256 mismatch for kubeadm: expected {} got {local}",
            "0".repeat(64)
        ))
    );
    lock.kubernetes_binaries.remove(0);
    assert_eq!(
        locked(&lock),
        Some(format!(
            "--locked: kubernetes binary kubeadm from {kubeadm} is not in the lock file k.lock"
        ))
    );
    let mut extra = lock_of(&baked);
    extra.kubernetes_images.push(LockedImage {
        reference: "docker.io/x/y:1".into(),
        digest: format!("sha256:{local}"),
        index_digest: None,
    });
    assert_eq!(locked(&extra), Some("--locked: the lock file k.lock pins kubernetes image docker.io/x/y:1, which the spec no longer names".into()));
    // No [kubernetes] at all, but the lock pins some: --locked refuses too.
    let e = bake(
        None,
        Arch::X86_64,
        &mut Tree::new(),
        &cache,
        &Pins::new(Some(&extra), "k.lock", true),
    )
    .err();
    assert_eq!(e.map(|e| e.to_string()), Some(format!("--locked: the lock file k.lock pins kubernetes binary kubeadm from {kubeadm}, which the spec no longer names")));
}

#[test]
fn manifests_by_url_and_path() {
    let s = release_server(BTreeMap::new());
    let dir = case_dir("manifests");
    let local = dir.join("cni.yaml");
    std::fs::write(&local, b"kind: List\n").unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}/manifests/ns.yaml", s.url);
    let good = sha256_hex(MANIFEST);
    let text = |sha: &str| {
        format!(
            "{}manifests = [\"{}\", {{ url = \"{url}\", sha256 = \"{sha}\" }}]\n",
            section(&s),
            local.display()
        )
    };
    let (baked, tree) = run(
        &text(&good),
        Arch::X86_64,
        &case_dir("manifests-cache"),
        &no_pins(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dests: Vec<_> = baked
        .artifacts
        .iter()
        .map(|a| (a.dest.as_str(), a.source.as_str()))
        .collect();
    let local_s = local.display().to_string();
    assert_eq!(
        dests,
        [
            ("/usr/share/kiln/manifests/cni.yaml", local_s.as_str()),
            ("/usr/share/kiln/manifests/ns.yaml", url.as_str())
        ]
    );
    let ns = tree
        .get("usr/share/kiln/manifests/ns.yaml")
        .map(|e| e.node.clone());
    assert_eq!(ns, Some(Node::File(Arc::new(MANIFEST.to_vec()))));
    let bad = "1".repeat(64);
    let e = run(
        &text(&bad),
        Arch::X86_64,
        &case_dir("manifests-cache2"),
        &no_pins(),
    )
    .err()
    .map(|e| e.to_string());
    assert_eq!(
        e,
        Some(format!(
            "sha256 mismatch for manifest {url}: expected {bad} got {good}"
        ))
    );
}

#[test]
fn lock_round_trip_with_kubernetes_entries() {
    let mut l = Lock {
        version: lock::VERSION,
        suite: "trixie".into(),
        arch: "amd64".into(),
        packages: vec![],
        artifacts: vec![],
        kubernetes_binaries: vec![LockedBinary {
            name: "kubeadm".into(),
            url: "https://dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm".into(),
            sha256: "a".repeat(64),
        }],
        kubernetes_images: vec![
            LockedImage {
                reference: "registry.k8s.io/pause:3.10.1".into(),
                digest: format!("sha256:{}", "b".repeat(64)),
                index_digest: Some(format!("sha256:{}", "c".repeat(64))),
            },
            LockedImage {
                reference: "docker.io/x/y:1".into(),
                digest: format!("sha256:{}", "d".repeat(64)),
                index_digest: None,
            },
        ],
    };
    let text = lock::render(&l);
    assert!(
        text.contains("[[kubernetes_binary]]")
            && text.contains("ref = \"registry.k8s.io/pause:3.10.1\""),
        "{text}"
    );
    assert_eq!(lock::parse(&text, "k").unwrap_or_else(|e| panic!("{e}")), l);
    // A lock without Kubernetes writes no such tables.
    l.kubernetes_binaries.clear();
    l.kubernetes_images.clear();
    assert!(!lock::render(&l).contains("kubernetes"));
}
