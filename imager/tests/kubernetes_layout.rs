//! The OCI layout archive of a pulled image, checked by tools we did not write: GNU tar
//! (order, owners, dates), Python's tarfile/json/hashlib (digests, index.json annotations,
//! manifest references) and skopeo when the host has it (inspect and a verifying copy).
//! `ctr images import` runs only where a containerd does (not on the build host; the QEMU
//! tier imports baked archives on a node).

mod kubernetes_common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use kiln_imager::kubernetes::registry::Registry;
use kiln_imager::kubernetes::{http::Http, layout, Pins};
use kiln_imager::spec::Arch;
use kiln_imager::tree::{Node, Tree};
use kubernetes_common::registry::{bin_dir, image_ref, oci, serve};
use kubernetes_common::{case_dir, kube, which};

/// The paths in the archive, per GNU tar, with owner and date (`tar -tv --numeric-owner`).
fn gnu_tar_listing(path: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .args(["-tv", "--numeric-owner", "--full-time", "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .map(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            assert_eq!((f[1], f[3], f[4]), ("0/0", "1970-01-01", "00:00:00"), "{l}");
            f[5].to_string()
        })
        .collect()
}

/// Python's tarfile/json/hashlib: every blob hashes to its name, index.json names the
/// manifest under both annotations, the manifest's config and layers are all there.
const PY_CHECK: &str = r#"
import hashlib, json, sys, tarfile
t = tarfile.open(sys.argv[1])
files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
blobs = {n[len("blobs/sha256/"):]: d for n, d in files.items() if n.startswith("blobs/sha256/")}
for hexd, d in blobs.items():
    assert hashlib.sha256(d).hexdigest() == hexd, hexd
(m,) = json.loads(files["index.json"])["manifests"]
ann = m["annotations"]
assert ann["io.containerd.image.name"] == sys.argv[2] == ann["org.opencontainers.image.ref.name"], ann
man = json.loads(blobs[m["digest"][7:]])
assert len(blobs[m["digest"][7:]]) == m["size"]
for d in [man["config"]] + man["layers"]:
    assert len(blobs[d["digest"][7:]]) == d["size"], d
print(m["digest"])
"#;

#[test]
fn archive_is_a_valid_deterministic_oci_layout() {
    let f = oci();
    let want = f.amd64.clone();
    let s = serve(f, None, Arc::default());
    let (http, cache, dir) = (Http::new(), case_dir("layout-cache"), case_dir("layout"));
    let r = image_ref(&s);
    let p = Registry::new(&http, &cache)
        .pull(&r, &s.url, "amd64", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let tar =
        layout::archive(&r.to_string(), &p.manifest, &p.blobs).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(r.archive_name());
    std::fs::write(&path, &tar).unwrap_or_else(|e| panic!("{e}"));

    let mut names: Vec<String> = want
        .iter()
        .map(|d| format!("blobs/sha256/{}", &d[7..]))
        .collect();
    names.sort();
    let mut expected = vec!["blobs/".to_string(), "blobs/sha256/".to_string()];
    expected.extend(names);
    expected.extend(["index.json".to_string(), "oci-layout".to_string()]);
    assert_eq!(gnu_tar_listing(&path), expected);

    match which("python3") {
        Some(py) => {
            let out = Command::new(py)
                .args(["-c", PY_CHECK])
                .arg(&path)
                .arg(r.to_string())
                .output();
            let out = out.unwrap_or_else(|e| panic!("python3: {e}"));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want[0]);
        }
        None => kubernetes_common::skip("layout check with python3: not on PATH"),
    }
    match which("skopeo") {
        Some(sk) => {
            let out = Command::new(&sk)
                .arg("inspect")
                .arg(format!("oci-archive:{}", path.display()))
                .output();
            let out = out.unwrap_or_else(|e| panic!("skopeo: {e}"));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            assert_eq!(
                (v["Digest"].as_str(), v["Architecture"].as_str()),
                (Some(want[0].as_str()), Some("amd64"))
            );
            let copy = dir.join("copy");
            let out = Command::new(&sk)
                .args(["--insecure-policy", "copy"])
                .arg(format!("oci-archive:{}", path.display()))
                .arg(format!("dir:{}", copy.display()))
                .output()
                .unwrap_or_else(|e| panic!("skopeo: {e}"));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => {
            eprintln!("skipped: skopeo check (not on PATH; python3 and GNU tar checked the layout)")
        }
    }
    ctr_import(&path, &r.to_string());

    // The same image again, all from the cache: byte-identical.
    s.clear();
    let again = kube(&format!(
        "version = \"v1.34.2\"\nbinaries = \"{}\"\nimages = [\"{r}\"]\n",
        bin_dir("layout-bins").display()
    ));
    let mut tree = Tree::new();
    let pins = Pins::new(None, "none", false);
    kiln_imager::kubernetes::bake(Some(&again), Arch::X86_64, &mut tree, &cache, &pins)
        .unwrap_or_else(|e| panic!("{e}"));
    let baked = tree
        .get(&format!("usr/share/kiln/images/{}", r.archive_name()))
        .map(|e| e.node.clone());
    assert_eq!(baked, Some(Node::File(Arc::new(tar))));
    assert_eq!(
        s.paths(),
        [
            "/v2/kiln/app/manifests/v1",
            "/token?service=fake&scope=repository%3Akiln%2Fapp%3Apull",
            "/v2/kiln/app/manifests/v1"
        ]
    );
}

/// `ctr images import` into a scratch namespace, when a containerd runs here (hosts rarely
/// have one; the QEMU tier imports baked archives on a node in any case).
fn ctr_import(path: &Path, name: &str) {
    let sock = Path::new("/run/containerd/containerd.sock");
    let Some(ctr) = which("ctr").filter(|_| sock.exists()) else {
        eprintln!(
            "skipped: ctr images import (no containerd here; the QEMU tier imports on a node)"
        );
        return;
    };
    let ctr = |args: &[&str]| {
        let out = Command::new(&ctr)
            .args(["-n", "kiln-test"])
            .args(args)
            .output();
        let out = out.unwrap_or_else(|e| panic!("ctr: {e}"));
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ctr(&["images", "import", &path.display().to_string()]);
    assert!(ctr(&["images", "ls", "-q"]).lines().any(|l| l == name));
    ctr(&["images", "rm", name]);
}
