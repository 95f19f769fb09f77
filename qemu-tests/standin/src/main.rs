//! kube-standin (NOT Kubernetes): one static multi-call binary installed in QEMU test
//! images as /usr/bin/kubeadm, /usr/bin/kubelet and /usr/bin/kubectl, where real
//! Kubernetes binaries cannot be had. `argv[0]`'s basename picks the tool; all logic is in
//! the `kube_standin` library, whose docs say what each tool checks and what it does not do.

fn main() -> std::process::ExitCode {
    let code = kube_standin::main(std::env::args().collect());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
