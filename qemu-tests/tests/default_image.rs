//! The default node image end to end, in ONE test so it is built only twice: build it,
//! check every on-disk format with tools we did not write (sfdisk, fsck.fat, mtools,
//! unsquashfs, zstd + cpio, qemu-img), boot it to `ready`, then rebuild it `--locked` and
//! demand byte-identical outputs.
//!
//! Images and scratch files live in `target/qemu-tests/default-image/`; they are kept (and
//! their path printed) when the test fails, or with `KILN_KEEP_ARTIFACTS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use kiln_imager::gpt::{self, DiskPlan, Partition};
use kiln_imager::pipeline::{self, BuildOptions};
use qemu_tests::image::{self, extract, tool, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm, VmConfig};
use serde_json::Value;

const TOOLS: &[&str] = &[
    "sfdisk",
    "fsck.fat",
    "mcopy",
    "unsquashfs",
    "zstd",
    "cpio",
    "qemu-img",
    "sha256sum",
];
const SECTOR: u64 = 512;
/// Boot events of the contract, in the order init emits them.
const BOOT_SEQUENCE: [&str; 8] = [
    "stage1",
    "modules",
    "root_mounted",
    "stage2",
    "service_starting",
    "network_online",
    "service_ready",
    "ready",
];

/// The test's folder: removed on success, kept and printed on failure.
struct WorkDir {
    path: PathBuf,
    passed: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let keep = std::env::var("KILN_KEEP_ARTIFACTS").is_ok_and(|v| v == "1");
        if !self.passed || keep {
            eprintln!("default-image: artifacts kept in {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("default-image: remove {}: {e}", self.path.display());
        }
    }
}

fn step(t: &Instant, what: &str) {
    eprintln!(
        "default-image: {what} done at {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn default_image_checks_boots_and_rebuilds_identically() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let t = Instant::now();
    let mut work = WorkDir {
        path: image::target_dir().join("qemu-tests/default-image"),
        passed: false,
    };
    if work.path.exists() {
        std::fs::remove_dir_all(&work.path)
            .with_context(|| format!("clean {}", work.path.display()))?;
    }
    let (a, b, scratch) = (
        work.path.join("a"),
        work.path.join("b"),
        work.path.join("scratch"),
    );
    std::fs::create_dir_all(&scratch)?;
    eprintln!("default-image: working in {}", work.path.display());

    let opts_a = BuildOptions {
        out: a.clone(),
        ..BuildOptions::default()
    };
    let report = pipeline::build(&opts_a)?;
    step(&t, "build a");
    let (spec, lock_a) = pipeline::load_spec(&opts_a)?;
    assert_eq!(lock_a, a.join("kiln.lock"));
    let raw = a.join(format!("{}.raw", spec.name));
    let qcow2 = a.join(format!("{}.qcow2", spec.name));
    let plan = gpt::plan(&spec.disk, spec.arch, &spec.name);

    check_gpt(&raw, &plan)?;
    let release = check_root(&raw, part(&plan, "KILN-ROOT-A"), &scratch)?;
    let modules = check_esp(&raw, part(&plan, "EFI"), &scratch, &release)?;
    check_qcow2(&raw, &qcow2)?;
    step(&t, "format checks");

    boot(&qcow2, &release, modules)?;
    step(&t, "boot");

    std::fs::create_dir_all(&b)?;
    std::fs::copy(&lock_a, b.join("kiln.lock"))?;
    let opts_b = BuildOptions {
        out: b.clone(),
        locked: true,
        ..BuildOptions::default()
    };
    pipeline::build(&opts_b)?;
    step(&t, "build b (--locked)");
    let names = [format!("{}.raw", spec.name), format!("{}.qcow2", spec.name)];
    let files: Vec<PathBuf> = names.iter().flat_map(|n| [a.join(n), b.join(n)]).collect();
    let digests = sha256_all(&files)?;
    for (i, name) in names.iter().enumerate() {
        let (da, db) = (&digests[2 * i], &digests[2 * i + 1]);
        assert_eq!(
            da,
            db,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    let reported: Vec<&str> = report.outputs.iter().map(|o| o.2.as_str()).collect();
    assert_eq!(reported, ["", digests[2].as_str()], "digests kiln reported");
    assert_eq!(
        std::fs::read_to_string(&lock_a)?,
        std::fs::read_to_string(b.join("kiln.lock"))?,
        "lock files differ"
    );
    step(&t, "reproducibility");
    work.passed = true;
    Ok(())
}

/// SHA-256 of every file, hashed concurrently (the raw images are 2 GiB each).
fn sha256_all(files: &[PathBuf]) -> Result<Vec<String>> {
    std::thread::scope(|s| {
        let jobs: Vec<_> = files
            .iter()
            .map(|f| s.spawn(move || image::sha256(f)))
            .collect();
        jobs.into_iter()
            .map(|j| j.join().expect("sha256 thread panicked"))
            .collect()
    })
}

fn part<'a>(plan: &'a DiskPlan, name: &str) -> &'a Partition {
    plan.partition(name)
        .unwrap_or_else(|| panic!("plan lacks {name}"))
}

/// sfdisk reads both GPT headers: the table must equal the plan, with nothing on stderr
/// (a bad backup header or CRC is reported there).
fn check_gpt(raw: &Path, plan: &DiskPlan) -> Result<()> {
    let out = tool_ok("sfdisk", &[Path::new("-d"), raw])?;
    assert_eq!(out.stderr, "", "sfdisk -d stderr");
    let dump = image::parse_sfdisk_dump(&out.stdout)?;
    assert_eq!(dump.label, "gpt");
    assert_eq!(dump.label_id, plan.disk_guid);
    assert_eq!(dump.first_lba, 34);
    assert_eq!(
        dump.last_lba,
        plan.size / SECTOR - 34,
        "backup GPT position"
    );
    let got: Vec<_> = dump
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.type_guid.as_str(), p.start, p.size))
        .collect();
    let want: Vec<_> = [
        ("EFI", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        ("KILN-ROOT-A", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"),
        ("KILN-ROOT-B", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"),
        ("KILN-STATE", "4D21B016-B534-45C2-A9FB-5C16E091FD2D"),
    ]
    .iter()
    .map(|&(name, ty)| {
        let p = part(plan, name);
        (name, ty, p.offset / SECTOR, p.size / SECTOR)
    })
    .collect();
    assert_eq!(got, want, "partitions (name, type, start, size)");
    let uuids: Vec<_> = dump.partitions.iter().map(|p| p.uuid.as_str()).collect();
    let planned: Vec<_> = plan.partitions.iter().map(|p| p.uuid.as_str()).collect();
    assert_eq!(uuids, planned, "partition uuids");

    let verify = tool_ok("sfdisk", &[Path::new("--verify"), raw])?;
    assert_eq!(verify.stderr, "", "sfdisk --verify stderr");
    assert!(
        verify.stdout.lines().any(|l| l == "No errors detected."),
        "sfdisk --verify: {}",
        verify.stdout
    );
    Ok(())
}

/// Lists the root squashfs with unsquashfs; returns the one kernel release it carries.
fn check_root(raw: &Path, root: &Partition, scratch: &Path) -> Result<String> {
    let img = scratch.join("root.img");
    extract(raw, root.offset, root.size, &img)?;
    let stats = tool_ok("unsquashfs", &[Path::new("-s"), &img])?;
    assert!(
        stats.stdout.lines().any(|l| l == "Compression zstd"),
        "unsquashfs -s: {}",
        stats.stdout
    );
    let list = tool_ok("unsquashfs", &[Path::new("-l"), &img])?;
    let paths: BTreeSet<&str> = list
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("squashfs-root"))
        .collect();
    let releases: Vec<&str> = paths
        .iter()
        .filter_map(|p| p.strip_prefix("/usr/lib/modules/"))
        .filter(|rest| !rest.contains('/'))
        .collect();
    assert_eq!(
        releases.len(),
        1,
        "kernel releases in the root: {releases:?}"
    );
    let release = releases[0].to_string();
    let overlay = format!("/usr/lib/modules/{release}/kernel/fs/overlayfs/overlay.ko.xz");
    let required = [
        "/usr/sbin/init",
        "/usr/bin/containerd",
        "/usr/sbin/runc",
        "/etc/ssl/certs/ca-certificates.crt",
        overlay.as_str(),
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/var",
        "/tmp",
    ];
    let missing: Vec<_> = required.iter().filter(|p| !paths.contains(**p)).collect();
    assert!(missing.is_empty(), "missing from the root: {missing:?}");
    let manuals: Vec<_> = paths
        .iter()
        .filter(|p| p.starts_with("/usr/share/man/"))
        .take(5)
        .collect();
    assert!(manuals.is_empty(), "manuals left in the root: {manuals:?}");

    // Decompress one file with unsquashfs: /usr/sbin/init must be the init kiln embeds.
    let dest = scratch.join("root-files");
    tool_ok(
        "unsquashfs",
        &[
            Path::new("-q"),
            Path::new("-d"),
            &dest,
            &img,
            Path::new("usr/sbin/init"),
        ],
    )?;
    let init = std::fs::read(dest.join("usr/sbin/init"))?;
    let embedded = kiln_imager::embedded::INIT_X86_64.context("kiln embeds no init")?;
    assert!(
        init == embedded,
        "/usr/sbin/init differs from the embedded init"
    );
    std::fs::remove_file(&img)?;
    Ok(release)
}

/// Checks the ESP with fsck.fat, reads files back with mtools and lists the initramfs
/// with cpio; returns the number of modules in modules.load.
fn check_esp(raw: &Path, esp: &Partition, scratch: &Path, release: &str) -> Result<usize> {
    let img = scratch.join("esp.img");
    extract(raw, esp.offset, esp.size, &img)?;
    tool_ok("fsck.fat", &[Path::new("-n"), &img])?;
    let listing = tool_ok("fsck.fat", &[Path::new("-n"), Path::new("-l"), &img])?;
    // Lines are `Checking file /path` or `Checking file /path (SHORTNAME)`.
    let files: BTreeSet<&str> = listing
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Checking file "))
        .map(|l| l.split(" (").next().unwrap_or(l))
        .collect();
    let required = [
        "/EFI/BOOT/BOOTX64.EFI",
        "/loader/loader.conf",
        "/loader/entries/kiln-a+3.conf",
        "/kiln/a/vmlinuz",
        "/kiln/a/initrd.img",
        "/kiln/b",
    ];
    let missing: Vec<_> = required.iter().filter(|p| !files.contains(**p)).collect();
    assert!(
        missing.is_empty(),
        "missing from the ESP: {missing:?} in {files:?}"
    );

    let read = |inside: &str| -> Result<PathBuf> {
        let dest = scratch.join(inside.rsplit('/').next().unwrap_or(inside));
        let src = format!("::{inside}");
        tool_ok(
            "mcopy",
            &[
                Path::new("-n"),
                Path::new("-i"),
                &img,
                Path::new(&src),
                &dest,
            ],
        )?;
        Ok(dest)
    };
    let loader = std::fs::read_to_string(read("loader/loader.conf")?)?;
    assert!(loader.lines().any(|l| l == "default kiln-*"), "{loader}");
    let entry = std::fs::read_to_string(read("loader/entries/kiln-a+3.conf")?)?;
    for line in [
        format!("version {release}"),
        "linux /kiln/a/vmlinuz".into(),
        "initrd /kiln/a/initrd.img".into(),
    ] {
        assert!(entry.lines().any(|l| l == line), "no {line:?} in {entry}");
    }
    assert!(
        entry.lines().any(|l| l.starts_with("options kiln.slot=a ")),
        "{entry}"
    );

    let initrd = read("kiln/a/initrd.img")?;
    let cpio = scratch.join("initrd.cpio");
    tool_ok(
        "zstd",
        &[
            Path::new("-d"),
            Path::new("-q"),
            Path::new("-f"),
            &initrd,
            Path::new("-o"),
            &cpio,
        ],
    )?;
    let list = tool_ok("cpio", &[Path::new("-t"), Path::new("-F"), &cpio])?;
    let entries: BTreeSet<&str> = list.stdout.lines().collect();
    let load = tool_ok(
        "cpio",
        &[
            Path::new("-i"),
            Path::new("--to-stdout"),
            Path::new("-F"),
            &cpio,
            Path::new("etc/kiln/modules.load"),
        ],
    )?;
    let modules: Vec<&str> = load.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert!(!modules.is_empty(), "modules.load is empty");
    let prefix = format!("/usr/lib/modules/{release}/kernel/");
    for m in &modules {
        assert!(m.starts_with(&prefix) && m.ends_with(".ko"), "module {m}");
    }
    let mut required = vec![
        "init",
        "dev/console",
        "etc/kiln/modules.load",
        "etc/kiln/initramfs",
    ];
    required.extend(modules.iter().map(|m| m.trim_start_matches('/')));
    let missing: Vec<_> = required.iter().filter(|p| !entries.contains(**p)).collect();
    assert!(
        missing.is_empty(),
        "missing from the initramfs: {missing:?}"
    );
    let long = tool_ok("cpio", &[Path::new("-tv"), Path::new("-F"), &cpio])?;
    let console = long
        .stdout
        .lines()
        .find(|l| l.ends_with(" dev/console"))
        .context("no dev/console in cpio -tv")?;
    assert!(console.starts_with('c'), "dev/console: {console}");
    Ok(modules.len())
}

fn check_qcow2(raw: &Path, qcow2: &Path) -> Result<()> {
    let check = tool_ok("qemu-img", &[Path::new("check"), qcow2])?;
    assert!(
        check.stdout.contains("No errors were found on the image."),
        "qemu-img check: {}",
        check.stdout
    );
    let cmp = tool("qemu-img", &[Path::new("compare"), raw, qcow2])?;
    assert_eq!(
        (cmp.status.code(), cmp.stdout.trim()),
        (Some(0), "Images are identical."),
        "qemu-img compare stderr: {}",
        cmp.stderr
    );
    Ok(())
}

/// Boots the qcow2 (snapshot on) and checks the contract events up to `ready`.
fn boot(qcow2: &Path, release: &str, modules: usize) -> Result<()> {
    let mut vm = Vm::start(VmConfig::new("default-image", qcow2))?;
    vm.wait_event("ready", Duration::from_secs(180))?;
    let events = vm.events();
    for e in &events {
        eprintln!("default-image: event {e}");
    }
    let name = |e: &Value| e["event"].as_str().unwrap_or("").to_string();
    let unwanted: Vec<_> = events
        .iter()
        .filter(|e| ["fatal", "module_failed"].contains(&name(e).as_str()))
        .collect();
    assert!(unwanted.is_empty(), "{unwanted:?}");
    let seq: Vec<&Value> = events
        .iter()
        .filter(|e| BOOT_SEQUENCE.contains(&name(e).as_str()))
        // The image-import one-shot also starts and exits; the sequence follows containerd.
        .filter(|e| !name(e).starts_with("service_") || e["service"] == "containerd")
        .collect();
    let names: Vec<String> = seq.iter().map(|e| name(e)).collect();
    assert_eq!(names, BOOT_SEQUENCE, "boot event order");
    let ts: Vec<f64> = seq
        .iter()
        .map(|e| e["ts"].as_f64().unwrap_or(-1.0))
        .collect();
    // 1 ms resolution: stage2 and ready can share a timestamp; stage1 to ready cannot.
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]) && ts[0] >= 0.0 && ts[0] < ts[7],
        "timestamps {ts:?}"
    );
    let (stage1, mods, root) = (seq[0], seq[1], seq[2]);
    assert_eq!(stage1["kernel"], release, "{stage1}");
    assert_eq!(stage1["slot"], "a", "{stage1}");
    assert_eq!(mods["failed"], 0, "{mods}");
    assert_eq!(mods["loaded"], modules, "{mods}");
    assert_eq!(root["partname"], "KILN-ROOT-A", "{root}");
    assert_eq!(root["fstype"], "squashfs", "{root}");
    // containerd is supervised and `ready` waits for its socket.
    assert_eq!(seq[4]["service"], "containerd", "{}", seq[4]);
    assert_eq!(seq[6]["service"], "containerd", "{}", seq[6]);
    // DHCPv4 from QEMU user networking (slirp leases 10.0.2.15/24 to the first guest).
    let ifaces = &seq[5]["interfaces"];
    assert_eq!(ifaces[0]["name"], "eth0", "{}", seq[5]);
    assert_eq!(ifaces[0]["addresses"][0], "10.0.2.15/24", "{}", seq[5]);
    // ACPI power button (QMP system_powerdown) → KEY_POWER → SIGTERM to PID 1 → services
    // stopped in order → poweroff. (Ctrl-Alt-Del → reboot takes the same path; the signal
    // mapping is unit-tested in init.)
    vm.powerdown()?;
    let down = vm.wait_event("shutdown", Duration::from_secs(60))?;
    assert_eq!(down["action"], "poweroff", "{down}");
    let stopped = vm.wait_event("service_stopped", Duration::from_secs(60))?;
    assert_eq!(stopped["service"], "containerd", "{stopped}");
    let status = vm.wait_exit(Duration::from_secs(60))?;
    ensure!(status.success(), "QEMU after guest poweroff: {status}");
    Ok(())
}
