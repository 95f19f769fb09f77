//! The built binary answers as each tool by its name (and makes cargo build it for the
//! library's end-to-end tests, which run it through symlinks).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn answers_as_kubeadm_and_refuses_unknown_tools() {
    let dir = std::env::temp_dir().join(format!("kube-standin-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_kube-standin");
    for name in ["kubeadm", "kube-nothing"] {
        std::os::unix::fs::symlink(bin, dir.join(name)).unwrap();
    }
    let out = Command::new(dir.join("kubeadm"))
        .args(["version", "-o", "short"])
        .env("KUBE_STANDIN_ROOT", &dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("standin"),
        "{out:?}"
    );
    let out = Command::new(dir.join("kube-nothing"))
        .env("KUBE_STANDIN_ROOT", &dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
