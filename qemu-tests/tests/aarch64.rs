//! aarch64 end to end, three boots side by side under `qemu-system-aarch64 -M virt -cpu
//! cortex-a57` (TCG) with Debian's AAVMF firmware, all to `ready`:
//!
//! - Disk: `kiln build --arch aarch64` (Debian arm64 packages, the aarch64 init kiln
//!   carries); a NoCloud seed made by `cloud-localds` sets the hostname and a static
//!   address; containerd runs an arm64 busybox container from an OCI archive baked into the
//!   image (busybox taken from Debian's arm64 busybox-static .deb). The build is repeated
//!   and must be byte-identical.
//! - Network: a `kiln build --arch aarch64 --format pxe` bundle behind `kiln pxe serve`. The
//!   firmware's UEFI PXE gets Debian's `ipxe-arm64.efi` (from the `ipxe` .deb the bundle
//!   build cached) from QEMU's user-net TFTP; iPXE runs the `autoexec.ipxe` next to it,
//!   which configures the NIC, sets `kiln-base` and chains the bundle's boot.ipxe over
//!   HTTP. Stage 1 must fetch the root with the bundle's digest and the node's seed from
//!   the server.
//! - MBR: `kiln build --arch aarch64 --layout mbr` checked with `sfdisk -d` / `--verify`
//!   (FAT32 LBA boot partition first and active, the GPT plan's offsets, the label-id the
//!   loader entry passes as `kiln.mbr=`), booted from a writable overlay to `ready`; init
//!   must find its root and STATE by number and grow STATE in the MBR to the disk's end,
//!   which `sfdisk` then reads back from the overlay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use kiln_imager::lock::Lock;
use kiln_imager::pipeline::{self, BuildOptions, BuildReport};
use kiln_imager::spec::{Arch as SpecArch, Format, Layout, DEFAULT_SPEC};
use qemu_tests::image::{self, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm, VmConfig};

mod common;
use common::pxe::{check_bundle, check_node, check_server_log, serve, tftp_dir, write_seed};
use common::{d, events_named};

const TOOLS: &[&str] = &[
    "cloud-localds",
    "python3",
    "dpkg-deb",
    "file",
    "sha256sum",
    "sfdisk",
    "qemu-img",
];
const CONTAINER: &str = "( while [ ! -e /run/kiln/images-imported ]; do busybox sleep 1; done; echo kiln-arch=$(ctr -n k8s.io run --rm docker.io/kiln/busybox:test kiln-a1 /bin/busybox uname -m) ) > /dev/console 2>&1 &";
const HOST: &str = "echo kiln-host=$(busybox cat /proc/sys/kernel/hostname) > /dev/console";
const NETWORK_CONFIG: &str = "version: 2\nethernets:\n  lan:\n    match:\n      macaddress: '52:54:00:12:34:56'\n    addresses: [10.0.2.60/24]\n    gateway4: 10.0.2.2\n";
const BOOT: Duration = Duration::from_secs(300);
const PXE_MAC: &str = "52:54:00:a1:00:01";
const PXE_HOST: &str = "arm-pxe";
/// Debian's arm64 iPXE, as the boot file QEMU's DHCP names.
const IPXE: &str = "ipxe-arm64.efi";

/// The default spec plus `packages` and `extra` (appended TOML).
fn spec_text(packages: &[&str], extra: &str) -> String {
    let list: String = packages.iter().map(|p| format!("\n    \"{p}\",")).collect();
    let base = DEFAULT_SPEC.replace("\"dash\",", &format!("\"dash\",{list}"));
    format!("{base}{extra}")
}

fn build(dir: &Path, spec: &str, out: &str, format: Format) -> Result<BuildReport> {
    let path = dir.join(format!("{out}.toml"));
    std::fs::write(&path, spec)?;
    pipeline::build(&BuildOptions {
        spec: Some(path),
        out: dir.join(out),
        quiet: true,
        formats: Some(vec![format]),
        arch: Some(SpecArch::Aarch64),
        ..BuildOptions::default()
    })
}

/// The file `rel` of locked package `name`, unpacked into `dir` from the .deb a build left
/// in kiln's download cache.
fn from_deb(lock: &Lock, name: &str, arch: &str, dir: &Path, rel: &str) -> Result<PathBuf> {
    let deb = lock
        .packages
        .iter()
        .find(|p| p.name == name)
        .with_context(|| format!("{name} not in the lock"))?;
    ensure!(deb.arch == arch, "{name} is {}, want {arch}", deb.arch);
    let cache = kiln_imager::debian::fetch::Fetcher::default_cache_dir();
    let blob = cache
        .join("sha256")
        .join(&deb.sha256[..2])
        .join(&deb.sha256);
    let x = dir.join(format!("{name}-deb"));
    tool_ok("dpkg-deb", &["-x", &d(&blob), &d(&x)])?;
    let file = x.join(rel);
    ensure!(file.is_file(), "{name} has no {rel}");
    Ok(file)
}

/// Debian's arm64 busybox (from the .deb the bundle build cached) as an OCI archive.
fn arm64_busybox_oci(dir: &Path, lock: &Lock) -> Result<PathBuf> {
    let bin = from_deb(lock, "busybox-static", "arm64", dir, "usr/bin/busybox")?;
    let kind = tool_ok("file", &[d(&bin)])?.stdout;
    ensure!(kind.contains("ARM aarch64"), "not an arm64 busybox: {kind}");
    let oci = dir.join("busybox-arm64-oci.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/make-oci.py");
    tool_ok("python3", &[d(&script), d(&bin), d(&oci)])?;
    Ok(oci)
}

/// The kernel stage 1 reports must be Debian's arm64 flavour.
fn check_arm64_kernel(events: &[serde_json::Value]) -> Result<()> {
    let stage1 = events_named(events, "stage1");
    ensure!(
        stage1[0]["kernel"]
            .as_str()
            .unwrap_or_default()
            .ends_with("-arm64"),
        "{}",
        stage1[0]
    );
    Ok(())
}

/// Builds the disk image twice (byte-identical) with the arm64 busybox OCI archive baked
/// in, boots it with a `cloud-localds` seed and runs the container.
fn disk_boot(dir: &Path, lock: &Lock) -> Result<()> {
    let t = Instant::now();
    let oci = arm64_busybox_oci(dir, lock)?;
    let digest = image::sha256(&oci)?;
    let artifact = format!(
        "\n[[artifact]]\ndest = \"/usr/share/kiln/images/busybox.tar\"\npath = \"{}\"\nsha256 = \"{digest}\"\n",
        d(&oci)
    );
    let spec = spec_text(&["busybox-static"], &artifact);
    let disk = common::output(&build(dir, &spec, "a", Format::Qcow2)?, "qcow2")?;
    let again = common::output(&build(dir, &spec, "b", Format::Qcow2)?, "qcow2")?;
    ensure!(
        image::sha256(&disk)? == image::sha256(&again)?,
        "two aarch64 builds differ"
    );
    eprintln!(
        "aarch64 disk builds (2) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let seed = dir.join("seed.img");
    let (ud, md, nc) = (
        dir.join("user-data"),
        dir.join("meta-data"),
        dir.join("net.yaml"),
    );
    std::fs::write(
        &ud,
        format!("#cloud-config\nruncmd:\n  - {HOST}\n  - {CONTAINER}\n"),
    )?;
    std::fs::write(&md, "instance-id: iid-arm-1\nlocal-hostname: arm-node\n")?;
    std::fs::write(&nc, NETWORK_CONFIG)?;
    tool_ok(
        "cloud-localds",
        &[
            format!("--network-config={}", d(&nc)),
            d(&seed),
            d(&ud),
            d(&md),
        ],
    )?;
    let mut cfg = VmConfig::new("aarch64", &disk);
    cfg.arch = Arch::Aarch64;
    cfg.extra_args.extend([
        "-drive".to_string(),
        format!("if=virtio,format=raw,readonly=on,file={}", d(&seed)),
    ]);
    let mut vm = Vm::start(cfg)?;
    let ready = vm.wait_event("ready", BOOT)?;
    let ready_s = vm.elapsed().as_secs_f64();
    vm.wait_console("kiln-host=arm-node", Duration::from_secs(120))?;
    vm.wait_console("kiln-arch=aarch64", Duration::from_secs(180))?;
    let events = vm.events();
    let checked = check_arm64_kernel(&events).and_then(|()| {
        let found = events_named(&events, "config_found");
        ensure!(found[0]["instance_id"] == "iid-arm-1", "{}", found[0]);
        let net = events_named(&events, "network_online");
        ensure!(
            net[0]["interfaces"][0]["addresses"][0] == "10.0.2.60/24",
            "{}",
            net[0]
        );
        Ok(())
    });
    if checked.is_err() {
        vm.mark_failed();
    }
    checked?;
    eprintln!(
        "aarch64 disk: ready {ready_s:.1}s after QEMU start (guest {}s, {:?})",
        ready["boot_seconds"],
        vm.accel()
    );
    vm.powerdown()?;
    vm.wait_exit(Duration::from_secs(120))?;
    Ok(())
}

/// `sfdisk -d` of a raw disk image.
fn sfdisk(raw: &Path) -> Result<image::SfdiskDump> {
    tool_ok("sfdisk", &["--verify", &d(raw)])?;
    image::parse_sfdisk_dump(&tool_ok("sfdisk", &["-d", &d(raw)])?.stdout)
}

/// Builds the MBR variant, checks its table, boots it and checks init grew STATE in it.
fn mbr_boot(dir: &Path) -> Result<()> {
    let t = Instant::now();
    let spec_path = dir.join("mbr.toml");
    std::fs::write(&spec_path, spec_text(&[], ""))?;
    let report = pipeline::build(&BuildOptions {
        spec: Some(spec_path),
        out: dir.join("mbr"),
        quiet: true,
        formats: Some(vec![Format::Raw, Format::Qcow2]),
        arch: Some(SpecArch::Aarch64),
        layout: Some(Layout::Mbr),
        ..BuildOptions::default()
    })?;
    eprintln!("aarch64 mbr built in {:.1}s", t.elapsed().as_secs_f64());
    let raw = common::output(&report, "raw")?;
    let spec = kiln_imager::spec::parse(DEFAULT_SPEC, "built-in")?;
    let plan = kiln_imager::gpt::plan(&spec.disk, spec.arch, &spec.name);
    let dump = sfdisk(&raw)?;
    ensure!(dump.label == "dos", "label {}", dump.label);
    let sig = format!("{:08x}", kiln_imager::mbr::disk_signature(&spec.name));
    ensure!(
        dump.label_id == format!("0x{sig}"),
        "label-id {}",
        dump.label_id
    );
    let got: Vec<_> = dump
        .partitions
        .iter()
        .map(|p| {
            (
                p.start * 512,
                p.size * 512,
                p.type_guid.as_str(),
                p.bootable,
            )
        })
        .collect();
    let want: Vec<_> = plan
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (p.offset, p.size, if i == 0 { "c" } else { "83" }, i == 0))
        .collect();
    ensure!(got == want, "sfdisk {got:?}, plan {want:?}");

    let disk = dir.join("mbr-overlay.qcow2");
    common::overlay(&common::output(&report, "qcow2")?, &disk)?;
    let mut cfg = VmConfig::new("aarch64-mbr", &disk);
    cfg.arch = Arch::Aarch64;
    cfg.snapshot = false;
    let mut vm = Vm::start(cfg)?;
    let ready = vm.wait_event("ready", BOOT)?;
    let ready_s = vm.elapsed().as_secs_f64();
    let events = vm.events();
    let checked = (|| {
        ensure!(
            vm.console().contains(&format!(" kiln.mbr={sig} ")),
            "kernel command line lacks kiln.mbr={sig}"
        );
        let root = &events_named(&events, "root_mounted")[0];
        ensure!(
            root["device"] == "/dev/vda2" && root["partname"] == "KILN-ROOT-A",
            "{root}"
        );
        let grown = &events_named(&events, "state_grown")[0];
        ensure!(grown["device"] == "/dev/vda4", "{grown}");
        let mounted = &events_named(&events, "state_mounted")[0];
        ensure!(mounted["formatted"] == true, "{mounted}");
        Ok(())
    })();
    if checked.is_err() {
        vm.mark_failed();
    }
    checked?;
    eprintln!(
        "aarch64 mbr: ready {ready_s:.1}s after QEMU start (guest {}s)",
        ready["boot_seconds"]
    );
    vm.powerdown()?;
    vm.wait_exit(Duration::from_secs(120))?;
    let after = dir.join("mbr-after.raw");
    tool_ok("qemu-img", &["convert", "-O", "raw", &d(&disk), &d(&after)])?;
    let grown = sfdisk(&after)?;
    std::fs::remove_file(&after)?;
    let sectors = spec.disk.size.0 / 512;
    let state = &grown.partitions[3];
    ensure!(
        state.start + state.size == sectors && state.start * 512 == plan.partitions[3].offset,
        "STATE after boot: start {} size {} (disk {sectors} sectors)",
        state.start,
        state.size
    );
    ensure!(
        grown.partitions[..3] == dump.partitions[..3],
        "partitions 1-3 changed"
    );
    ensure!(grown.label_id == dump.label_id, "label-id changed");
    Ok(())
}

/// Network-boots the bundle in `bundle` (root digest `root_sha`) with `ipxe` as the boot
/// file the firmware's PXE fetches; see the module docs for the route.
fn network_boot(dir: &Path, bundle: &Path, ipxe: &Path, root_sha: &str) -> Result<()> {
    let seeds = dir.join("seeds");
    write_seed(&seeds, PXE_MAC, PXE_HOST)?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = serve(bundle, Some(&seeds), log.clone())?;
    let port = server.local_addr().port();
    // iPXE loaded by the firmware's PXE runs autoexec.ipxe from the same TFTP server
    // before anything else, and before any NIC is open.
    let tftp = tftp_dir(&dir.join("tftp"), port, "autoexec.ipxe", true)?;
    std::fs::copy(ipxe, tftp.join(IPXE))?;
    let mut cfg = VmConfig::firmware_only("aarch64-pxe");
    cfg.arch = Arch::Aarch64;
    // The downloaded root lives in RAM.
    cfg.memory_mib = 1536;
    // `bootindex`: the NIC is the firmware's first boot option. `romfile=`: no option ROM
    // (QEMU's is x86 code).
    cfg.extra_args.extend([
        "-netdev".to_string(),
        format!("user,id=n0,tftp={},bootfile={IPXE}", d(&tftp)),
        "-device".to_string(),
        format!("virtio-net-pci,netdev=n0,mac={PXE_MAC},romfile=,bootindex=0"),
    ]);
    let mut vm = Vm::start(cfg)?;
    let ready = vm.wait_event("ready", BOOT)?;
    let ready_s = vm.elapsed().as_secs_f64();
    vm.wait_console(
        &format!("kiln-pxe-host={PXE_HOST}"),
        Duration::from_secs(120),
    )?;
    vm.wait_console("kiln-pxe-arch=aarch64", Duration::from_secs(60))?;
    let events = vm.events();
    let checked = check_node(&events, PXE_MAC, root_sha).and_then(|fetched| {
        check_arm64_kernel(&events)?;
        let console = vm.console();
        ensure!(
            console.contains(&format!(
                "Kiln: booting kiln-node from http://10.0.2.2:{port}/"
            )),
            "iPXE did not run the bundle's boot.ipxe"
        );
        Ok(fetched)
    });
    if checked.is_err() {
        vm.mark_failed();
    }
    let fetched = checked?;
    eprintln!(
        "aarch64 pxe: ready {ready_s:.1}s after QEMU start (guest {}s), root {} MiB in {}s",
        ready["boot_seconds"],
        fetched["bytes"].as_u64().unwrap_or(0) >> 20,
        fetched["seconds"]
    );
    vm.powerdown()?;
    vm.wait_exit(Duration::from_secs(120))?;
    server.stop();
    let lines = log.lock().unwrap().clone();
    check_server_log(&lines, 1, &[PXE_MAC])
}

#[test]
fn aarch64_boots_from_gpt_mbr_and_the_network() -> Result<()> {
    if !require_qemu(Arch::Aarch64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let t = Instant::now();
    let dir = image::target_dir().join("qemu-tests/aarch64-work");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // The network-boot bundle; its build also leaves the busybox-static and ipxe .debs in
    // kiln's cache, where the lock's digests find them.
    let spec = spec_text(&["busybox-static", "ipxe"], "");
    build(&dir, &spec, "pxe", Format::Pxe)?;
    eprintln!(
        "aarch64 pxe bundle built in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let bundle = dir.join("pxe");
    let root_sha = check_bundle(&bundle)?;
    let lock = kiln_imager::lock::parse(&std::fs::read_to_string(dir.join("pxe.lock"))?, "lock")?;
    let ipxe = from_deb(&lock, "ipxe", "all", &dir, "usr/lib/ipxe/ipxe-arm64.efi")?;

    // Two cores: the network boot runs while the disk images are built and booted.
    let results = std::thread::scope(|s| {
        let net = s.spawn(|| network_boot(&dir, &bundle, &ipxe, &root_sha));
        let mbr = s.spawn(|| mbr_boot(&dir));
        let disk = disk_boot(&dir, &lock);
        let joined =
            |r: std::thread::Result<Result<()>>| r.unwrap_or_else(|_| Err(anyhow!("panicked")));
        [
            ("disk boot", disk),
            ("network boot", joined(net.join())),
            ("mbr boot", joined(mbr.join())),
        ]
    });
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("{what}: {e:#}")))
        .collect();
    ensure!(failed.is_empty(), "{}", failed.join("\n\n"));
    eprintln!("aarch64: three boots in {:.1}s", t.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
