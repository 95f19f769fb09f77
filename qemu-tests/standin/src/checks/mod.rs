//! What the values of a parsed kubeadm config must be for `init` and `join`: kubeadm's own
//! validation (token, hash and key formats, addresses, CIDRs, durations already typed),
//! plus what the stand-in needs spelled out because it does not auto-detect
//! (`controlPlaneEndpoint`, `advertiseAddress`). Messages use Kubernetes' field-error
//! shape: `Kind.path: Required value` / `Kind.path: Invalid value: "v": why`.

mod for_init;
mod for_join;

pub use for_init::init;
pub use for_join::join;

use std::net::IpAddr;

use super::formats::{dns_subdomain, is_certificate_key, is_token};
use super::v1beta4::{ApiEndpoint, NodeRegistrationOptions};

/// Problems found: errors fail the call, warnings are printed.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Findings {
    pub(super) fn required(&mut self, field: &str, why: &str) {
        self.errors.push(format!("{field}: Required value: {why}"));
    }
    pub(super) fn invalid(&mut self, field: &str, value: &str, why: &str) {
        self.errors
            .push(format!("{field}: Invalid value: {value:?}: {why}"));
    }
}

pub(super) fn node_registration(
    f: &mut Findings,
    kind: &str,
    nr: Option<&NodeRegistrationOptions>,
) {
    let Some(nr) = nr else { return };
    let field = format!("{kind}.nodeRegistration");
    if let Some(name) = &nr.name {
        if !dns_subdomain(name) {
            f.invalid(&format!("{field}.name"), name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'");
        }
    }
    if let Some(s) = &nr.cri_socket {
        if !s.starts_with("unix://") {
            f.warnings.push(format!(
                "{field}.criSocket {s:?} has no unix:// scheme (deprecated)"
            ));
        }
    }
    extra_args(
        f,
        &format!("{field}.kubeletExtraArgs"),
        nr.kubelet_extra_args.as_deref(),
    );
}

pub(super) fn extra_args(f: &mut Findings, field: &str, args: Option<&[super::v1beta4::Arg]>) {
    for (i, a) in args.unwrap_or_default().iter().enumerate() {
        if a.name.is_empty() || a.name.starts_with('-') {
            f.invalid(
                &format!("{field}[{i}].name"),
                &a.name,
                "a flag name without leading dashes",
            );
        }
    }
}

pub(super) fn endpoint(f: &mut Findings, field: &str, ep: Option<&ApiEndpoint>) {
    match ep.and_then(|e| e.advertise_address.as_deref()) {
        None | Some("") => f.required(
            &format!("{field}.advertiseAddress"),
            "kube-standin does not auto-detect the node address",
        ),
        Some(a) if a.parse::<IpAddr>().is_err() => {
            f.invalid(&format!("{field}.advertiseAddress"), a, "not an IP address")
        }
        Some(_) => {}
    }
    if let Some(p) = ep.and_then(|e| e.bind_port) {
        if !(1..=65535).contains(&p) {
            f.invalid(
                &format!("{field}.bindPort"),
                &p.to_string(),
                "must be between 1 and 65535",
            );
        }
    }
}

pub(super) fn token(f: &mut Findings, field: &str, t: &str) {
    if !is_token(t) {
        f.invalid(
            field,
            t,
            "the bootstrap token must be of form [a-z0-9]{6}.[a-z0-9]{16}",
        );
    }
}

pub(super) fn certificate_key(f: &mut Findings, field: &str, key: &str) {
    if !is_certificate_key(key) {
        f.invalid(field, key, "must be a hex encoded AES key of 32 bytes");
    }
}
