//! Kiln's native `kiln.toml`: the same content as `NodeConfig` in Kiln's closed schema
//! (`deny_unknown_fields` everywhere, errors with line and column). Kiln's own settings
//! sit in a `[kiln]` table, the same `KilnSettings` schema as the `kiln:` key of
//! cloud-config. Network uses `NetworkConfig`'s own shape (`[[network.interfaces]]`).

use serde::Deserialize;

use super::doc::{self, DocError};
use super::draft::Draft;
use super::files::{FileError, FileSpec};
use super::mode::FileMode;
use super::model::{Command, KilnSettings, ManageEtcHosts, Ntp, User};
use super::network::{NetworkConfig, NetworkError};
use super::types::{AbsPath, DnsName, Owner, SshKey, Timezone};

#[derive(Debug, thiserror::Error)]
pub enum KilnTomlError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("network")]
    Network(#[source] NetworkError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KilnToml {
    instance_id: Option<String>,
    hostname: Option<DnsName>,
    fqdn: Option<DnsName>,
    manage_etc_hosts: Option<ManageEtcHosts>,
    #[serde(default)]
    users: Vec<User>,
    #[serde(default)]
    ssh_authorized_keys: Vec<SshKey>,
    #[serde(default)]
    write_files: Vec<FileToml>,
    #[serde(default)]
    bootcmd: Vec<Command>,
    #[serde(default)]
    runcmd: Vec<Command>,
    timezone: Option<Timezone>,
    ntp: Option<Ntp>,
    network: Option<NetworkConfig>,
    kiln: Option<KilnSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    path: AbsPath,
    #[serde(default)]
    content: String,
    encoding: Option<String>,
    permissions: Option<FileMode>,
    owner: Option<Owner>,
    #[serde(default)]
    append: bool,
    #[serde(default)]
    defer: bool,
}

pub fn parse(text: &str) -> Result<Draft, KilnTomlError> {
    let k: KilnToml = doc::toml(text)?;
    if let Some(n) = &k.network {
        n.validate().map_err(KilnTomlError::Network)?;
    }
    let write_files = k
        .write_files
        .into_iter()
        .map(|f| {
            FileSpec {
                path: f.path,
                content: f.content,
                binary: false,
                encoding: f.encoding,
                permissions: f.permissions,
                owner: f.owner,
                append: f.append,
                defer: f.defer,
            }
            .decode()
        })
        .collect::<Result<Vec<_>, FileError>>()?;
    Ok(Draft {
        instance_id: k.instance_id.filter(|s| !s.trim().is_empty()),
        hostname: k.hostname,
        fqdn: k.fqdn,
        manage_etc_hosts: k.manage_etc_hosts,
        users: k.users,
        ssh_authorized_keys: k.ssh_authorized_keys,
        write_files,
        bootcmd: k.bootcmd,
        runcmd: k.runcmd,
        timezone: k.timezone,
        ntp: k.ntp.map(Some),
        network: k.network,
        kiln: k.kiln,
        ..Draft::default()
    })
}
