//! `[kubernetes]` spec sections: good ones parse to the right sources and image sets, bad
//! ones fail with the exact message (and, for type errors, the line and column).

mod kubernetes_common;

use kiln_imager::kubernetes::config::{Images, Manifest};
use kiln_imager::spec::{self, SpecError};
use kubernetes_common::{kube, spec_text};

#[test]
fn defaults_follow_kubeadm_1_34() {
    let k = kube("version = \"v1.34.2\"\n");
    let refs: Vec<String> = k
        .image_refs()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        refs,
        [
            "registry.k8s.io/kube-apiserver:v1.34.2",
            "registry.k8s.io/kube-controller-manager:v1.34.2",
            "registry.k8s.io/kube-scheduler:v1.34.2",
            "registry.k8s.io/kube-proxy:v1.34.2",
            "registry.k8s.io/coredns/coredns:v1.12.1",
            "registry.k8s.io/pause:3.10.1",
        ]
    );
    assert_eq!(
        k.binaries_url("arm64").as_deref(),
        Some("https://dl.k8s.io/release/v1.34.2/bin/linux/arm64")
    );
    assert_eq!(k.registry_url(), "https://registry.k8s.io");
    assert!(k.manifests.is_empty() && k.image_archives.is_empty() && !k.insecure_registry);
}

#[test]
fn full_section() {
    let sha = "a".repeat(64);
    let k = kube(&format!(
        r#"version = "v1.35.0-rc.1"
binaries = "/srv/k8s/bin"
registry = "http://localhost:5000"
images = ["registry.k8s.io/pause:3.10.1"]
extra_images = ["docker.io/flannel/flannel:v0.26.7", "flannel/flannel-cni-plugin:v1.6.2-flannel1"]
image_archives = ["images/app.oci.tar"]
manifests = ["kube-flannel.yml", {{ url = "https://example.org/x/ns.yaml", sha256 = "{sha}" }}]
"#
    ));
    assert_eq!(k.binaries_url("amd64"), None);
    assert_eq!(k.registry_url(), "http://localhost:5000");
    let refs = k.image_refs().unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = refs.iter().map(|r| r.archive_name()).collect();
    assert_eq!(
        names,
        [
            "pause_3.10.1.tar",
            "flannel_v0.26.7.tar",
            "flannel-cni-plugin_v1.6.2-flannel1.tar"
        ]
    );
    assert!(matches!(&k.images, Images::List(l) if l.len() == 1));
    assert!(
        matches!(&k.manifests[1], Manifest::Url(u) if u.sha256.as_deref() == Some(sha.as_str()))
    );
    // A remote plain-HTTP registry with the opt-in; https without a scheme.
    let k = kube(
        "version = \"v1.34.2\"\nregistry = \"http://10.0.0.5:5000\"\ninsecure_registry = true\n",
    );
    assert_eq!(k.registry_url(), "http://10.0.0.5:5000");
    let k = kube("version = \"v1.34.2\"\nregistry = \"mirror.lan:5000\"\nimages = []\n");
    assert_eq!(
        (k.registry_url().as_str(), k.image_refs().map(|r| r.len())),
        ("https://mirror.lan:5000", Ok(0))
    );
}

fn syntax(line: usize, column: usize, message: &str) -> SpecError {
    SpecError::Syntax {
        origin: "t".into(),
        line,
        column,
        message: message.into(),
    }
}

fn invalid(message: &str) -> SpecError {
    SpecError::Invalid {
        origin: "t".into(),
        message: message.into(),
    }
}

#[test]
fn bad_sections() {
    let v = "version = \"v1.34.2\"\n";
    let cases: Vec<(String, SpecError)> = vec![
        ("images = []\n".into(), syntax(5, 1, "missing field `version`")),
        ("version = \"1.34.2\"\n".into(), syntax(6, 11, "version \"1.34.2\": expected vMAJOR.MINOR.PATCH such as v1.34.2")),
        ("version = \"v1.34\"\n".into(), syntax(6, 11, "version \"v1.34\": expected vMAJOR.MINOR.PATCH such as v1.34.2")),
        ("version = \"v1.34.2-\"\n".into(), syntax(6, 11, "version \"v1.34.2-\": expected vMAJOR.MINOR.PATCH such as v1.34.2")),
        (format!("{v}colour = 1\n"), syntax(7, 1, "unknown field `colour`, expected one of `version`, `binaries`, `registry`, `insecure_registry`, `images`, `extra_images`, `image_archives`, `manifests`")),
        (format!("{v}extra_images = [\"Flannel/x\"]\n"), syntax(7, 16, "image \"Flannel/x\": name components are lower-case letters, digits, '.', '_' and '-'")),
        (format!("{v}images = 3\n"), syntax(7, 10, "invalid type: integer `3`, expected \"default\" or a list of image references")),
        (format!("{v}registry = \"http://10.0.0.5:5000\"\n"), invalid("kubernetes.registry \"http://10.0.0.5:5000\": plain HTTP is only allowed to localhost/127.0.0.1, or set insecure_registry = true")),
        (format!("{v}registry = \"https://mirror.lan/v2\"\n"), invalid("kubernetes.registry \"https://mirror.lan/v2\": give a host[:port], without a path")),
        (format!("{v}binaries = \"http://mirror.lan/k8s\"\n"), invalid("kubernetes.binaries \"http://mirror.lan/k8s\": plain HTTP is only allowed to localhost/127.0.0.1")),
        (format!("{v}binaries = \"https://m/{{os}}/{{arch}}\"\n"), invalid("kubernetes.binaries \"https://m/{os}/{arch}\": only {version} and {arch} are substituted")),
        (format!("{v}binaries = \"ftp://m/k8s\"\n"), invalid("kubernetes.binaries \"ftp://m/k8s\": give an http(s) URL or a local folder")),
        (format!("{v}manifests = [\"https://example.org/kube-flannel.yml\"]\n"), invalid("kubernetes manifest https://example.org/kube-flannel.yml: a URL needs its digest: { url = \"…\", sha256 = \"…\" }")),
        (format!("{v}manifests = [{{ url = \"https://example.org/a.yml\" }}]\n"), invalid("kubernetes manifest https://example.org/a.yml: a URL needs its digest: { url = \"…\", sha256 = \"…\" }")),
        (format!("{v}manifests = [{{ url = \"https://example.org/a.yml\", sha256 = \"12\" }}]\n"), invalid("kubernetes manifest https://example.org/a.yml: sha256 must be 64 hex digits")),
        (format!("{v}manifests = [{{ url = \"https://e/a.yml\", sha = \"12\" }}]\n"), syntax(7, 41, "unknown field `sha`, expected `url` or `sha256`")),
        (format!("{v}manifests = [\"a/x.yml\", \"b/x.yml\"]\n"), invalid("kubernetes.manifests: two manifests are named x.yml")),
        ("version = \"v1.30.1\"\n".into(), invalid("kubernetes.version v1.30.1: no default image set for 1.30 (known: 1.33, 1.34, 1.35); list the images explicitly")),
        (format!("{v}images = \"all\"\n"), invalid("kubernetes.images \"all\": use \"default\" or a list of image references")),
        (format!("{v}extra_images = [\"a/x:1\", \"b/x:1\"]\n"), invalid("kubernetes images docker.io/a/x:1 and docker.io/b/x:1 would both be stored as x_1.tar")),
        (format!("{v}image_archives = [\"a/pause_3.10.1.tar\"]\n"), invalid("kubernetes image archive a/pause_3.10.1.tar and registry.k8s.io/pause:3.10.1 would both be stored as pause_3.10.1.tar")),
        (format!("{v}image_archives = [\"a/app.zip\"]\n"), invalid("kubernetes.image_archives a/app.zip: must name a .tar file")),
    ];
    for (section, want) in cases {
        let text = spec_text(&section);
        match spec::parse(&text, "t") {
            Ok(_) => panic!("parsed: {section}"),
            Err(e) => assert_eq!(e, want, "section: {section}"),
        }
    }
}
