//! The stand-in's schema and checks against hand-written v1beta4 configs (written from the
//! official reference, independently of Kiln's generator): good configs pass, each broken
//! one fails with a message naming what is wrong.

use super::checks;
use super::config;
use super::testdir::TempDir;
use super::Root;

/// A complete init config; `{PORT}` and `{HEALTHZ}` are filled in by callers.
pub const INIT: &str = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  description: kiln test token
  ttl: 24h0m0s
  usages: [signing, authentication]
  groups: ["system:bootstrappers:kubeadm:default-node-token"]
nodeRegistration:
  name: cp-1
  criSocket: unix:///run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs:
  - name: node-ip
    value: 127.0.0.1
  ignorePreflightErrors: [Swap]
  imagePullPolicy: Never
  imagePullSerial: true
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: {PORT}
certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
skipPhases: [addon/kube-proxy]
timeouts:
  controlPlaneComponentHealthCheck: 1m0s
  kubeletHealthCheck: 1m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: kiln
kubernetesVersion: v1.34.2
controlPlaneEndpoint: apiserver.cluster.local:{PORT}
certificatesDir: /etc/kubernetes/pki
imageRepository: registry.k8s.io
encryptionAlgorithm: ECDSA-P256
certificateValidityPeriod: 876000h0m0s
caCertificateValidityPeriod: 876000h
networking:
  serviceSubnet: 10.96.0.0/12
  podSubnet: 10.244.0.0/16
  dnsDomain: cluster.local
etcd:
  external:
    endpoints: [https://127.0.0.1:2379]
    caFile: /etc/kubernetes/pki/etcd/ca.crt
    certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt
    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key
apiServer:
  certSANs: [apiserver.cluster.local, 10.103.97.2]
  extraArgs:
  - name: audit-log-maxage
    value: "30"
  extraVolumes:
  - name: audit
    hostPath: /var/log/kubernetes
    mountPath: /var/log/kubernetes
    pathType: DirectoryOrCreate
  extraEnvs:
  - name: GOMAXPROCS
    value: "2"
controllerManager:
  extraArgs:
  - name: bind-address
    value: 0.0.0.0
scheduler: {}
dns:
  disabled: false
proxy:
  disabled: false
featureGates:
  ControlPlaneKubeletLocalMode: true
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
healthzBindAddress: 127.0.0.1
healthzPort: {HEALTHZ}
staticPodPath: /etc/kubernetes/manifests
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 2m0s}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization:
  mode: Webhook
rotateCertificates: true
failSwapOn: false
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
clusterCIDR: 10.244.0.0/16
ipvs:
  excludeCIDRs: [10.103.97.2/32]
  strictARP: true
"#;

/// A worker join config; `{PORT}` and `{HASH}` are filled in by callers.
pub const JOIN: &str = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  name: worker-1
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-ip
    value: 127.0.0.2
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: apiserver.cluster.local:{PORT}
    caCertHashes: ["{HASH}"]
  tlsBootstrapToken: abcdef.0123456789abcdef
timeouts:
  discovery: 5m0s
"#;

/// What turns [`JOIN`] into a control-plane join.
pub const CONTROL_PLANE: &str = r#"controlPlane:
  localAPIEndpoint: {advertiseAddress: 127.0.0.3, bindPort: 6443}
  certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"#;

const HASH: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

pub fn fill(text: &str, port: u16, healthz: u16, hash: &str) -> String {
    text.replace("{PORT}", &port.to_string())
        .replace("{HEALTHZ}", &healthz.to_string())
        .replace("{HASH}", hash)
}

/// A root holding the external etcd files the init config names.
fn etcd_root() -> (TempDir, Root) {
    let dir = TempDir::new("schema");
    let root = Root::new(dir.path());
    for f in [
        "etcd/ca.crt",
        "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key",
    ] {
        root.write(format!("/etc/kubernetes/pki/{f}"), b"x", 0o600)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    (dir, root)
}

/// All errors `kubeadm init` would report for `text` (empty: accepted).
fn init_errors(text: &str, root: &Root) -> String {
    match config::parse(text) {
        Err(e) => format!("{e:#}"),
        Ok(docs) => checks::init(&docs, root).errors.join("\n"),
    }
}

fn join_errors(text: &str) -> String {
    match config::parse(text) {
        Err(e) => format!("{e:#}"),
        Ok(docs) => checks::join(&docs).errors.join("\n"),
    }
}

fn good_init() -> String {
    fill(INIT, 6443, 10248, HASH)
}

fn good_join() -> String {
    fill(JOIN, 6443, 0, HASH)
}

#[test]
fn good_configs_are_accepted() {
    let (_d, root) = etcd_root();
    assert_eq!(init_errors(&good_init(), &root), "");
    assert_eq!(join_errors(&good_join()), "");
    assert_eq!(join_errors(&format!("{}{CONTROL_PLANE}", good_join())), "");
    let unpinned = good_join().replace(
        &format!("caCertHashes: [\"{HASH}\"]"),
        "unsafeSkipCAVerification: true",
    );
    assert_eq!(join_errors(&unpinned), "");
    let Ok(docs) = config::parse(&good_init()) else {
        panic!("parse");
    };
    assert_eq!(docs.json.len(), 4);
    assert!(docs.kubelet.is_some() && docs.proxy.is_some());
}

#[test]
fn broken_init_configs_are_refused_naming_the_field() {
    let (_d, root) = etcd_root();
    let good = good_init();
    let table: &[(&str, &str, &str)] = &[
        ("  certSANs:", "  foo: bar\n  certSANs:", "unknown field \"apiServer.foo\""),
        ("kind: InitConfiguration\n", "kind: InitConfiguration\nmetadata: {name: x}\n", "unknown field \"metadata\""),
        ("  - name: audit-log-maxage\n    value: \"30\"\n", "  - name: audit-log-maxage\n    value: \"30\"\n    typo: 1\n", "unknown field \"apiServer.extraArgs[0].typo\""),
        ("controllerManager:\n  extraArgs:\n  - name: bind-address\n    value: 0.0.0.0", "controllerManager:\n  extraArgs:\n    bind-address: 0.0.0.0", "controllerManager.extraArgs: invalid type: map, expected a sequence (a v1beta3-style map"),
        ("  kubeletExtraArgs:\n  - name: node-ip\n    value: 127.0.0.1", "  kubeletExtraArgs:\n    node-ip: 127.0.0.1", "nodeRegistration.kubeletExtraArgs: invalid type: map"),
        ("controlPlaneEndpoint: apiserver.cluster.local:6443\n", "", "ClusterConfiguration.controlPlaneEndpoint: Required value"),
        ("certificateValidityPeriod: 876000h0m0s", "certificateValidityPeriod: 100y", "certificateValidityPeriod: time: unknown unit \"y\" in duration \"100y\""),
        ("kubeletHealthCheck: 1m", "kubeletHealthCheck: \"60\"", "timeouts.kubeletHealthCheck: time: missing unit in duration \"60\""),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration", "apiVersion \"kubeadm.k8s.io/v1beta3\"; kube-standin accepts kubeadm.k8s.io/v1beta4 only"),
        ("- token: abcdef.0123456789abcdef", "- token: ABCDEF.0123456789abcdef", "bootstrapTokens[0].token: Invalid value"),
        ("encryptionAlgorithm: ECDSA-P256", "encryptionAlgorithm: ECDSA", "encryptionAlgorithm: unknown variant `ECDSA`"),
        ("taints: []", "taints: [{key: a, effect: NoScheduling}]", "taints[0].effect: unknown variant `NoScheduling`"),
        ("  bindPort: 6443", "  bindPort: \"6443\"", "localAPIEndpoint.bindPort: invalid type: string \"6443\", expected i32"),
        ("kubernetesVersion: v1.34.2", "kubernetesVersion: v1.30.0", "kubernetesVersion: Invalid value: \"v1.30.0\""),
        ("  advertiseAddress: 127.0.0.1\n", "", "localAPIEndpoint.advertiseAddress: Required value"),
        ("ControlPlaneKubeletLocalMode: true", "NoSuchGate: true", "featureGates: Invalid value: \"NoSuchGate\""),
        ("cgroupDriver: systemd", "cgroupDriverr: systemd", "KubeletConfiguration (document 3): strict decoding error: unknown field \"cgroupDriverr\""),
        ("  webhook: {enabled: true, cacheTTL: 2m0s}", "  webhook: {enabled: true, cacheTTL: 2}", "authentication.webhook.cacheTTL: invalid type: integer `2`, expected a string"),
        ("mode: ipvs", "mode: ipvss", "KubeProxyConfiguration (document 4): mode: unknown variant `ipvss`"),
        ("  excludeCIDRs: [10.103.97.2/32]", "  excludeCIDRs: [10.103.97.2]", "KubeProxyConfiguration: Invalid value: \"10.103.97.2\""),
        ("  serviceSubnet: 10.96.0.0/12", "  serviceSubnet: 10.96.0.0", "networking.serviceSubnet: Invalid value"),
        ("    endpoints: [https://127.0.0.1:2379]", "    endpoints: []", "etcd.external.endpoints: Required value"),
    ];
    for (from, to, want) in table {
        assert!(good.contains(from), "the good config lacks {from:?}");
        let errors = init_errors(&good.replacen(from, to, 1), &root);
        assert!(
            errors.contains(want),
            "{from:?} -> {to:?}: want {want:?}, got:\n{errors}"
        );
    }
}

#[test]
fn init_checks_external_etcd_files_and_duplicates() {
    let empty = TempDir::new("schema-empty");
    let errors = init_errors(&good_init(), &Root::new(empty.path()));
    assert!(errors.contains("etcd.external.caFile: Invalid value: \"/etc/kubernetes/pki/etcd/ca.crt\": no such file on this node"), "{errors}");
    let (_d, root) = etcd_root();
    let twice = format!(
        "{}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n",
        good_init()
    );
    assert!(init_errors(&twice, &root).contains("document 5: a second ClusterConfiguration"));
    let unknown = format!(
        "{}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n",
        good_init()
    );
    assert!(
        init_errors(&unknown, &root).contains("unsupported document kind \"ResetConfiguration\"")
    );
    assert!(init_errors("", &root).contains("no documents"));
}

#[test]
fn broken_join_configs_are_refused_naming_the_field() {
    let good = good_join();
    let cp = format!("{good}{CONTROL_PLANE}");
    let no_key = cp.replace(
        "  certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        "",
    );
    let table: Vec<(String, &str)> = vec![
        (
            good.replace(&format!("    caCertHashes: [\"{HASH}\"]\n"), ""),
            "discovery.bootstrapToken.caCertHashes: Required value",
        ),
        (
            no_key.replace(
                "controlPlane:\n",
                "controlPlane:\n  certificateKey: \"0123\"\n",
            ),
            "JoinConfiguration.controlPlane.certificateKey",
        ),
        (
            cp.replace("advertiseAddress: 127.0.0.3, ", ""),
            "controlPlane.localAPIEndpoint.advertiseAddress: Required value",
        ),
        (
            good.replace(HASH, "sha1:abc"),
            "caCertHashes: Invalid value: \"sha1:abc\": not sha256:<64 hex digits>",
        ),
        (
            good.replace(
                "apiServerEndpoint: apiserver.cluster.local:6443",
                "apiServerEndpoint: apiserver.cluster.local",
            ),
            "apiServerEndpoint: Invalid value: \"apiserver.cluster.local\": missing port",
        ),
        (
            good.replace("discovery:\n", "discovery:\n  file: {kubeConfigPath: /x}\n"),
            "bootstrapToken and file are mutually exclusive",
        ),
        (
            good.replace("  tlsBootstrapToken:", "  tlsBootstrapTokn:"),
            "unknown field \"discovery.tlsBootstrapTokn\"",
        ),
        (
            good.replace("discovery: 5m0s", "discovery: 5 minutes"),
            "timeouts.discovery: time: unknown unit",
        ),
        (
            good.replace("name: worker-1", "name: Worker_1"),
            "nodeRegistration.name: Invalid value: \"Worker_1\"",
        ),
        (
            good.replace("  - name: node-ip", "  - name: --node-ip"),
            "kubeletExtraArgs[0].name: Invalid value",
        ),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n".into(),
            "missing field `discovery`",
        ),
    ];
    for (text, want) in table {
        let errors = join_errors(&text);
        assert!(
            errors.contains(want),
            "want {want:?}, got:\n{errors}\nfor:\n{text}"
        );
    }
}
