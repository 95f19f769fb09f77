//! Cluster settings for the tests of this module: three control planes, every secret
//! present (control plane) or only the CA certificate (worker).

use crate::cluster::settings::ClusterSettings;

pub(crate) const CA_CERT: &str =
    "-----BEGIN CERTIFICATE-----\nQ0EgY2VydA==\n-----END CERTIFICATE-----\n";
pub(crate) const CA_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nQ0Ega2V5\n-----END PRIVATE KEY-----\n";
pub(crate) const FP_CERT: &str =
    "-----BEGIN CERTIFICATE-----\nRlAgY2VydA==\n-----END CERTIFICATE-----\n";
pub(crate) const FP_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nRlAga2V5\n-----END PRIVATE KEY-----\n";
pub(crate) const SA_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nU0Ega2V5\n-----END PRIVATE KEY-----\n";
pub(crate) const SA_PUB: &str = "-----BEGIN PUBLIC KEY-----\nU0EgcHVi\n-----END PUBLIC KEY-----\n";
pub(crate) const CERT_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub(crate) const CA_HASH: &str =
    "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn base(address: &str) -> String {
    format!(
        "name: dev\naddress: {address}\ncontrol_planes:\n\
         - {{name: cp-1, address: 10.0.0.11}}\n\
         - {{name: cp-2, address: 10.0.0.12}}\n\
         - {{name: cp-3, address: 10.0.0.13}}\n\
         kubernetes_version: v1.34.2\n\
         bootstrap_token: abcdef.0123456789abcdef\n\
         ca:\n  cert: {CA_CERT:?}\n"
    )
}

fn parse(text: &str) -> ClusterSettings {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A control plane's settings: every key, the certificate key.
pub(crate) fn settings(address: &str) -> ClusterSettings {
    parse(&format!(
        "{}  key: {CA_KEY:?}\ncertificate_key: {CERT_KEY:?}\n\
         etcd_ca:\n  cert: {CA_CERT:?}\n  key: {CA_KEY:?}\n\
         front_proxy_ca:\n  cert: {FP_CERT:?}\n  key: {FP_KEY:?}\n\
         service_account:\n  private: {SA_KEY:?}\n  public: {SA_PUB:?}\n",
        base(address)
    ))
}

/// A worker's settings: the CA certificate and the token, no key.
pub(crate) fn worker_settings(address: &str) -> ClusterSettings {
    parse(&base(address))
}
