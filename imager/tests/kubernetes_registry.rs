//! The OCI distribution client against an in-process fake registry (index → platform
//! manifest → config + 2 layers, behind an anonymous bearer token): the request flow,
//! digest checks, errors, the registry mirror, lock pins and `--locked`. The archive it
//! writes is checked in `kubernetes_layout.rs`.

mod kubernetes_common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kiln_imager::kubernetes::reference::ImageRef;
use kiln_imager::kubernetes::registry::{self, Registry};
use kiln_imager::kubernetes::{http::Http, Pins};
use kiln_imager::lock::{Lock, LockedImage};
use kiln_imager::spec::Arch;
use kiln_imager::tree::{Node, Tree};
use kubernetes_common::registry::{bin_dir, fixture, image_ref, oci, serve};
use kubernetes_common::{case_dir, kube};

#[test]
fn follows_token_index_manifest_blob_flow() {
    for (list_type, manifest_type) in [
        (registry::OCI_INDEX, registry::OCI_MANIFEST),
        (registry::DOCKER_LIST, registry::DOCKER_MANIFEST),
    ] {
        let f = fixture(list_type, manifest_type);
        let (index_digest, want) = (f.index.0.clone(), f.amd64.clone());
        let s = serve(f, None, Arc::default());
        let (r, http, cache) = (image_ref(&s), Http::new(), case_dir("flow"));
        let p = Registry::new(&http, &cache)
            .pull(&r, &s.url, "amd64", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.index_digest.as_deref(), Some(index_digest.as_str()));
        assert_eq!(p.manifest.digest, want[0]);
        assert_eq!(p.manifest.media_type, manifest_type);
        let got: Vec<_> = p.blobs.iter().map(|b| b.digest.clone()).collect();
        assert_eq!(got, want[1..]);
        let reqs = s.requests();
        let paths: Vec<_> = reqs.iter().map(|r| r.path.as_str()).collect();
        let m = |d: &str| format!("/v2/kiln/app/manifests/{d}");
        let b = |d: &str| format!("/v2/kiln/app/blobs/{d}");
        let token = "/token?service=fake&scope=repository%3Akiln%2Fapp%3Apull".to_string();
        let expected = [
            m("v1"),
            token,
            m("v1"),
            m(&want[0]),
            b(&want[1]),
            b(&want[2]),
            b(&want[3]),
        ];
        assert_eq!(paths, expected, "{list_type}");
        for r in &reqs[2..] {
            assert_eq!(
                r.header("authorization"),
                Some("Bearer t0k3n"),
                "{}",
                r.path
            );
        }
        let accept = reqs[0].header("accept").unwrap_or_default();
        for t in [
            registry::OCI_INDEX,
            registry::OCI_MANIFEST,
            registry::DOCKER_LIST,
        ] {
            assert!(accept.contains(t), "Accept {accept:?} lacks {t}");
        }
        // arm64 picks the v8 manifest; a warm cache still resolves the tag.
        s.clear();
        let p = Registry::new(&http, &cache)
            .pull(&r, &s.url, "arm64", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(p.manifest.digest, want[0]);
        let c: serde_json::Value = serde_json::from_slice(&p.blobs[0].data).unwrap_or_default();
        assert_eq!(c["architecture"], "arm64");
    }
}

#[test]
fn corrupted_blob_names_its_digest() {
    let f = oci();
    let bad = f.amd64[3].clone();
    let s = serve(f, Some(bad.clone()), Arc::default());
    let cache = case_dir("corrupt");
    let Err(e) = Registry::new(&Http::new(), &cache).pull(&image_ref(&s), &s.url, "amd64", None)
    else {
        panic!("a corrupted layer was accepted")
    };
    let e = e.to_string();
    let want = format!(
        "sha256 mismatch for {} blob {bad}: expected {bad} got sha256:",
        image_ref(&s)
    );
    assert!(e.starts_with(&want), "{e}");
    // Nothing unverified entered the cache.
    assert!(!cache
        .join("sha256")
        .join(&bad[7..9])
        .join(&bad[7..])
        .exists());
}

#[test]
fn errors_name_url_and_cause() {
    let basic = Arc::new(AtomicBool::new(false));
    let s = serve(oci(), None, basic.clone());
    let (http, cache) = (Http::new(), case_dir("errors"));
    let r = ImageRef::parse(format!(
        "{}/kiln/app:v9",
        s.url.trim_start_matches("http://")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let e = Registry::new(&http, &cache)
        .pull(&r, &s.url, "amd64", None)
        .err();
    let url = format!("{}/v2/kiln/app/manifests/v9", s.url);
    assert_eq!(
        e.map(|e| e.to_string()),
        Some(format!("GET {url}: HTTP status 404"))
    );
    let e = Registry::new(&http, &cache)
        .pull(&image_ref(&s), &s.url, "riscv64", None)
        .err();
    let want = format!(
        "{}: no linux/riscv64 image (has linux/amd64, linux/arm64, unknown/unknown)",
        image_ref(&s)
    );
    assert_eq!(e.map(|e| e.to_string()), Some(want));
    basic.store(true, Ordering::SeqCst);
    let e = Registry::new(&http, &cache)
        .pull(&image_ref(&s), &s.url, "amd64", None)
        .err();
    let want = format!("{}/v2/kiln/app/manifests/v1: the registry wants credentials (\"Basic\"); only anonymous pulls are supported", s.url);
    assert_eq!(e.map(|e| e.to_string()), Some(want));
}

#[test]
fn mirror_lock_pins_and_locked() {
    let f = oci();
    let (index_digest, want) = (f.index.0.clone(), f.amd64.clone());
    let s = serve(f, None, Arc::default());
    let section = format!(
        "version = \"v1.34.2\"\nbinaries = \"{}\"\nregistry = \"{}\"\nimages = [\"registry.k8s.io/kiln/app:v1\"]\n",
        bin_dir("mirror-bins").display(),
        s.url
    );
    let k = kube(&section);
    let bake = |cache: &Path, pins: &Pins| {
        let mut tree = Tree::new();
        kiln_imager::kubernetes::bake(Some(&k), Arch::X86_64, &mut tree, cache, pins)
            .map(|b| (b, tree))
    };
    let (baked, tree) = bake(&case_dir("mirror"), &Pins::new(None, "none", false))
        .unwrap_or_else(|e| panic!("{e}"));
    let pinned = LockedImage {
        reference: "registry.k8s.io/kiln/app:v1".into(),
        digest: want[0].clone(),
        index_digest: Some(index_digest),
    };
    assert_eq!(baked.images, std::slice::from_ref(&pinned));
    let Some(Node::File(tar)) = tree
        .get("usr/share/kiln/images/app_v1.tar")
        .map(|e| &e.node)
    else {
        panic!("no archive in the tree")
    };
    let index = tar::Archive::new(tar.as_slice())
        .entries()
        .ok()
        .and_then(|mut es| {
            es.find(|e| {
                e.as_ref()
                    .ok()
                    .and_then(|e| e.path().ok())
                    .is_some_and(|p| p == Path::new("index.json"))
            })
        })
        .and_then(|e| e.ok())
        .and_then(|e| serde_json::from_reader::<_, serde_json::Value>(e).ok())
        .unwrap_or_default();
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "registry.k8s.io/kiln/app:v1"
    );

    // Pinned: fetched by the locked digest, never by tag (fresh cache to see requests).
    let mut lock = Lock {
        version: 1,
        suite: "trixie".into(),
        arch: "amd64".into(),
        packages: vec![],
        artifacts: vec![],
        kubernetes_binaries: baked.binaries.clone(),
        kubernetes_images: baked.images.clone(),
    };
    s.clear();
    let (again, _) = bake(
        &case_dir("mirror-pinned"),
        &Pins::new(Some(&lock), "k.lock", true),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, baked);
    assert!(
        !s.paths().iter().any(|p| p.ends_with("/manifests/v1")),
        "{:?}",
        s.paths()
    );

    // --locked refuses an image the lock does not name, and a pin the spec dropped.
    lock.kubernetes_images[0].reference = "registry.k8s.io/kiln/app:v0".into();
    let e = bake(
        &case_dir("mirror-locked"),
        &Pins::new(Some(&lock), "k.lock", true),
    )
    .err()
    .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "--locked: kubernetes image registry.k8s.io/kiln/app:v1 is not in the lock file k.lock"
        )
    );
    lock.kubernetes_images.insert(0, pinned);
    let e = bake(
        &case_dir("mirror-locked"),
        &Pins::new(Some(&lock), "k.lock", true),
    )
    .err()
    .map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("--locked: the lock file k.lock pins kubernetes image registry.k8s.io/kiln/app:v0, which the spec no longer names"));
}
