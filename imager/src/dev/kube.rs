//! Kubernetes on a dev cluster: whether the image carries it (the lock file beside the
//! image lists `[[kubernetes_binary]]` entries), and the host's kubeconfig: cluster gen's
//! admin.conf pointed at the forwarded API-server port, still verifying the server
//! certificate under its cluster name.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::launch::CONTROL_PLANE_PORTS;
use super::state::{Layout, State};
use crate::cluster::{self, topology::role_name, Role};
use crate::lock;

/// The lock file `kiln build` writes beside the images of the built-in spec.
pub const LOCK_NAME: &str = "kiln.lock";

/// `Some(true|false)` from the lock file beside `image`, `None` without one.
pub fn image_has_kubernetes(image: &Path) -> Result<Option<bool>> {
    let Some(lock_path) = image.parent().map(|d| d.join(LOCK_NAME)) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&lock_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("read {}: {e}", lock_path.display()),
    };
    let parsed = lock::parse(&text, &lock_path.display().to_string())?;
    Ok(Some(!parsed.kubernetes_binaries.is_empty()))
}

/// admin.conf with `server: https://127.0.0.1:<port>` and `tls-server-name: <name>` (the
/// name the API server's certificate carries) in place of its `server:` line.
pub fn rewrite_admin_conf(admin: &str, port: u16, server_name: &str) -> Result<String> {
    let mut out = String::with_capacity(admin.len() + 64);
    let mut replaced = 0;
    for line in admin.lines() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        if body.starts_with("server:") {
            out.push_str(&format!("{indent}server: https://127.0.0.1:{port}\n"));
            out.push_str(&format!("{indent}tls-server-name: {server_name}\n"));
            replaced += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if replaced != 1 {
        bail!("admin.conf has {replaced} server: lines, expected one");
    }
    Ok(out)
}

/// Writes `<state>/kubeconfig` when the image carries Kubernetes (lock file beside the
/// image, or cp-1's events show kubeadm running); says so either way.
pub fn write_kubeconfig(layout: &Layout, state: &mut State, from_lock: Option<bool>) -> Result<()> {
    let Some(cp1) = state
        .nodes
        .iter()
        .find(|n| n.role == role_name(Role::ControlPlane))
    else {
        return Ok(());
    };
    let events = fs::read_to_string(layout.node(&cp1.name).events).unwrap_or_default();
    let present = from_lock == Some(true) || super::events::runs_kubernetes(&events);
    let api = cp1
        .forwards
        .iter()
        .find(|(_, g)| *g == CONTROL_PLANE_PORTS[0])
        .map(|f| f.0);
    let (true, Some(port)) = (present, api) else {
        println!("Kubernetes is not in this image: no kubeconfig (etcd only)");
        return Ok(());
    };
    let admin_path = layout.cluster_dir().join(cluster::ADMIN_CONF);
    let admin = fs::read_to_string(&admin_path)
        .with_context(|| format!("read {}", admin_path.display()))?;
    let name = kiln_init::cluster::settings::API_ENDPOINT_NAME;
    let text = rewrite_admin_conf(&admin, port, name)?;
    let path = layout.dir.join(super::state::KUBECONFIG);
    super::state::write_atomic(&path, text.as_bytes())?;
    state.kubernetes = true;
    state.save(layout)?;
    println!(
        "kubeconfig: {} (kubectl --kubeconfig {0} get nodes)",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    certificate-authority-data: QUJD\n    server: https://apiserver.cluster.local:6443\ncontexts: []\n";

    #[test]
    fn rewrites_the_server_line() {
        let got = rewrite_admin_conf(ADMIN, 40123, "apiserver.cluster.local")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    certificate-authority-data: QUJD\n    server: https://127.0.0.1:40123\n    tls-server-name: apiserver.cluster.local\ncontexts: []\n"
        );
        for bad in ["kind: Config\n", &format!("{ADMIN}    server: x\n")] {
            let Err(e) = rewrite_admin_conf(bad, 1, "n") else {
                panic!("accepted {bad}")
            };
            assert!(e.to_string().contains("server: lines"), "{e}");
        }
    }

    #[test]
    fn lock_beside_the_image() {
        let dir = std::env::temp_dir().join(format!("kiln-dev-kube-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let image = dir.join("node.qcow2");
        assert_eq!(image_has_kubernetes(&image).ok(), Some(None));
        let plain = "version = 1\nsuite = \"trixie\"\narch = \"amd64\"\n";
        std::fs::write(dir.join(LOCK_NAME), plain).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(image_has_kubernetes(&image).ok(), Some(Some(false)));
        let kube = format!(
            "{plain}[[kubernetes_binary]]\nname = \"kubeadm\"\nurl = \"https://dl.k8s.io/kubeadm\"\nsha256 = \"00\"\n"
        );
        std::fs::write(dir.join(LOCK_NAME), kube).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(image_has_kubernetes(&image).ok(), Some(Some(true)));
        std::fs::write(dir.join(LOCK_NAME), "version = 1\nbogus = 2\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(image_has_kubernetes(&image).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
