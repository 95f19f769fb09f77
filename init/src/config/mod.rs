//! One typed, validated `NodeConfig` from cloud-init inputs (user-data, NoCloud meta-data
//! and network-config, ConfigDrive JSON) and Kiln's own kiln.toml.
//!
//! Everything here is pure: callers read the files (from a volume, the command line,
//! HTTP, STATE) and hand the bytes over in `Sources`; `assemble` parses and validates the
//! whole before anything is applied. This module never touches the file system, the
//! network or the console, and does not decide which source wins over another volume.
//!
//! Precedence inside one `Sources`: meta-data < ConfigDrive meta_data.json < user-data
//! (parts in order) < kiln.toml; later scalars replace, lists append (see `draft`).
//! Network: the first present of kiln.toml `[network]`, network-config,
//! network_data.json; else DHCPv4 on every wired NIC.

mod cloudconfig;
mod codec;
mod configdrive;
mod doc;
mod draft;
mod files;
mod kiln;
mod metadata;
mod mime;
mod mode;
mod model;
mod netconfig;
mod network;
mod open;
mod types;
mod userdata;

#[cfg(test)]
mod golden_tests;

pub use cloudconfig::CloudConfigError;
pub use codec::{CodecError, MAX_DECOMPRESSED};
pub use doc::DocError;
pub use draft::DraftError;
pub use files::FileError;
pub use kiln::KilnTomlError;
pub use mime::MimeError;
pub use mode::FileMode;
pub use model::{
    Command, Frequency, KilnSettings, ManageEtcHosts, NodeConfig, Ntp, Role, Script, User,
    WriteFile,
};
pub use network::{Interface, Match, NetworkConfig, NetworkError, Route};
pub use types::{
    AbsPath, Cidr, DnsName, Host, Hostname, Mac, NameGlob, Owner, PasswdHash, SshKey, Timezone,
    UserName, ValueError,
};
pub use userdata::UserDataError;

use draft::Draft;

/// Raw bytes of every file a provider found; `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub user_data: Option<Vec<u8>>,
    pub meta_data: Option<Vec<u8>>,
    pub network_config: Option<Vec<u8>>,
    pub kiln_toml: Option<Vec<u8>>,
    pub configdrive_meta: Option<Vec<u8>>,
    pub configdrive_network: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("user-data from {origin}")]
    UserData {
        origin: String,
        #[source]
        source: UserDataError,
    },
    #[error("meta-data from {origin}")]
    MetaData {
        origin: String,
        #[source]
        source: DocError,
    },
    #[error("network-config from {origin}")]
    NetworkConfig {
        origin: String,
        #[source]
        source: NetworkError,
    },
    #[error("kiln.toml from {origin}")]
    KilnToml {
        origin: String,
        #[source]
        source: KilnTomlError,
    },
    #[error("meta_data.json from {origin}")]
    ConfigDriveMeta {
        origin: String,
        #[source]
        source: DocError,
    },
    #[error("network_data.json from {origin}")]
    ConfigDriveNetwork {
        origin: String,
        #[source]
        source: NetworkError,
    },
    #[error("config from {origin}")]
    Combined {
        origin: String,
        #[source]
        source: DraftError,
    },
    #[error("decode kiln.config")]
    Inline(#[source] CodecError),
    #[error("read persisted config")]
    Json(#[source] DocError),
    #[error("invalid persisted config")]
    JsonNetwork(#[source] NetworkError),
    #[error("serialize config")]
    Serialize(#[source] serde_json::Error),
}

/// Parses and validates every source, then combines them into one `NodeConfig`.
/// `origin` names where the files came from (`cidata`, `config-2`, `cmdline`, …) and is
/// recorded in the result and in errors.
pub fn assemble(src: &Sources, origin: &str) -> Result<NodeConfig, ConfigError> {
    let o = || origin.to_string();
    let mut all = Draft::default();
    if let Some(b) = &src.meta_data {
        let d = doc::utf8(b)
            .and_then(metadata::parse)
            .map_err(|source| ConfigError::MetaData {
                origin: o(),
                source,
            })?;
        all.absorb(d);
    }
    if let Some(b) = &src.configdrive_meta {
        let m = configdrive::parse_meta(b).map_err(|source| ConfigError::ConfigDriveMeta {
            origin: o(),
            source,
        })?;
        all.absorb(Draft {
            instance_id: m.instance_id,
            meta_hostname: m.hostname,
            ssh_authorized_keys: m.keys,
            unsupported: m.unsupported,
            ..Draft::default()
        });
    }
    if let Some(b) = &src.user_data {
        let d = userdata::parse(b).map_err(|source| ConfigError::UserData {
            origin: o(),
            source,
        })?;
        all.absorb(d);
    }
    let network = network_sources(src, origin)?;
    if let Some(b) = &src.kiln_toml {
        let d = doc::utf8(b)
            .map_err(KilnTomlError::Doc)
            .and_then(kiln::parse)
            .map_err(|source| ConfigError::KilnToml {
                origin: o(),
                source,
            })?;
        all.absorb(d);
    }
    if all.network.is_none() {
        all.network = network.0;
    }
    all.unsupported.extend(network.1);
    let fallback = fallback_instance_id(src);
    all.finish(origin, fallback)
        .map_err(|source| ConfigError::Combined {
            origin: o(),
            source,
        })
}

fn network_sources(
    src: &Sources,
    origin: &str,
) -> Result<(Option<NetworkConfig>, open::Unsupported), ConfigError> {
    let mut found = None;
    let mut unsupported = open::Unsupported::default();
    if let Some(b) = &src.network_config {
        let (net, un) = doc::utf8(b)
            .map_err(NetworkError::Doc)
            .and_then(netconfig::parse)
            .map_err(|source| ConfigError::NetworkConfig {
                origin: origin.to_string(),
                source,
            })?;
        found = net;
        unsupported.extend(un);
    }
    if let Some(b) = &src.configdrive_network {
        let (net, un) =
            configdrive::parse_network(b).map_err(|source| ConfigError::ConfigDriveNetwork {
                origin: origin.to_string(),
                source,
            })?;
        found = found.or(Some(net));
        unsupported.extend(un);
    }
    Ok((found, unsupported))
}

/// Without an instance id in the sources, a digest of them: the same inputs are the same
/// instance, changed inputs are a new instance (per-instance work runs again).
fn fallback_instance_id(src: &Sources) -> String {
    // FNV-1a, 64 bit: stable across builds and platforms, no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [
        &src.user_data,
        &src.meta_data,
        &src.network_config,
        &src.kiln_toml,
        &src.configdrive_meta,
        &src.configdrive_network,
    ];
    for part in parts {
        for &b in part.as_deref().unwrap_or_default().iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("iid-kiln-{h:016x}")
}

impl NodeConfig {
    /// Deterministic JSON (field order fixed, no maps) for the copy kept on STATE.
    pub fn to_json(&self) -> Result<String, ConfigError> {
        serde_json::to_string_pretty(self).map_err(ConfigError::Serialize)
    }

    pub fn from_json(bytes: &[u8]) -> Result<NodeConfig, ConfigError> {
        let cfg: NodeConfig = doc::json(bytes).map_err(ConfigError::Json)?;
        cfg.network.validate().map_err(ConfigError::JsonNetwork)?;
        Ok(cfg)
    }
}

/// Decodes a `kiln.config=` command-line value: base64 (standard or URL-safe alphabet,
/// padding optional) of plain TOML/YAML, of zstd or of gzip (decompressed here, capped at
/// `MAX_DECOMPRESSED`). zstd fits the most config into the kernel's 2 KiB command line.
pub fn decode_inline(value: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = codec::base64_decode(value.trim().as_bytes()).map_err(ConfigError::Inline)?;
    if codec::is_zstd(&bytes) {
        return codec::unzstd(&bytes, MAX_DECOMPRESSED).map_err(ConfigError::Inline);
    }
    if codec::is_gzip(&bytes) {
        return codec::gunzip(&bytes, MAX_DECOMPRESSED).map_err(ConfigError::Inline);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use base64::Engine;
    use std::io::Write;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn user_data(text: &str) -> Result<NodeConfig, ConfigError> {
        let src = Sources {
            user_data: Some(text.as_bytes().to_vec()),
            ..Sources::default()
        };
        assemble(&src, "test")
    }

    #[test]
    fn inline_values_plain_gzip_and_zstd() {
        let toml = b"hostname = \"n1\"\n";
        assert_eq!(decode_inline(&b64(toml)).unwrap(), toml);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(toml).unwrap();
        assert_eq!(decode_inline(&b64(&gz.finish().unwrap())).unwrap(), toml);
        let packed = zstd::encode_all(&toml[..], 19).unwrap();
        assert_eq!(decode_inline(&b64(&packed)).unwrap(), toml);
        let truncated = [0x28, 0xb5, 0x2f, 0xfd, 0, 0];
        assert!(matches!(
            decode_inline(&b64(&truncated)),
            Err(ConfigError::Inline(CodecError::Zstd(_)))
        ));
        let bomb = zstd::encode_all(&vec![b'a'; MAX_DECOMPRESSED + 1][..], 3).unwrap();
        assert!(matches!(
            decode_inline(&b64(&bomb)),
            Err(ConfigError::Inline(CodecError::TooLarge { .. }))
        ));
        assert!(matches!(
            decode_inline("not base64!"),
            Err(ConfigError::Inline(CodecError::Base64(_)))
        ));
    }

    #[test]
    fn detection_is_case_insensitive_after_whitespace() {
        let cfg = user_data("\n  #Cloud-Config\nhostname: h1\n").unwrap();
        assert_eq!(cfg.hostname.unwrap().as_str(), "h1");
        let cfg = user_data("#cloud-boothook\n#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(cfg.unsupported, ["part:text/cloud-boothook"]);
        assert!(cfg.scripts.is_empty());
        let cfg = user_data("just some text\n").unwrap();
        assert_eq!(cfg.unsupported, ["part:text/plain"]);
        let cfg = user_data("## template: jinja\n#cloud-config\n").unwrap();
        assert_eq!(cfg.unsupported, ["part:text/jinja2"]);
    }

    #[test]
    fn empty_cloud_config_and_empty_sources_give_defaults() {
        let cfg = user_data("#cloud-config\n").unwrap();
        assert_eq!(cfg.network, NetworkConfig::default());
        assert_eq!(cfg.kiln, KilnSettings::default());
        assert!(cfg.users.is_empty() && cfg.unsupported.is_empty());
        let none = assemble(&Sources::default(), "defaults").unwrap();
        assert_eq!(none.origin, "defaults");
        assert!(none.instance_id.starts_with("iid-kiln-"));
    }

    #[test]
    fn fallback_instance_id_follows_the_inputs() {
        let a = user_data("#cloud-config\nhostname: a\n").unwrap();
        let a2 = user_data("#cloud-config\nhostname: a\n").unwrap();
        let b = user_data("#cloud-config\nhostname: b\n").unwrap();
        assert_eq!(a.instance_id, a2.instance_id);
        assert_ne!(a.instance_id, b.instance_id);
    }

    #[test]
    fn user_data_hostname_beats_meta_data_and_fqdn_splits() {
        let src = Sources {
            meta_data: Some(b"instance-id: 1234\nlocal-hostname: meta\n".to_vec()),
            user_data: Some(b"#cloud-config\nfqdn: web.example.org\n".to_vec()),
            ..Sources::default()
        };
        let cfg = assemble(&src, "t").unwrap();
        assert_eq!(cfg.instance_id, "1234");
        assert_eq!(cfg.hostname.unwrap().as_str(), "web");
        assert_eq!(cfg.fqdn.unwrap().as_str(), "web.example.org");
    }

    #[test]
    fn ntp_disabled_and_user_shorthands() {
        let cfg = user_data(
            "#cloud-config\nntp:\n  enabled: false\n  servers: [a.example]\nusers: bob\n\
             ssh_authorized_keys: ssh-ed25519 AAAA k\n",
        )
        .unwrap();
        assert_eq!(cfg.ntp, None);
        assert_eq!(cfg.users[0].name.as_str(), "bob");
        assert!(cfg.users[0].lock_passwd);
        assert_eq!(cfg.ssh_authorized_keys.len(), 1);
    }

    #[test]
    fn json_round_trip_is_deterministic() {
        let cfg = user_data("#cloud-config\nhostname: h\nruncmd: [[echo, 1], echo 2]\n").unwrap();
        let json = cfg.to_json().unwrap();
        assert_eq!(json, cfg.clone().to_json().unwrap());
        assert_eq!(NodeConfig::from_json(json.as_bytes()).unwrap(), cfg);
        let extra = json.replacen('{', "{\n  \"surprise\": 1,", 1);
        assert!(matches!(
            NodeConfig::from_json(extra.as_bytes()),
            Err(ConfigError::Json(DocError::Schema { .. }))
        ));
    }
}
