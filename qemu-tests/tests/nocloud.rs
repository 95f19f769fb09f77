//! First boot from a NoCloud seed made by Debian's `cloud-localds` (a tool we did not
//! write), then a reboot of the same disk:
//! - boot 1: STATE grown and formatted, config found on the seed, user + key + file +
//!   runcmd applied, static network from network-config v2; the OCI archive baked into the
//!   image (built here from Debian's busybox-static) imported into containerd offline and
//!   run as a container whose output reaches the console; ACPI poweroff;
//! - on the host: the STATE partition read with `debugfs` (file contents and modes);
//! - boot 2: STATE mounted as is, per-instance work skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use qemu_tests::image::{self, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm, VmConfig};
use serde_json::Value;

mod common;
use common::{debugfs, events_named, state_partition, KEY};

const TOOLS: &[&str] = &[
    "cloud-localds",
    "debugfs",
    "qemu-img",
    "sfdisk",
    "python3",
    "busybox",
];
fn user_data() -> String {
    format!(
        "#cloud-config\nhostname: node-a\nusers:\n  - name: ops\n    groups: [adm]\n    ssh_authorized_keys:\n      - {KEY}\nwrite_files:\n  - path: /etc/kiln-test/hello.txt\n    content: aGVsbG8gZnJvbSBjbG91ZC1pbml0Cg==\n    encoding: b64\n    permissions: '0640'\nruncmd:\n  - echo runcmd-ran > /var/lib/kiln-runcmd\n  - {CONTAINER}\npackages: [vim]\n"
    )
}

/// Waits (in the background, boot goes on) for the image import, then runs the container.
const CONTAINER: &str = "( while [ ! -e /run/kiln/images-imported ]; do busybox sleep 1; done; ctr -n k8s.io run --rm docker.io/kiln/busybox:test kiln-t1 /bin/echo kiln-container-ok ) > /dev/console 2>&1 &";

const META_DATA: &str = "instance-id: iid-kiln-test-1\nlocal-hostname: node-a\n";
/// QEMU's first NIC has MAC 52:54:00:12:34:56; slirp routes 10.0.2.0/24 via 10.0.2.2.
const NETWORK_CONFIG: &str = "version: 2\nethernets:\n  lan:\n    match:\n      macaddress: '52:54:00:12:34:56'\n    addresses: [10.0.2.50/24]\n    gateway4: 10.0.2.2\n    nameservers:\n      addresses: [10.0.2.3]\n";

fn boot(name: &str, disk: &Path, seed: &Path, console: Option<&str>) -> Result<Vec<Value>> {
    let mut cfg = VmConfig::new(name, disk);
    cfg.snapshot = false;
    cfg.extra_args.extend(
        [
            "-drive",
            &format!("if=virtio,format=raw,readonly=on,file={}", seed.display()),
        ]
        .map(String::from),
    );
    let mut vm = Vm::start(cfg)?;
    vm.wait_event("ready", Duration::from_secs(240))?;
    if let Some(needle) = console {
        vm.wait_console(needle, Duration::from_secs(180))?;
    }
    let events = vm.events();
    for e in &events {
        eprintln!("{name}: event {e}");
    }
    vm.powerdown()?;
    let down = vm.wait_event("shutdown", Duration::from_secs(60))?;
    assert_eq!(down["action"], "poweroff", "{down}");
    let status = vm.wait_exit(Duration::from_secs(90))?;
    ensure!(status.success(), "QEMU after poweroff: {status}");
    Ok(events)
}

fn check_first_boot(ev: &[Value]) {
    let mounted = events_named(ev, "state_mounted");
    assert_eq!(mounted.len(), 1, "{ev:?}");
    assert_eq!(
        (
            mounted[0]["formatted"].as_bool(),
            mounted[0]["grown"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let found = events_named(ev, "config_found");
    assert_eq!(found[0]["source"], "nocloud:/dev/vdb", "{}", found[0]);
    assert_eq!(found[0]["instance_id"], "iid-kiln-test-1");
    let applied = events_named(ev, "config_applied");
    assert_eq!(
        (applied[0]["users"].as_u64(), applied[0]["files"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        applied[0]
    );
    assert_eq!(applied[0]["commands"].as_u64(), Some(2), "{}", applied[0]);
    let imported = events_named(ev, "service_exited");
    assert!(
        imported
            .iter()
            .any(|e| e["service"] == "image-import" && e["code"] == 0),
        "image import did not finish cleanly: {ev:?}"
    );
    assert!(events_named(ev, "command_failed").is_empty(), "{ev:?}");
    let unsupported: Vec<_> = events_named(ev, "unsupported")
        .iter()
        .map(|e| e["key"].clone())
        .collect();
    assert_eq!(unsupported, vec![Value::from("packages")]);
    let net = events_named(ev, "network_online");
    assert_eq!(
        net[0]["interfaces"][0]["addresses"][0], "10.0.2.50/24",
        "{}",
        net[0]
    );
}

fn check_state_on_host(state: &Path) -> Result<()> {
    let up = "/lib/kiln/overlay";
    let hello = debugfs(state, &format!("cat {up}/etc/upper/kiln-test/hello.txt"))?;
    assert_eq!(hello, "hello from cloud-init\n");
    let passwd = debugfs(state, &format!("cat {up}/etc/upper/passwd"))?;
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("ops:x:1000:1000::/home/ops:")),
        "{passwd}"
    );
    let keys = debugfs(
        state,
        &format!("cat {up}/home/upper/ops/.ssh/authorized_keys"),
    )?;
    assert_eq!(keys.trim(), KEY);
    let stat = debugfs(
        state,
        &format!("stat {up}/home/upper/ops/.ssh/authorized_keys"),
    )?;
    assert!(stat.contains("Mode:  0600"), "{stat}");
    assert!(stat.contains("User:  1000"), "{stat}");
    let stat = debugfs(state, &format!("stat {up}/etc/upper/kiln-test/hello.txt"))?;
    assert!(stat.contains("Mode:  0640"), "{stat}");
    assert_eq!(debugfs(state, "cat /lib/kiln-runcmd")?, "runcmd-ran\n");
    let copy = debugfs(state, "cat /lib/kiln/config/meta-data")?;
    assert_eq!(copy, META_DATA, "persisted config copy");
    Ok(())
}

/// A seed whose user-data is invalid: `config_error` naming the cause, then `fatal` and
/// maintenance — and nothing applied (no `config_applied`, no service started).
fn broken_config(dir: &Path, base: &Path) -> Result<()> {
    let bad = "#cloud-config\nwrite_files:\n  - path: relative/file\n    content: x\n";
    std::fs::write(dir.join("bad-user-data"), bad)?;
    let d = |n: &str| dir.join(n).display().to_string();
    tool_ok(
        "cloud-localds",
        &[&d("bad-seed.img"), &d("bad-user-data"), &d("meta-data")],
    )?;
    let mut cfg = VmConfig::new("nocloud-broken", base);
    cfg.extra_args.extend(
        [
            "-drive",
            &format!(
                "if=virtio,format=raw,readonly=on,file={}",
                d("bad-seed.img")
            ),
        ]
        .map(String::from),
    );
    let mut vm = Vm::start(cfg)?;
    let fatal = vm.wait_event("fatal", Duration::from_secs(240))?;
    let events = vm.events();
    let err = events_named(&events, "config_error");
    assert_eq!(err.len(), 1, "{events:?}");
    assert_eq!(err[0]["source"], "nocloud:/dev/vdb", "{}", err[0]);
    let reason = err[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("user-data") && reason.contains("relative/file"),
        "{reason}"
    );
    assert!(
        fatal["error"]
            .as_str()
            .unwrap_or_default()
            .contains("node configuration"),
        "{fatal}"
    );
    for never in ["config_applied", "service_starting", "ready"] {
        assert!(
            events_named(&events, never).is_empty(),
            "{never} after a broken config: {events:?}"
        );
    }
    vm.wait_console("maintenance", Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn nocloud_seed_applies_once_and_persists_on_state() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let dir = image::target_dir().join("qemu-tests/nocloud");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (base, _) = common::build_node(&dir, &[])?;
    for (name, text) in [
        ("user-data", user_data()),
        ("meta-data", META_DATA.into()),
        ("network-config", NETWORK_CONFIG.into()),
    ] {
        std::fs::write(dir.join(name), text)?;
    }
    let seed = dir.join("seed.img");
    let d = |n: &str| dir.join(n).display().to_string();
    tool_ok(
        "cloud-localds",
        &[
            "-N",
            &d("network-config"),
            &d("seed.img"),
            &d("user-data"),
            &d("meta-data"),
        ],
    )?;
    let disk = dir.join("disk.qcow2");
    common::overlay(&base, &disk)?;

    let first = boot("nocloud-1", &disk, &seed, Some("kiln-container-ok"))?;
    check_first_boot(&first);
    check_state_on_host(&state_partition(&disk, &dir)?)?;

    let second = boot("nocloud-2", &disk, &seed, None)?;
    let mounted = events_named(&second, "state_mounted");
    assert_eq!(
        (
            mounted[0]["formatted"].as_bool(),
            mounted[0]["grown"].as_bool()
        ),
        (Some(false), Some(false))
    );
    let skipped = events_named(&second, "config_skipped");
    assert_eq!(skipped[0]["instance_id"], "iid-kiln-test-1", "{second:?}");
    let applied = events_named(&second, "config_applied");
    assert_eq!(applied[0]["users"].as_u64(), Some(0), "{}", applied[0]);

    broken_config(&dir, &base)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
