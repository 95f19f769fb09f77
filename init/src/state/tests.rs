//! `prepare` and `fallback_tmpfs` against hand-written fakes: real image files behind
//! `Disks`, a kernel-shaped sysfs in a temp dir, recorded tool runs, mounts and ioctls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fs::OpenOptions;

use super::gpt::tests::imager_disk;
use super::gpt::DiskIo;
use super::host::RunOutput;
use super::locate::tests::fake_sysfs;
use super::*;
use crate::testutil::TempDir;

const MIB: u64 = 1 << 20;
const PART_SIZE: &str = "sys/devices/pci0000:00/virtio1/block/vda/vda4/size";

/// Maps device nodes to image files.
struct FakeDisks(HashMap<PathBuf, PathBuf>);

impl Disks for FakeDisks {
    fn open(&mut self, path: &Path, write: bool) -> io::Result<Box<dyn DiskIo>> {
        let file = self.0.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(
            OpenOptions::new().read(true).write(write).open(file)?,
        ))
    }
}

/// Records runs; exit codes by program (0 when absent).
#[derive(Default)]
struct FakeRunner {
    codes: HashMap<&'static str, i32>,
    runs: Vec<String>,
}

impl Runner for FakeRunner {
    fn run(&mut self, program: &str, args: &[String]) -> io::Result<RunOutput> {
        self.runs.push(format!("{program} {}", args.join(" ")));
        let code = self.codes.get(program).copied().unwrap_or(0);
        let tail = if code == 0 { "" } else { "it broke" };
        Ok(RunOutput {
            code: Some(code),
            tail: tail.into(),
        })
    }
}

/// Records calls; a successful resize updates sysfs like the kernel would.
#[derive(Default)]
struct FakeKernel {
    size_file: PathBuf,
    fail_blkpg: bool,
    fail_rrpart: bool,
    /// Accept the resize but leave sysfs stale.
    lie: bool,
    /// What BLKPG was asked for; BLKRRPART "re-reads" it.
    wanted: u64,
    calls: Vec<String>,
}

impl Kernel for FakeKernel {
    fn resize_partition(&mut self, disk: &Path, n: u32, start: u64, len: u64) -> io::Result<()> {
        let name = disk.file_name().unwrap().to_string_lossy();
        self.calls
            .push(format!("blkpg {name} {n} {} {}", start / MIB, len / MIB));
        self.wanted = len;
        if self.fail_blkpg {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if !self.lie {
            std::fs::write(&self.size_file, format!("{}\n", len / 512))?;
        }
        Ok(())
    }

    fn reread_partitions(&mut self, _disk: &Path) -> io::Result<()> {
        self.calls.push("rrpart".into());
        if self.fail_rrpart {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        std::fs::write(&self.size_file, format!("{}\n", self.wanted / 512))
    }

    fn detach(&mut self, target: &Path) -> io::Result<()> {
        self.calls.push(format!("detach {}", target.display()));
        Ok(())
    }

    fn copy_mode(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.calls
            .push(format!("mode {} {}", from.display(), to.display()));
        Ok(())
    }
}

/// Static mountinfo; records mounts as `fstype source target`.
#[derive(Default)]
struct FakeMounter {
    mountinfo: String,
    mounts: Vec<String>,
}

impl Mounter for FakeMounter {
    fn mountinfo(&self) -> io::Result<Option<String>> {
        Ok(Some(self.mountinfo.clone()))
    }

    fn mkdir_all(&mut self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn mount(&mut self, spec: &MountSpec) -> io::Result<()> {
        let t = spec.target.display();
        self.mounts
            .push(format!("{} {} {t}", spec.fstype, spec.source));
        Ok(())
    }
}

/// What stage 1 leaves behind today: tmpfs /var and an /etc overlay on /run.
const STAGE1_MOUNTINFO: &str = "\
22 1 0:20 / / ro,relatime - squashfs /dev/vda2 ro
30 22 0:25 / /var rw,nosuid,nodev - tmpfs tmpfs rw,mode=755
31 22 0:26 / /etc rw - overlay overlay rw,lowerdir=/etc
";

struct World {
    tmp: TempDir,
    disks: FakeDisks,
    runner: FakeRunner,
    kernel: FakeKernel,
    mounter: FakeMounter,
    events: Vec<String>,
}

impl World {
    /// An imager disk of `image_mib` seen by the kernel as `disk_mib` MiB; STATE holds a
    /// real ext4 of `fs_mib` MiB, or zeros.
    fn new(image_mib: u64, disk_mib: u64, fs_mib: Option<u64>) -> Self {
        let tmp = TempDir::new("state-prepare");
        fake_sysfs(&tmp, disk_mib * MIB, 64 * MIB);
        for dir in ["root/etc", "root/root"] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        let disk = tmp.path().join("disk.img");
        imager_disk(&disk, image_mib);
        OpenOptions::new()
            .write(true)
            .open(&disk)
            .unwrap()
            .set_len(disk_mib * MIB)
            .unwrap();
        let part = tmp.path().join("part.img");
        std::fs::File::create(&part)
            .unwrap()
            .set_len(64 * MIB)
            .unwrap();
        if let Some(mib) = fs_mib {
            let out = std::process::Command::new("mkfs.ext4")
                .args(["-F", "-q"])
                .arg(&part)
                .arg(format!("{}k", mib * 1024))
                .output()
                .expect("mkfs.ext4 (e2fsprogs) must be installed");
            assert!(out.status.success(), "{out:?}");
        }
        let dev = tmp.path().join("dev");
        let disks = FakeDisks(HashMap::from([
            (dev.join("vda"), disk),
            (dev.join("vda4"), part),
        ]));
        let kernel = FakeKernel {
            size_file: tmp.path().join(PART_SIZE),
            ..FakeKernel::default()
        };
        let mounter = FakeMounter {
            mountinfo: STAGE1_MOUNTINFO.into(),
            ..FakeMounter::default()
        };
        Self {
            tmp,
            disks,
            runner: FakeRunner::default(),
            kernel,
            mounter,
            events: Vec::new(),
        }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Env) -> T) -> T {
        let events = &mut self.events;
        let mut emit = |e: &Event| events.push(crate::events::encode(e, Duration::ZERO));
        let mut env = Env {
            sys_root: self.tmp.path().join("sys"),
            dev_root: self.tmp.path().join("dev"),
            root_dir: self.tmp.path().join("root"),
            mbr_disk: None,
            disks: &mut self.disks,
            runner: &mut self.runner,
            kernel: &mut self.kernel,
            mounter: &mut self.mounter,
            emit: &mut emit,
        };
        f(&mut env)
    }

    fn dev(&self, name: &str) -> String {
        self.tmp.path().join("dev").join(name).display().to_string()
    }
}

use std::time::Duration;

#[test]
fn first_boot_grows_formats_and_mounts() {
    let mut w = World::new(154, 300, None);
    let got = w.with(prepare).unwrap();
    let vda4 = w.dev("vda4");
    assert_eq!(got.bytes, 210 * MIB);
    assert!(got.formatted && got.grown && got.fsck.is_none(), "{got:?}");
    assert_eq!(got.overlays, [PathBuf::from("/etc"), "/root".into()]);
    assert_eq!(got.skipped, [PathBuf::from("/home")]);
    assert_eq!(
        w.runner.runs,
        [format!(
            "{} {}",
            ext4::MKFS,
            ext4::mkfs_args(&vda4).join(" ")
        )]
    );
    assert_eq!(
        w.kernel.calls,
        [
            "blkpg vda 4 89 210",
            "detach /var",
            "mode /run/kiln/rootfs-ro/etc /var/lib/kiln/overlay/etc/upper",
            "detach /etc",
            "mode /run/kiln/rootfs-ro/root /var/lib/kiln/overlay/root/upper",
        ]
    );
    assert_eq!(
        w.mounter.mounts,
        [
            format!("ext4 {vda4} /var"),
            " / /run/kiln/rootfs-ro".into(),
            "  /run/kiln/rootfs-ro".into(),
            "overlay overlay /etc".into(),
            "overlay overlay /root".into(),
        ]
    );
    let names: Vec<&str> = w
        .events
        .iter()
        .map(|e| e.split('"').nth(5).unwrap())
        .collect();
    assert_eq!(names, ["state_grown", "state_formatted", "state_mounted"]);
    assert!(
        w.events[2].ends_with(&format!(
            "\"device\":\"{vda4}\",\"bytes\":{},\"formatted\":true,\"grown\":true}}",
            210 * MIB
        )),
        "{}",
        w.events[2]
    );
    assert!(w.events[0].contains(&format!(
        "\"from_bytes\":{},\"to_bytes\":{}",
        64 * MIB,
        210 * MIB
    )));
}

#[test]
fn later_boot_checks_and_mounts() {
    let mut w = World::new(154, 154, Some(64));
    w.runner.codes.insert(ext4::E2FSCK, 1);
    let got = w.with(prepare).unwrap();
    let vda4 = w.dev("vda4");
    assert!(!got.formatted && !got.grown, "{got:?}");
    assert_eq!(got.fsck, Some(Fsck::Fixed));
    assert_eq!(w.runner.runs, [format!("{} -p {vda4}", ext4::E2FSCK)]);
    assert!(!w.kernel.calls.iter().any(|c| c.starts_with("blkpg")));
    assert!(
        w.events[0].contains("\"event\":\"state_fsck\""),
        "{:?}",
        w.events
    );
    assert!(w.events[0].contains("\"result\":\"fixed\""));
}

#[test]
fn larger_disk_grows_the_existing_filesystem_online() {
    let mut w = World::new(154, 300, Some(64));
    let got = w.with(prepare).unwrap();
    let vda4 = w.dev("vda4");
    assert!(!got.formatted && got.grown, "{got:?}");
    assert_eq!(
        w.runner.runs,
        [
            format!("{} -p {vda4}", ext4::E2FSCK),
            format!("{} {vda4}", ext4::RESIZE2FS)
        ]
    );
    // resize2fs runs after /var is mounted (online resize).
    assert_eq!(w.mounter.mounts[0], format!("ext4 {vda4} /var"));
}

#[test]
fn failures_are_errors_with_a_cause() {
    type Setup = fn(&mut World);
    type Want = fn(&StateError) -> bool;
    let cases: &[(&str, Option<u64>, Setup, Want)] = &[
        (
            "fsck uncorrected",
            Some(64),
            |w| {
                w.runner.codes.insert(ext4::E2FSCK, 4);
            },
            |e| matches!(e, StateError::Tool { code: Some(4), .. }),
        ),
        (
            "mkfs fails",
            None,
            |w| {
                w.runner.codes.insert(ext4::MKFS, 1);
            },
            |e| matches!(e, StateError::Tool { code: Some(1), .. }),
        ),
        (
            "kernel refuses",
            Some(64),
            |w| {
                w.kernel.fail_blkpg = true;
                w.kernel.fail_rrpart = true;
            },
            |e| matches!(e, StateError::TellKernel { number: 4, .. }),
        ),
        (
            "kernel stale",
            Some(64),
            |w| w.kernel.lie = true,
            |e| matches!(e, StateError::KernelStale { .. }),
        ),
        (
            "no partition",
            Some(64),
            |w| {
                let p = "sys/devices/pci0000:00/virtio1/block/vda/vda4/uevent";
                w.tmp.write(p, "DEVNAME=vda4\nPARTNAME=OTHER\n");
            },
            |e| matches!(e, StateError::NotFound),
        ),
    ];
    for (name, fs, setup, want) in cases {
        let mut w = World::new(154, 300, *fs);
        setup(&mut w);
        let err = w.with(prepare).unwrap_err();
        assert!(want(&err), "{name}: {err:?}");
        assert!(
            !w.mounter.mounts.iter().any(|m| m.starts_with("ext4")),
            "{name}: mounted anyway: {:?}",
            w.mounter.mounts
        );
        assert!(
            !w.events.iter().any(|e| e.contains("state_mounted")),
            "{name}"
        );
    }
    let mut w = World::new(154, 300, None);
    w.kernel.fail_blkpg = true;
    w.with(prepare).unwrap();
    assert_eq!(w.kernel.calls[..2], ["blkpg vda 4 89 210", "rrpart"]);
}

#[test]
fn fallback_mounts_tmpfs_and_keeps_existing_mounts() {
    let mut w = World::new(154, 154, None);
    w.mounter.mountinfo = STAGE1_MOUNTINFO.lines().take(1).collect();
    let got = w.with(fallback_tmpfs).unwrap();
    assert_eq!(got, [PathBuf::from("/etc"), "/root".into()]);
    assert_eq!(
        w.mounter.mounts,
        [
            "tmpfs tmpfs /var",
            " / /run/kiln/rootfs-ro",
            "  /run/kiln/rootfs-ro",
            "overlay overlay /etc",
            "overlay overlay /root",
        ]
    );
    assert!(w.mounter.mounts.iter().all(|m| !m.contains("detach")));

    let mut w = World::new(154, 154, None);
    w.with(fallback_tmpfs).unwrap();
    assert_eq!(
        w.mounter.mounts,
        [
            " / /run/kiln/rootfs-ro",
            "  /run/kiln/rootfs-ro",
            "overlay overlay /root"
        ],
        "stage 1's /var and /etc are kept"
    );
    assert!(unavailable_event("no disk").fields.len() == 1);
}
