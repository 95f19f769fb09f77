//! Providers for labelled seed volumes (KILN, NoCloud `cidata`, ConfigDrive `config-2`):
//! pick the first matching vfat/iso9660 device by kernel name, mount it read-only through
//! `Volumes`, read the layout's files.

use super::{DiscoveryError, Env, Found, Layout, Provider};

/// A provider for one `Layout`, selected by volume label.
#[derive(Debug, Clone, Copy)]
pub struct LabelProvider(pub &'static Layout);

impl Provider for LabelProvider {
    fn name(&self) -> &'static str {
        self.0.name
    }

    fn load(&self, env: &Env, notes: &mut Vec<String>) -> Result<Option<Found>, DiscoveryError> {
        let layout = self.0;
        let mut devices = env.devices.list().map_err(DiscoveryError::ListDevices)?;
        devices.sort_by(|a, b| a.name.cmp(&b.name));
        let mut matching = devices.iter().filter_map(|d| {
            let fs = d.fs.as_ref()?;
            layout
                .labels
                .contains(&fs.label.as_str())
                .then_some((d, fs))
        });
        let Some((device, fs)) = matching.next() else {
            return Ok(None);
        };
        let others: Vec<&str> = matching.map(|(d, _)| d.name.as_str()).collect();
        if !others.is_empty() {
            notes.push(format!(
                "{} seed on /dev/{} used; also labelled {}: {}",
                layout.name,
                device.name,
                fs.label,
                others.join(", ")
            ));
        }
        let origin = format!("{}:/dev/{}", layout.name, device.name);
        let contents = env.volumes.read(device, fs, &layout.paths())?;
        let sources = layout.collect(contents, &origin)?;
        Ok(Some(Found::new(sources, origin)))
    }
}
