//! What one source contributes, and how contributions combine: sources are absorbed in
//! increasing priority (meta-data, ConfigDrive meta, user-data parts in order,
//! kiln.toml); a later scalar or table replaces an earlier one, lists append.
//!
//! cloud-init's default merge for several cloud-config parts is
//! `dict(replace)+list()+str()`, where lists are *replaced*; Kiln appends lists instead
//! (users, keys, write_files, bootcmd, runcmd) so that a part adding one file does not drop
//! the others. `merge_how` is not interpreted (it is reported unsupported).

use super::model::{
    Command, KilnSettings, ManageEtcHosts, NodeConfig, Ntp, Script, User, WriteFile,
};
use super::network::NetworkConfig;
use super::open::Unsupported;
use super::types::{DnsName, SshKey, Timezone, UserName};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    #[error("user {0} defined twice")]
    DuplicateUser(UserName),
}

#[derive(Debug, Default)]
pub struct Draft {
    pub instance_id: Option<String>,
    /// From meta-data: used only when user config names neither hostname nor fqdn.
    pub meta_hostname: Option<DnsName>,
    /// May be qualified: `node1.example.org` sets both names, as in cloud-init.
    pub hostname: Option<DnsName>,
    pub fqdn: Option<DnsName>,
    pub manage_etc_hosts: Option<ManageEtcHosts>,
    pub users: Vec<User>,
    pub ssh_authorized_keys: Vec<SshKey>,
    pub write_files: Vec<WriteFile>,
    pub bootcmd: Vec<Command>,
    pub runcmd: Vec<Command>,
    pub timezone: Option<Timezone>,
    /// `Some(None)`: explicitly disabled (`ntp: {enabled: false}`).
    pub ntp: Option<Option<Ntp>>,
    pub network: Option<NetworkConfig>,
    pub scripts: Vec<Script>,
    pub kiln: Option<KilnSettings>,
    pub unsupported: Unsupported,
}

fn replace<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

impl Draft {
    pub fn absorb(&mut self, later: Draft) {
        replace(&mut self.instance_id, later.instance_id);
        replace(&mut self.meta_hostname, later.meta_hostname);
        replace(&mut self.hostname, later.hostname);
        replace(&mut self.fqdn, later.fqdn);
        replace(&mut self.manage_etc_hosts, later.manage_etc_hosts);
        self.users.extend(later.users);
        for k in later.ssh_authorized_keys {
            if !self.ssh_authorized_keys.contains(&k) {
                self.ssh_authorized_keys.push(k);
            }
        }
        self.write_files.extend(later.write_files);
        self.bootcmd.extend(later.bootcmd);
        self.runcmd.extend(later.runcmd);
        replace(&mut self.timezone, later.timezone);
        replace(&mut self.ntp, later.ntp);
        replace(&mut self.network, later.network);
        self.scripts.extend(later.scripts);
        replace(&mut self.kiln, later.kiln);
        self.unsupported.extend(later.unsupported);
    }

    /// Checks what only the whole can show, resolves hostname/fqdn as cloud-init's
    /// `get_hostname_fqdn` does, and fills defaults.
    pub fn finish(self, origin: &str, fallback_id: String) -> Result<NodeConfig, DraftError> {
        let mut seen: Vec<&UserName> = Vec::new();
        for u in &self.users {
            if seen.contains(&&u.name) {
                return Err(DraftError::DuplicateUser(u.name.clone()));
            }
            seen.push(&u.name);
        }
        let named = match self.fqdn {
            Some(_) => self.hostname,
            None => self.hostname.or(self.meta_hostname),
        };
        let (hostname, fqdn) = match (named, self.fqdn) {
            (Some(h), Some(f)) => (Some(h.first_label()), Some(f)),
            (None, Some(f)) => (Some(f.first_label()), Some(f)),
            (Some(h), None) if h.is_qualified() => (Some(h.first_label()), Some(h)),
            (Some(h), None) => (Some(h.first_label()), None),
            (None, None) => (None, None),
        };
        let mut network = self.network.unwrap_or_default();
        if network.interfaces.is_empty() {
            network.interfaces = NetworkConfig::default().interfaces;
        }
        Ok(NodeConfig {
            origin: origin.to_string(),
            instance_id: self.instance_id.unwrap_or(fallback_id),
            hostname,
            fqdn,
            manage_etc_hosts: self.manage_etc_hosts.unwrap_or_default(),
            users: self.users,
            ssh_authorized_keys: self.ssh_authorized_keys,
            write_files: self.write_files,
            bootcmd: self.bootcmd,
            runcmd: self.runcmd,
            timezone: self.timezone,
            ntp: self.ntp.flatten(),
            network,
            scripts: self.scripts,
            kiln: self.kiln.unwrap_or_default(),
            unsupported: self.unsupported.0,
        })
    }
}
