//! The validated result types: what every source is turned into and what the later
//! boot steps act on. These are also Kiln's own schema (kiln.toml reuses them, the STATE
//! copy is their JSON), hence `deny_unknown_fields` everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::mode::FileMode;
use super::network::NetworkConfig;
use super::types::{
    AbsPath, DnsName, Host, Hostname, Owner, PasswdHash, SshKey, Timezone, UserName,
};

/// One node's whole configuration, parsed and validated before anything is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the config came from (`cidata`, `config-2`, `cmdline`, …), for events.
    pub origin: String,
    /// Per-instance work runs once per value (meta-data `instance-id`, ConfigDrive
    /// `uuid`, kiln.toml `instance_id`, else a digest of the inputs).
    pub instance_id: String,
    pub hostname: Option<Hostname>,
    pub fqdn: Option<DnsName>,
    pub manage_etc_hosts: ManageEtcHosts,
    pub users: Vec<User>,
    /// Installed for root: cloud-init gives top-level keys to its default user, Kiln has
    /// no default user. ConfigDrive `public_keys` and meta-data `public-keys` land here.
    pub ssh_authorized_keys: Vec<SshKey>,
    pub write_files: Vec<WriteFile>,
    pub bootcmd: Vec<Command>,
    pub runcmd: Vec<Command>,
    pub timezone: Option<Timezone>,
    pub ntp: Option<Ntp>,
    pub network: NetworkConfig,
    pub scripts: Vec<Script>,
    pub kiln: KilnSettings,
    /// Keys and parts that were present but have no effect in Kiln (`packages`,
    /// `users.sudo`, `part:text/x-include-url`, …), by source then key, no duplicates.
    pub unsupported: Vec<String>,
}

/// A local account (cloud-init `users:` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: UserName,
    #[serde(default)]
    pub groups: Vec<UserName>,
    #[serde(default)]
    pub ssh_authorized_keys: Vec<SshKey>,
    /// crypt(3) hash for /etc/shadow.
    #[serde(default)]
    pub passwd: Option<PasswdHash>,
    /// Locks password login; cloud-init's default is true.
    #[serde(default = "yes")]
    pub lock_passwd: bool,
    #[serde(default)]
    pub shell: Option<AbsPath>,
}

fn yes() -> bool {
    true
}

/// A file to write, content already decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteFile {
    pub path: AbsPath,
    #[serde(with = "b64")]
    pub content: Vec<u8>,
    pub permissions: FileMode,
    pub owner: Owner,
    pub append: bool,
    /// Written after users are created (cloud-init's `defer`), so owners can be new users.
    pub defer: bool,
}

/// A bootcmd/runcmd entry: a string runs with `/bin/sh -c`, a list is an argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

/// NTP servers and pools, for a time daemon if the image has one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ntp {
    #[serde(default)]
    pub servers: Vec<Host>,
    #[serde(default)]
    pub pools: Vec<Host>,
}

/// A `#!` script from user-data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// File name (the MIME part's filename or `part-NNN`), no '/'.
    pub name: String,
    pub frequency: Frequency,
    #[serde(with = "b64")]
    pub content: Vec<u8>,
}

/// When a script runs, as cloud-init's script directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    PerBoot,
    PerInstance,
    Once,
}

/// cloud-init `manage_etc_hosts`: false, true (or "template"), or "localhost".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManageEtcHosts {
    #[default]
    Off,
    On,
    Localhost,
}

/// Kiln's own settings: `kiln:` in cloud-config, `[kiln]` in kiln.toml. Closed schema.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KilnSettings {
    #[serde(default)]
    pub role: Role,
    /// Emit every boot event, not only milestones.
    #[serde(default)]
    pub events_verbose: bool,
    /// The local IPVS load balancer in front of the API servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<crate::lb::settings::LbSettings>,
    /// Allow `exec` requests on the event port (tests, dev clusters; off by default:
    /// whoever holds the port then has a root shell).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debug_exec: bool,
    /// Cluster membership (`kiln cluster gen` writes it): etcd, kubeadm, kubelet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::settings::ClusterSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    #[default]
    Standalone,
    ControlPlane,
    Worker,
}

impl Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Command::Shell(c) => s.serialize_str(c),
            Command::Argv(v) => v.serialize(s),
        }
    }
}

/// One argv element: cloud-init stringifies scalars (`[sleep, 5]`).
struct Arg(String);

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Arg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command string or an argv list")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Command, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("empty command"));
                }
                Ok(Command::Shell(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Command, A::Error> {
                let mut argv = Vec::new();
                while let Some(Arg(s)) = a.next_element()? {
                    argv.push(s);
                }
                if argv.is_empty() {
                    return Err(serde::de::Error::custom("empty argv"));
                }
                Ok(Command::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ManageEtcHosts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ManageEtcHosts::Off => s.serialize_bool(false),
            ManageEtcHosts::On => s.serialize_bool(true),
            ManageEtcHosts::Localhost => s.serialize_str("localhost"),
        }
    }
}

impl<'de> Deserialize<'de> for ManageEtcHosts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ManageEtcHosts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, \"template\" or \"localhost\"")
            }
            fn visit_bool<E>(self, v: bool) -> Result<ManageEtcHosts, E> {
                Ok(if v {
                    ManageEtcHosts::On
                } else {
                    ManageEtcHosts::Off
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ManageEtcHosts, E> {
                match v {
                    "template" | "true" => Ok(ManageEtcHosts::On),
                    "localhost" => Ok(ManageEtcHosts::Localhost),
                    "false" => Ok(ManageEtcHosts::Off),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Bytes as a base64 string in JSON.
mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::super::codec::base64_decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}
