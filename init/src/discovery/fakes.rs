//! Hand-written fakes of the discovery host boundary: block devices that can appear
//! late, in-memory volumes and files, a clock that only moves when slept on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Devices, each visible from the `n`-th listing on (0 = from the start).
#[derive(Default)]
pub struct FakeDevices {
    pub devices: Vec<(u32, Device)>,
    pub fail: bool,
    pub listings: Cell<u32>,
}

impl FakeDevices {
    /// A device with a probed filesystem (`iso` or vfat) and label, present from the start.
    pub fn add(&mut self, name: &str, kind: FsKind, label: &str) {
        self.add_late(0, name, kind, label);
    }

    pub fn add_late(&mut self, from: u32, name: &str, kind: FsKind, label: &str) {
        let fs = Some(Fs {
            kind,
            label: label.to_string(),
        });
        let dev = Device {
            name: name.to_string(),
            size: 1 << 20,
            partname: None,
            fs,
        };
        self.devices.push((from, dev));
    }
}

impl BlockDevices for FakeDevices {
    fn list(&self) -> io::Result<Vec<Device>> {
        let n = self.listings.get();
        self.listings.set(n + 1);
        if self.fail {
            return Err(io::Error::other("sysfs gone"));
        }
        Ok(self
            .devices
            .iter()
            .filter(|(from, _)| *from <= n)
            .map(|(_, d)| d.clone())
            .collect())
    }
}

/// Volume contents by device name; devices in `unmountable` fail to mount.
#[derive(Default)]
pub struct FakeVolumes {
    pub trees: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub unmountable: Vec<String>,
    /// `(device, fs type)` of every mount, in order.
    pub mounted: RefCell<Vec<(String, &'static str)>>,
}

impl FakeVolumes {
    pub fn put(&mut self, device: &str, path: &str, contents: &str) {
        let tree = self.trees.entry(device.to_string()).or_default();
        tree.insert(path.to_string(), contents.as_bytes().to_vec());
    }
}

impl Volumes for FakeVolumes {
    fn read(
        &self,
        device: &Device,
        fs: &Fs,
        paths: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, DiscoveryError> {
        let name = device.name.clone();
        self.mounted
            .borrow_mut()
            .push((name.clone(), fs.kind.mount_type()));
        if self.unmountable.contains(&name) {
            return Err(DiscoveryError::Mount {
                device: format!("/dev/{name}"),
                target: PathBuf::from("/run/kiln/seed-0"),
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        let tree = self.trees.get(&name);
        Ok(paths
            .iter()
            .map(|p| tree.and_then(|t| t.get(*p)).cloned())
            .collect())
    }
}

/// Files by absolute path.
#[derive(Default)]
pub struct FakeFiles(pub BTreeMap<PathBuf, Vec<u8>>);

impl FakeFiles {
    pub fn put(&mut self, path: &str, contents: &str) {
        self.0.insert(path.into(), contents.as_bytes().to_vec());
    }
}

impl Files for FakeFiles {
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, DiscoveryError> {
        Ok(self.0.get(path).cloned())
    }
}

/// Time moves only by `sleep`.
#[derive(Default)]
pub struct FakeClock {
    pub now: Cell<Duration>,
    pub sleeps: Cell<u32>,
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        self.now.get()
    }

    fn sleep(&self, d: Duration) {
        self.now.set(self.now.get() + d);
        self.sleeps.set(self.sleeps.get() + 1);
    }
}

/// A whole fake host.
pub struct World {
    pub cmdline: String,
    pub devices: FakeDevices,
    pub volumes: FakeVolumes,
    pub files: FakeFiles,
    pub clock: FakeClock,
    pub wait: WaitPolicy,
}

/// Where the fake stage 1 leaves a fetched HTTP seed.
pub const FAKE_NET_SEED: &str = "/run/kiln/nocloud-net";
pub const FAKE_STATE: &str = "/var/lib/kiln/config";

impl Default for World {
    fn default() -> Self {
        World {
            cmdline: "console=ttyS0 kiln.slot=a".to_string(),
            devices: FakeDevices::default(),
            volumes: FakeVolumes::default(),
            files: FakeFiles::default(),
            clock: FakeClock::default(),
            wait: WaitPolicy {
                total: Duration::ZERO,
                ..WaitPolicy::default()
            },
        }
    }
}

impl World {
    pub fn env(&self) -> Env<'_> {
        Env {
            cmdline: &self.cmdline,
            devices: &self.devices,
            volumes: &self.volumes,
            files: &self.files,
            state_dir: Path::new(FAKE_STATE),
            net_seed_dir: Path::new(FAKE_NET_SEED),
            clock: &self.clock,
            wait: self.wait,
        }
    }

    /// A NoCloud volume on `dev` with meta-data and user-data.
    pub fn cidata(&mut self, dev: &str, kind: FsKind, label: &str) {
        self.devices.add(dev, kind, label);
        self.volumes.put(dev, "meta-data", "instance-id: i-1\n");
        self.volumes.put(dev, "user-data", "#cloud-config\n");
    }

    pub fn config_drive(&mut self, dev: &str) {
        self.devices.add(dev, FsKind::Iso9660, "config-2");
        let meta = "openstack/latest/meta_data.json";
        self.volumes.put(dev, meta, "{\"uuid\": \"u-1\"}");
    }

    pub fn state_copy(&mut self) {
        self.files
            .put(&format!("{FAKE_STATE}/origin"), "nocloud:/dev/sr0");
        self.files
            .put(&format!("{FAKE_STATE}/meta-data"), "instance-id: old\n");
    }
}
