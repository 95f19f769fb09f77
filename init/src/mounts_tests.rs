//! Unit tests for mount tables, with a fake `Mounter` that keeps a mount table, renders it
//! as mountinfo, records calls and injects failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[derive(Default)]
struct FakeMounter {
    /// (target, fstype) currently mounted.
    mounted: Vec<(PathBuf, String)>,
    calls: Vec<String>,
    /// Mount of this target fails with this errno.
    fail_mount: Option<(PathBuf, i32)>,
    fail_mkdir: Option<PathBuf>,
    /// mountinfo returns garbage.
    garbage_mountinfo: bool,
}

impl FakeMounter {
    fn with_mounted(targets: &[(&str, &str)]) -> Self {
        Self {
            mounted: targets
                .iter()
                .map(|(t, f)| (PathBuf::from(t), f.to_string()))
                .collect(),
            ..Self::default()
        }
    }
}

impl Mounter for FakeMounter {
    fn mountinfo(&self) -> io::Result<Option<String>> {
        if self.garbage_mountinfo {
            return Ok(Some("not mountinfo\n".into()));
        }
        if !self.mounted.iter().any(|(t, _)| t == Path::new("/proc")) {
            return Ok(None);
        }
        let lines: Vec<String> = self
            .mounted
            .iter()
            .enumerate()
            .map(|(i, (t, f))| {
                let t = t.display().to_string().replace(' ', "\\040");
                format!("{} 1 0:{i} / {t} rw shared:1 - {f} {f} rw", i + 20)
            })
            .collect();
        Ok(Some(lines.join("\n")))
    }

    fn mkdir_all(&mut self, path: &Path) -> io::Result<()> {
        self.calls.push(format!("mkdir {}", path.display()));
        if self.fail_mkdir.as_deref() == Some(path) {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        Ok(())
    }

    fn mount(&mut self, spec: &MountSpec) -> io::Result<()> {
        self.calls.push(format!(
            "mount {} {} {} {:#x} {}",
            spec.fstype,
            spec.source,
            spec.target.display(),
            spec.flags,
            spec.data
        ));
        if let Some((target, errno)) = &self.fail_mount {
            if *target == spec.target {
                return Err(io::Error::from_raw_os_error(*errno));
            }
        }
        self.mounted
            .push((spec.target.clone(), spec.fstype.clone()));
        Ok(())
    }
}

fn targets(applied: &[Applied]) -> Vec<String> {
    applied
        .iter()
        .map(|a| match a {
            Applied::Mounted(t) => format!("+{}", t.display()),
            Applied::AlreadyMounted(t) => format!("={}", t.display()),
        })
        .collect()
}

#[test]
fn early_mounts_skip_what_is_already_mounted() {
    type Mounted<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Mounted, &[&str])] = &[
        (&[], &["+/proc", "+/sys", "+/dev", "+/run"]),
        (&[("/proc", "proc")], &["=/proc", "+/sys", "+/dev", "+/run"]),
        (
            &[("/proc", "proc"), ("/dev", "devtmpfs"), ("/run", "tmpfs")],
            &["=/proc", "+/sys", "=/dev", "=/run"],
        ),
        // Without /proc nothing can be known, so /dev is mounted again: /proc comes first.
        (
            &[("/dev", "devtmpfs")],
            &["+/proc", "+/sys", "=/dev", "+/run"],
        ),
    ];
    for (already, want) in cases {
        let mut fake = FakeMounter::with_mounted(already);
        let applied = apply(&mut fake, &early_mounts()).unwrap();
        assert_eq!(targets(&applied), *want, "already mounted: {already:?}");
    }
}

#[test]
fn applying_twice_mounts_nothing_the_second_time() {
    let mut fake = FakeMounter::default();
    let mut table = early_mounts();
    table.extend(writable_mounts(Path::new("/newroot")));
    apply(&mut fake, &table).unwrap();
    let calls = fake.calls.len();
    let again = apply(&mut fake, &table).unwrap();
    assert!(again
        .iter()
        .all(|a| matches!(a, Applied::AlreadyMounted(_))));
    assert_eq!(fake.calls.len(), calls, "no new calls: {:?}", fake.calls);
}

#[test]
fn writable_paths_create_overlay_dirs_then_mount() {
    let mut fake = FakeMounter::with_mounted(&[("/proc", "proc")]);
    apply(&mut fake, &writable_mounts(Path::new("/newroot"))).unwrap();
    let overlay_dirs = "lowerdir=/newroot/etc,upperdir=/run/kiln/overlay/etc/upper,\
                        workdir=/run/kiln/overlay/etc/work";
    let want = [
        "mkdir /newroot/tmp".to_string(),
        "mount tmpfs tmpfs /newroot/tmp 0x6 mode=1777".to_string(),
        "mkdir /newroot/var".to_string(),
        "mount tmpfs tmpfs /newroot/var 0x6 mode=0755".to_string(),
        "mkdir /run/kiln/overlay/etc/upper".to_string(),
        "mkdir /run/kiln/overlay/etc/work".to_string(),
        "mkdir /newroot/etc".to_string(),
        format!("mount overlay overlay /newroot/etc 0x0 {overlay_dirs}"),
    ];
    assert_eq!(fake.calls, want);
}

#[test]
fn stage2_root_uses_plain_paths() {
    let specs = writable_mounts(Path::new("/"));
    let got: Vec<String> = specs
        .iter()
        .map(|s| s.target.display().to_string())
        .collect();
    assert_eq!(got, ["/tmp", "/var", "/etc"]);
    assert!(
        specs[2].data.starts_with("lowerdir=/etc,"),
        "{}",
        specs[2].data
    );
}

#[test]
fn failures_name_the_step_and_stop() {
    let mut fake = FakeMounter {
        fail_mount: Some(("/sys".into(), libc::EBUSY)),
        ..FakeMounter::default()
    };
    match apply(&mut fake, &early_mounts()) {
        Err(MountError::Mount { target, source, .. }) => {
            assert_eq!(target, Path::new("/sys"));
            assert_eq!(source.raw_os_error(), Some(libc::EBUSY));
        }
        other => panic!("got {other:?}"),
    }
    assert!(
        !fake.calls.iter().any(|c| c.contains("/dev")),
        "stopped at /sys"
    );

    let mut fake = FakeMounter {
        fail_mkdir: Some("/run/kiln/overlay/etc/upper".into()),
        ..FakeMounter::with_mounted(&[("/proc", "proc")])
    };
    let got = apply(&mut fake, &writable_mounts(Path::new("/newroot")));
    assert!(matches!(got, Err(MountError::Mkdir(..))), "{got:?}");

    let mut fake = FakeMounter {
        garbage_mountinfo: true,
        ..FakeMounter::default()
    };
    let got = apply(&mut fake, &early_mounts());
    assert!(
        matches!(
            got,
            Err(MountError::ParseMountinfo(MountinfoError::Malformed(1)))
        ),
        "{got:?}"
    );
}

#[test]
fn move_is_a_flag_only_mount() {
    let mut fake = FakeMounter::with_mounted(&[("/proc", "proc")]);
    apply(&mut fake, &[move_spec("/proc", "/newroot/proc".into())]).unwrap();
    assert_eq!(
        fake.calls,
        ["mkdir /newroot/proc", "mount  /proc /newroot/proc 0x2000 "]
    );
}
