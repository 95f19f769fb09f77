//! Seed layouts as data: which files a source holds, where each goes in `Sources`, and
//! which must be present for the source to count (otherwise it is `Broken`).

use crate::config::Sources;

use super::DiscoveryError;

/// A field of `config::Sources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    UserData,
    MetaData,
    NetworkConfig,
    KilnToml,
    ConfigDriveMeta,
    ConfigDriveNetwork,
}

impl Slot {
    pub fn get(self, s: &Sources) -> &Option<Vec<u8>> {
        match self {
            Slot::UserData => &s.user_data,
            Slot::MetaData => &s.meta_data,
            Slot::NetworkConfig => &s.network_config,
            Slot::KilnToml => &s.kiln_toml,
            Slot::ConfigDriveMeta => &s.configdrive_meta,
            Slot::ConfigDriveNetwork => &s.configdrive_network,
        }
    }

    pub fn get_mut(self, s: &mut Sources) -> &mut Option<Vec<u8>> {
        match self {
            Slot::UserData => &mut s.user_data,
            Slot::MetaData => &mut s.meta_data,
            Slot::NetworkConfig => &mut s.network_config,
            Slot::KilnToml => &mut s.kiln_toml,
            Slot::ConfigDriveMeta => &mut s.configdrive_meta,
            Slot::ConfigDriveNetwork => &mut s.configdrive_network,
        }
    }
}

/// Files of one kind of seed.
#[derive(Debug)]
pub struct Layout {
    /// Provider name and origin prefix.
    pub name: &'static str,
    /// Volume labels that select it (exact, as cloud-init compares them).
    pub labels: &'static [&'static str],
    /// Relative path → field.
    pub files: &'static [(&'static str, Slot)],
    /// At least one of these must be present.
    pub needs_one_of: &'static [Slot],
}

/// A USB stick or ISO of our own.
pub const KILN: Layout = Layout {
    name: "kiln",
    labels: &["KILN", "kiln"],
    files: &[
        ("kiln.toml", Slot::KilnToml),
        ("user-data", Slot::UserData),
        ("meta-data", Slot::MetaData),
        ("network-config", Slot::NetworkConfig),
    ],
    needs_one_of: &[
        Slot::KilnToml,
        Slot::UserData,
        Slot::MetaData,
        Slot::NetworkConfig,
    ],
};

/// cloud-init NoCloud. cloud-init requires meta-data; we accept user-data alone too.
pub const NOCLOUD: Layout = Layout {
    name: "nocloud",
    labels: &["cidata", "CIDATA"],
    files: &[
        ("user-data", Slot::UserData),
        ("meta-data", Slot::MetaData),
        ("network-config", Slot::NetworkConfig),
    ],
    needs_one_of: &[Slot::UserData, Slot::MetaData],
};

/// OpenStack ConfigDrive (version `latest` only).
pub const CONFIG_DRIVE: Layout = Layout {
    name: "configdrive",
    labels: &["config-2", "CONFIG-2"],
    files: &[
        ("openstack/latest/user_data", Slot::UserData),
        ("openstack/latest/meta_data.json", Slot::ConfigDriveMeta),
        (
            "openstack/latest/network_data.json",
            Slot::ConfigDriveNetwork,
        ),
    ],
    needs_one_of: &[Slot::ConfigDriveMeta, Slot::UserData],
};

impl Layout {
    pub fn paths(&self) -> Vec<&'static str> {
        self.files.iter().map(|(p, _)| *p).collect()
    }

    /// Puts `contents` (one per `files` entry, `None` = absent) into `Sources`, or says
    /// why `volume` does not hold a usable seed.
    pub fn collect(
        &self,
        contents: Vec<Option<Vec<u8>>>,
        volume: &str,
    ) -> Result<Sources, DiscoveryError> {
        let mut sources = Sources::default();
        for ((_, slot), bytes) in self.files.iter().zip(contents) {
            *slot.get_mut(&mut sources) = bytes;
        }
        if self.needs_one_of.iter().any(|s| s.get(&sources).is_some()) {
            return Ok(sources);
        }
        let wanted: Vec<&str> = self
            .files
            .iter()
            .filter(|(_, s)| self.needs_one_of.contains(s))
            .map(|(p, _)| *p)
            .collect();
        Err(DiscoveryError::Broken {
            volume: volume.to_string(),
            reason: format!("none of {} found", wanted.join(", ")),
        })
    }
}
