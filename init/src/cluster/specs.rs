//! The supervised services a cluster node runs besides containerd, as data: each is the
//! init binary itself in step mode (`init cluster <step>`), so steps get the supervisor's
//! ordering, restarts with backoff, logs and `@kiln-event` reporting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::context::Context;
use crate::services::{Readiness, RestartPolicy, ServiceSpec};

/// Written by `etcd-prepare`: the argv `etcd` runs (JSON array).
pub const ETCD_ARGS: &str = "/run/kiln/etcd.args";
pub const KUBEADM: &str = "/usr/bin/kubeadm";
pub const KUBELET: &str = "/usr/bin/kubelet";

fn step(name: &str, init: &Path, step: &str) -> ServiceSpec {
    let init = init.to_string_lossy();
    let mut spec = ServiceSpec::new(name, &[init.as_ref(), "cluster", step]);
    spec.events = true;
    spec
}

/// The init binary the steps run (this process's executable).
pub fn init_binary() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/sbin/init"))
}

/// Services for `ctx`: etcd (prepare, run, backups) on control planes; kubeadm and
/// kubelet when the image carries Kubernetes (`root`/usr/bin/kubeadm exists).
pub fn cluster_services(ctx: &Context, init: &Path, root: &Path) -> Vec<ServiceSpec> {
    let mut specs = Vec::new();
    let kube = root.join(KUBEADM.trim_start_matches('/')).exists()
        && root.join(KUBELET.trim_start_matches('/')).exists();
    if ctx.is_control_plane() {
        let mut prepare = step("etcd-prepare", init, "etcd-prepare");
        prepare.restart = RestartPolicy::OnFailure;
        prepare.ready = Readiness::File(ETCD_ARGS.into());
        specs.push(prepare);
        let mut etcd = step("etcd", init, "etcd");
        etcd.after = vec!["etcd-prepare".into()];
        etcd.ready = Readiness::TcpPort(2379);
        etcd.stop_timeout = Duration::from_secs(20);
        specs.push(etcd);
        if ctx.settings.etcd.snapshot_interval_s > 0 {
            let mut backup = step("etcd-backup", init, "etcd-backup");
            backup.after = vec!["etcd".into()];
            specs.push(backup);
        }
    }
    if kube {
        let mut kubeadm = step("kubeadm", init, "kubeadm");
        kubeadm.after = vec!["image-import".into()];
        if ctx.is_control_plane() {
            kubeadm.after.push("etcd".into());
        }
        kubeadm.restart = RestartPolicy::OnFailure;
        specs.push(kubeadm);
        let mut kubelet = step("kubelet", init, "kubelet");
        kubelet.after = vec!["containerd".into()];
        specs.push(kubelet);
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn ctx(role: Role) -> Context {
        let yaml =
            "name: t\naddress: 10.0.0.11\ncontrol_planes: [{name: cp-1, address: 10.0.0.11}]\n\
                    bootstrap_token: abcdef.0123456789abcdef\n\
                    ca: {cert: \"-----BEGIN CERTIFICATE-----\\nA\\n-----END CERTIFICATE-----\"}\n";
        let settings = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Context {
            settings,
            node_name: "cp-1".into(),
            role,
            vip: None,
        }
    }

    #[test]
    fn control_planes_run_etcd_and_kube_when_present() {
        let root = crate::testutil::TempDir::new("specs");
        let init = Path::new("/sbin/init");
        let names = |specs: &[ServiceSpec]| -> Vec<String> {
            specs.iter().map(|s| s.name.clone()).collect()
        };
        let cp = cluster_services(&ctx(Role::ControlPlane), init, root.path());
        assert_eq!(names(&cp), ["etcd-prepare", "etcd", "etcd-backup"]);
        assert_eq!(cp[1].command, ["/sbin/init", "cluster", "etcd"]);
        assert!(cp.iter().all(|s| s.events));
        assert!(cluster_services(&ctx(Role::Worker), init, root.path()).is_empty());
        for bin in [KUBEADM, KUBELET] {
            let p = root.path().join(bin.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap_or(root.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&p, b"").unwrap_or_else(|e| panic!("{e}"));
        }
        let worker = cluster_services(&ctx(Role::Worker), init, root.path());
        assert_eq!(names(&worker), ["kubeadm", "kubelet"]);
        assert_eq!(worker[0].after, ["image-import"]);
        let cp = cluster_services(&ctx(Role::ControlPlane), init, root.path());
        assert_eq!(cp[3].after, ["image-import", "etcd"]);
    }
}
