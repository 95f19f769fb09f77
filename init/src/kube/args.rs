//! argv for `kubeadm init`/`join` and for the kubelet, which PID 1 supervises in place of
//! systemd's kubelet.service and its `10-kubeadm.conf` drop-in.

use std::io;
use std::path::Path;

use super::envfile::{parse_env, split_words};
use super::{KubeError, Plan, KUBEADM_FLAGS_ENV, KUBELET_CONFIG, KUBELET_DEFAULTS};

pub const KUBEADM: &str = "/usr/bin/kubeadm";
pub const KUBELET: &str = "/usr/bin/kubelet";

/// Preflight checks whose errors are expected on a Kiln node; all the others still
/// stop kubeadm (ports in use, missing tools, ip_forward off, etcd unreachable or its
/// client files missing), which is why preflight is not skipped as a whole.
/// - `SystemVerification` reads the kernel config from /proc/config.gz or /boot, which
///   Kiln's kernel does not ship; the image is built for Kubernetes and proven in QEMU.
/// - `NumCPU`, `Mem` (control planes only): 2 CPUs / 1700 MB are kubeadm's advice, and
///   the hardware is the operator's choice; a small control plane is slow, one that
///   refuses to form at boot with nobody at its console is useless.
/// - `FileAvailable--etc-kubernetes-pki-ca.crt` (workers only): `place_pki` puts the
///   cluster CA there on purpose; kubeadm rewrites it with the same certificate.
///
/// Init and control-plane joins need no exception for the pre-placed CA files: kubeadm
/// only checks pki/ca.crt on worker joins and otherwise uses the CAs it finds.
const IGNORE_CONTROL_PLANE: &str = "--ignore-preflight-errors=SystemVerification,NumCPU,Mem";
const IGNORE_WORKER: &str =
    "--ignore-preflight-errors=SystemVerification,FileAvailable--etc-kubernetes-pki-ca.crt";

/// `kubeadm init`/`join` with the configuration at `config_path`. Init also uploads the
/// control-plane certificates (encrypted with the settings' `certificate_key`) for a
/// control plane that lacks the shared keys, and never prints the token or that key
/// (the console and /var/log keep kubeadm's output). The control-plane role of a join
/// comes from the configuration's `controlPlane` section.
pub fn kubeadm_args(plan: Plan, config_path: &Path) -> Vec<String> {
    let config = config_path.display().to_string();
    let args: &[&str] = match plan {
        Plan::Init => &[
            KUBEADM,
            "init",
            "--config",
            &config,
            "--upload-certs",
            "--skip-token-print",
            "--skip-certificate-key-print",
            IGNORE_CONTROL_PLANE,
        ],
        Plan::JoinControlPlane => &[KUBEADM, "join", "--config", &config, IGNORE_CONTROL_PLANE],
        Plan::JoinWorker => &[KUBEADM, "join", "--config", &config, IGNORE_WORKER],
    };
    args.iter().map(|a| a.to_string()).collect()
}

/// The kubelet's argv under `root` (`/` on a node), as `10-kubeadm.conf` builds it:
/// kubeconfig and config flags, then `KUBELET_KUBEADM_ARGS` from kubeadm-flags.env, then
/// the operator's `KUBELET_EXTRA_ARGS` from /etc/default/kubelet (both files optional,
/// as in the unit). `NotConfigured` until kubeadm has written the kubelet config.
pub fn kubelet_args(root: &Path) -> Result<Vec<String>, KubeError> {
    let config = root.join(KUBELET_CONFIG);
    match std::fs::metadata(&config) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(KubeError::NotConfigured),
        Err(source) => {
            return Err(KubeError::Read {
                path: config,
                source,
            })
        }
    }
    let mut args = vec![
        KUBELET.to_string(),
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf".to_string(),
        "--kubeconfig=/etc/kubernetes/kubelet.conf".to_string(),
        format!("--config=/{KUBELET_CONFIG}"),
    ];
    args.extend(env_words(root, KUBEADM_FLAGS_ENV, "KUBELET_KUBEADM_ARGS")?);
    args.extend(env_words(root, KUBELET_DEFAULTS, "KUBELET_EXTRA_ARGS")?);
    Ok(args)
}

/// The words of `var` in the environment file `rel` under `root`; none when the file or
/// the variable is absent.
fn env_words(root: &Path, rel: &str, var: &str) -> Result<Vec<String>, KubeError> {
    let path = root.join(rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(KubeError::Read { path, source }),
    };
    let parsed = parse_env(&text).and_then(|vars| {
        let value = vars.into_iter().rev().find(|(name, _)| name == var);
        value.map_or(Ok(Vec::new()), |(_, v)| split_words(&v))
    });
    parsed.map_err(|source| KubeError::Env { path, source })
}

#[cfg(test)]
mod tests {
    use super::super::{EnvErrorKind, KubeError};
    use super::*;
    use crate::testutil::TempDir;

    const BASE: [&str; 4] = [
        "/usr/bin/kubelet",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
    ];

    #[test]
    fn kubeadm_argv_per_plan() {
        let p = Path::new("/run/kiln/kubeadm.yaml");
        let init = kubeadm_args(Plan::Init, p);
        assert_eq!(
            init[..4],
            [
                "/usr/bin/kubeadm",
                "init",
                "--config",
                "/run/kiln/kubeadm.yaml"
            ]
        );
        assert!(init.contains(&"--upload-certs".to_string()), "{init:?}");
        assert!(init.contains(&"--skip-token-print".to_string()), "{init:?}");
        assert!(
            !init.iter().any(|a| a.starts_with("--skip-phases")),
            "{init:?}"
        );
        let cp = kubeadm_args(Plan::JoinControlPlane, p);
        assert_eq!(
            cp[..4],
            [
                "/usr/bin/kubeadm",
                "join",
                "--config",
                "/run/kiln/kubeadm.yaml"
            ]
        );
        assert_eq!(cp[4], IGNORE_CONTROL_PLANE);
        let worker = kubeadm_args(Plan::JoinWorker, p);
        assert_eq!(worker.len(), 5);
        assert!(
            worker[4].contains("FileAvailable--etc-kubernetes-pki-ca.crt"),
            "{worker:?}"
        );
        // Only worker joins check pki/ca.crt; control planes need no exception for it.
        assert!(!cp[4].contains("FileAvailable"), "{cp:?}");
    }

    #[test]
    fn kubelet_waits_for_kubeadm() {
        let tmp = TempDir::new("kube-kubelet-wait");
        tmp.write(
            "var/lib/kubelet/kubeadm-flags.env",
            "KUBELET_KUBEADM_ARGS=\"--a=b\"\n",
        );
        match kubelet_args(tmp.path()) {
            Err(KubeError::NotConfigured) => {}
            other => panic!("expected NotConfigured, got {other:?}"),
        }
    }

    #[test]
    fn kubelet_argv_adds_kubeadm_then_operator_flags() {
        let tmp = TempDir::new("kube-kubelet-args");
        tmp.write(KUBELET_CONFIG, "kind: KubeletConfiguration\n");
        assert_eq!(
            kubelet_args(tmp.path()).unwrap_or_else(|e| panic!("{e}")),
            BASE,
            "no env files: the unit's own flags only"
        );
        tmp.write(
            KUBEADM_FLAGS_ENV,
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.11\"\n",
        );
        tmp.write(
            KUBELET_DEFAULTS,
            "# operator flags\nKUBELET_EXTRA_ARGS='--node-labels=zone=a --v=\"2\"'\nOTHER=x\n",
        );
        let got = kubelet_args(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut want: Vec<&str> = BASE.to_vec();
        want.extend([
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--node-ip=10.0.0.11",
            "--node-labels=zone=a",
            "--v=2",
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn broken_env_file_is_named() {
        let tmp = TempDir::new("kube-kubelet-bad");
        tmp.write(KUBELET_CONFIG, "kind: KubeletConfiguration\n");
        tmp.write(KUBELET_DEFAULTS, "\nKUBELET_EXTRA_ARGS=\"--a=$B\"\n");
        match kubelet_args(tmp.path()) {
            Err(KubeError::Env { path, source }) => {
                assert!(path.ends_with(KUBELET_DEFAULTS), "{path:?}");
                assert_eq!(
                    (source.line, source.kind),
                    (2, EnvErrorKind::Expansion('$'))
                );
            }
            other => panic!("expected an env error, got {other:?}"),
        }
    }
}
