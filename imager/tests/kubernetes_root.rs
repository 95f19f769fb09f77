//! A spec with `[kubernetes]` (binaries from a local folder, `images = []`, one local OCI
//! archive) baked into a root tree and written as the root squashfs, read back with
//! unsquashfs: /usr/bin/kubeadm & co. are there 0755, the archive byte for byte. The full
//! `kiln build` needs a Debian mirror and a kernel; this is the offline part of it.

mod kubernetes_common;

use std::path::Path;
use std::process::Command;

use kiln_imager::kubernetes::layout::{self, Blob};
use kiln_imager::kubernetes::{bake, digest_of, Pins};
use kiln_imager::tree::Tree;
use kubernetes_common::{case_dir, sha256_hex, skip, which};

/// A small OCI archive (one empty layer), as a local `image_archives` entry.
fn oci_archive(path: &Path) -> Vec<u8> {
    let layer = tar::Builder::new(Vec::new())
        .into_inner()
        .unwrap_or_default();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        digest_of(&layer)
    )
    .into_bytes();
    let blob = |mt: &str, d: Vec<u8>| Blob::new(mt.into(), digest_of(&d), d);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digest_of(&config),
        config.len(),
        digest_of(&layer),
        layer.len()
    );
    let manifest = blob(
        "application/vnd.oci.image.manifest.v1+json",
        manifest.into_bytes(),
    );
    let blobs = [
        blob("application/vnd.oci.image.config.v1+json", config),
        blob("application/vnd.oci.image.layer.v1.tar", layer),
    ];
    let tar = layout::archive("docker.io/kiln/app:test", &manifest, &blobs)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path, &tar).unwrap_or_else(|e| panic!("{e}"));
    tar
}

fn unsquashfs(args: &[&str], image: &Path, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("unsquashfs")
        .args(args)
        .arg(image)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("unsquashfs: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn spec_with_kubernetes_bakes_binaries_and_archives_into_the_root() {
    let dir = case_dir("root");
    let bins = dir.join("bin");
    std::fs::create_dir_all(&bins).unwrap_or_else(|e| panic!("{e}"));
    for n in ["kubeadm", "kubelet", "kubectl"] {
        std::fs::write(bins.join(n), format!("{n} binary")).unwrap_or_else(|e| panic!("{e}"));
    }
    let archive = dir.join("app.oci.tar");
    let tar = oci_archive(&archive);
    let text = format!(
        "name = \"k\"\n[debian]\npackages = [\"busybox\"]\n\n[kubernetes]\nversion = \"v1.34.2\"\nbinaries = \"{}\"\nimages = []\nimage_archives = [\"{}\"]\n",
        bins.display(),
        archive.display()
    );
    let spec = kiln_imager::spec::parse(&text, "t").unwrap_or_else(|e| panic!("{e}"));
    let mut tree = Tree::new();
    let pins = Pins::new(None, "none", false);
    let baked = bake(
        spec.kubernetes.as_ref(),
        spec.arch,
        &mut tree,
        &dir.join("cache"),
        &pins,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(baked.binaries.len(), 3);
    assert!(baked.images.is_empty());
    let a = &baked.artifacts[..];
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].dest.as_str(), a[0].sha256.clone()),
        ("/usr/share/kiln/images/app.oci.tar", sha256_hex(&tar))
    );

    let image = dir.join("root.squashfs");
    let file = std::fs::File::create(&image).unwrap_or_else(|e| panic!("{e}"));
    kiln_imager::squashfs::write(&tree, file).unwrap_or_else(|e| panic!("{e}"));
    if which("unsquashfs").is_none() {
        return skip("root check: unsquashfs not on PATH (install squashfs-tools)");
    }
    let listing = String::from_utf8_lossy(&unsquashfs(&["-lln"], &image, &[])).into_owned();
    for (mode, path) in [
        ("-rwxr-xr-x", "usr/bin/kubeadm"),
        ("-rwxr-xr-x", "usr/bin/kubelet"),
        ("-rwxr-xr-x", "usr/bin/kubectl"),
        ("-rw-r--r--", "usr/share/kiln/images/app.oci.tar"),
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!("squashfs-root/{path}")))
            .unwrap_or_else(|| panic!("{path} not in the root:\n{listing}"));
        assert!(line.starts_with(&format!("{mode} 0/0 ")), "{line}");
    }
    let cat = unsquashfs(&["-cat"], &image, &["usr/share/kiln/images/app.oci.tar"]);
    assert!(cat == tar, "the archive changed on its way into the root");
    let cat = unsquashfs(&["-cat"], &image, &["usr/bin/kubeadm"]);
    assert_eq!(cat, b"kubeadm binary");
}

#[test]
fn local_archive_must_be_an_oci_layout() {
    let dir = case_dir("bad-archive");
    let bins = dir.join("bin");
    std::fs::create_dir_all(&bins).unwrap_or_else(|e| panic!("{e}"));
    for n in ["kubeadm", "kubelet", "kubectl"] {
        std::fs::write(bins.join(n), n).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    t.append_data(&mut h, "manifest.json", &b"[]"[..])
        .unwrap_or_else(|e| panic!("{e}"));
    let docker = dir.join("docker.tar");
    std::fs::write(&docker, t.into_inner().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let section = format!(
        "version = \"v1.34.2\"\nbinaries = \"{}\"\nimages = []\nimage_archives = [\"{}\"]\n",
        bins.display(),
        docker.display()
    );
    let k = kubernetes_common::kube(&section);
    let e = bake(
        Some(&k),
        kiln_imager::spec::Arch::X86_64,
        &mut Tree::new(),
        &dir,
        &Pins::default(),
    )
    .err();
    let want = format!(
        "image archive {}: not an OCI image layout (needs oci-layout and index.json)",
        docker.display()
    );
    assert_eq!(e.map(|e| e.to_string()), Some(want));
}
