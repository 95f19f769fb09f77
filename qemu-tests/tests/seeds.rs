//! Config sources made by hand, two nodes on one L2 segment, the supervisor under fire,
//! and the kernel command line — three boots, the first two side by side:
//! - node U: a FAT stick labelled KILN (mkfs.fat + mcopy) on USB (xhci + usb-storage):
//!   cloud-config with every write_files encoding, append and defer, a user; network-config
//!   v1 renaming the L2 NIC to `l2` with a static address and MTU, DHCP on slirp;
//! - node B: a ConfigDrive (genisoimage, label config-2) on a CD-ROM: meta_data.json
//!   hostname and key, network_data.json static address, a `#!` script as user_data;
//! - U and B share an L2 segment (QEMU `dgram` netdevs over loopback UDP, unprivileged)
//!   and ping each other; on U containerd is killed (restarted by the supervisor), its log
//!   is fetched over the event port, and poweroff releases the DHCP lease; U's STATE is
//!   then read from the host with `debugfs`;
//! - node C: direct kernel boot with `kiln.config=` (base64 of a zstd kiln.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use base64::Engine;
use qemu_tests::image::{self, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm, VmConfig};
use serde_json::{json, Value};

mod common;
use common::{d, debugfs, events_named, KEY};

const TOOLS: &[&str] = &[
    "mkfs.fat",
    "mcopy",
    "genisoimage",
    "debugfs",
    "qemu-img",
    "sfdisk",
    "python3",
    "busybox",
];
const BOOT: Duration = Duration::from_secs(300);
const U_L2_MAC: &str = "52:54:00:77:00:01";
const B_L2_MAC: &str = "52:54:00:77:00:02";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// A background shell loop (boot goes on) that pings `peer` until it answers, then
/// prints a marker with this node's hostname (and the MTU of `link`).
fn ping_loop(peer: &str, link: Option<&str>) -> String {
    let mtu = link.map_or(String::new(), |l| {
        format!(" mtu=$(busybox cat /sys/class/net/{l}/mtu)")
    });
    format!(
        "( i=0; while [ $i -lt 180 ]; do if busybox ping -c 1 -W 1 {peer} >/dev/null 2>&1; then echo kiln-l2-reached-{peer} host=$(busybox cat /proc/sys/kernel/hostname){mtu}; break; fi; i=$((i+1)); busybox sleep 1; done ) > /dev/console 2>&1 &"
    )
}

/// Kills containerd once the image import is done (so `ready` came first).
const KILL_CONTAINERD: &str = "( while [ ! -e /run/kiln/images-imported ]; do busybox sleep 1; done; busybox sleep 2; busybox killall -9 containerd && echo kiln-containerd-killed ) > /dev/console 2>&1 &";

fn usb_user_data() -> String {
    let gz = b64(&gzip("gzip text\n"));
    let gzb64 = b64(&gzip("gz+b64 text\n"));
    let plain_b64 = b64(b"base64 text\n");
    format!(
        "#cloud-config
hostname: node-u
users:
  - name: ops
    ssh_authorized_keys: ['{KEY}']
write_files:
  - path: /etc/kiln-test/plain.txt
    content: |
      plain text
  - path: /etc/kiln-test/b64.txt
    encoding: b64
    content: {plain_b64}
  - path: /etc/kiln-test/gzip.txt
    encoding: gzip
    content: !!binary |
      {gz}
  - path: /etc/kiln-test/gzb64.txt
    encoding: gz+b64
    permissions: '0600'
    content: {gzb64}
  - path: /etc/kiln-test/plain.txt
    append: true
    content: \"appended\\n\"
  - path: /home/ops/deferred.txt
    owner: ops:ops
    permissions: '0640'
    defer: true
    content: \"deferred\\n\"
runcmd:
  - {ping}
  - {KILL_CONTAINERD}
",
        ping = ping_loop("192.168.77.2", Some("l2"))
    )
}

const USB_META: &str = "instance-id: iid-usb\nlocal-hostname: node-u\n";
const USB_NETWORK_V1: &str = "version: 1
config:
  - type: physical
    name: l2
    mac_address: '52:54:00:77:00:01'
    mtu: 1400
    subnets:
      - type: static
        address: 192.168.77.1/24
  - type: physical
    name: up0
    mac_address: '52:54:00:12:34:56'
    subnets:
      - type: dhcp
";

/// The FAT stick, made by hand: mkfs.fat then mcopy.
fn usb_stick(dir: &Path) -> Result<PathBuf> {
    let files = dir.join("usb");
    std::fs::create_dir_all(&files)?;
    for (name, text) in [
        ("user-data", usb_user_data()),
        ("meta-data", USB_META.to_string()),
        ("network-config", USB_NETWORK_V1.to_string()),
    ] {
        std::fs::write(files.join(name), text)?;
    }
    let stick = dir.join("stick.img");
    tool_ok("mkfs.fat", &["-n", "KILN", "-C", &d(&stick), "8192"])?;
    for name in ["user-data", "meta-data", "network-config"] {
        tool_ok(
            "mcopy",
            &[
                "-i",
                &d(&stick),
                &d(&files.join(name)),
                &format!("::/{name}"),
            ],
        )?;
    }
    Ok(stick)
}

/// The ConfigDrive, made by hand: openstack/latest/* in an ISO labelled config-2.
fn config_drive(dir: &Path) -> Result<PathBuf> {
    let latest = dir.join("cd/openstack/latest");
    std::fs::create_dir_all(&latest)?;
    let meta = json!({
        "uuid": "iid-configdrive-b",
        "hostname": "node-b",
        "public_keys": {"ops": KEY},
    });
    let network = json!({
        "links": [
            {"id": "l2", "type": "phy", "ethernet_mac_address": B_L2_MAC},
            {"id": "up", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"},
        ],
        "networks": [
            {"id": "n1", "link": "l2", "type": "ipv4",
             "ip_address": "192.168.77.2", "netmask": "255.255.255.0"},
            {"id": "n2", "link": "up", "type": "ipv4_dhcp"},
        ],
    });
    let script = format!("#!/bin/sh\n{}\n", ping_loop("192.168.77.1", None));
    std::fs::write(latest.join("meta_data.json"), meta.to_string())?;
    std::fs::write(latest.join("network_data.json"), network.to_string())?;
    std::fs::write(latest.join("user_data"), script)?;
    let iso = dir.join("config-2.iso");
    tool_ok(
        "genisoimage",
        &[
            "-quiet",
            "-o",
            &d(&iso),
            "-V",
            "config-2",
            "-J",
            "-R",
            &d(&dir.join("cd")),
        ],
    )?;
    Ok(iso)
}

/// A NIC on the shared L2 segment: UDP datagrams between two loopback ports.
fn l2_nic(mac: &str, local: u16, remote: u16) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("dgram,id=l2,local.type=inet,local.host=127.0.0.1,local.port={local},remote.type=inet,remote.host=127.0.0.1,remote.port={remote}"),
        "-device".into(),
        format!("virtio-net-pci,netdev=l2,mac={mac}"),
    ]
}

fn addresses_of(online: &Value) -> Vec<String> {
    online["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

/// Kill containerd → restarted; a log request answered; a bad request refused.
fn supervisor_checks(u: &mut Vm) -> Result<()> {
    u.wait_console("kiln-containerd-killed", BOOT)?;
    let exited = loop {
        let e = u.wait_event("service_exited", Duration::from_secs(60))?;
        if e["service"] == "containerd" {
            break e;
        }
    };
    let restart = u.wait_event("service_restart", Duration::from_secs(60))?;
    assert_eq!(restart["service"], "containerd", "{restart}");
    let again = loop {
        let e = u.wait_event("service_ready", Duration::from_secs(120))?;
        if e["service"] == "containerd" && e["ts"].as_f64() > exited["ts"].as_f64() {
            break e;
        }
    };
    eprintln!("containerd: killed {exited}, ready again {again}");

    u.send(&json!({"request": "log", "service": "containerd", "lines": 20}))?;
    let end = u.wait_event("log_end", Duration::from_secs(30))?;
    let lines = end["lines"].as_u64().unwrap_or(0);
    assert!((1..=20).contains(&lines), "{end}");
    let events = u.events();
    let logged = events_named(&events, "log")
        .into_iter()
        .filter(|e| e["service"] == "containerd" && e["ts"].as_f64() <= end["ts"].as_f64())
        .count();
    assert!(logged as u64 >= lines, "{logged} log events for {end}");
    u.send(&json!({"request": "reboot"}))?;
    let refused = u.wait_event("request_error", Duration::from_secs(30))?;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown request"),
        "{refused}"
    );
    Ok(())
}

fn check_u_events(events: &[Value]) {
    let found = events_named(events, "config_found");
    assert!(
        found[0]["source"]
            .as_str()
            .unwrap_or_default()
            .starts_with("kiln:/dev/sd"),
        "{}",
        found[0]
    );
    assert_eq!(found[0]["instance_id"], "iid-usb");
    let applied = events_named(events, "config_applied");
    assert_eq!(
        (applied[0]["users"].as_u64(), applied[0]["files"].as_u64()),
        (Some(1), Some(6)),
        "{}",
        applied[0]
    );
    let online = events_named(events, "network_online");
    let addrs = addresses_of(online[0]);
    assert!(addrs.contains(&"192.168.77.1/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"10.0.2.15/24".to_string()), "{addrs:?}");
    assert!(
        events_named(events, "command_failed").is_empty(),
        "{events:?}"
    );
}

fn check_b_events(events: &[Value]) {
    let found = events_named(events, "config_found");
    assert!(
        found[0]["source"]
            .as_str()
            .unwrap_or_default()
            .starts_with("configdrive:/dev/"),
        "{}",
        found[0]
    );
    assert_eq!(found[0]["instance_id"], "iid-configdrive-b");
    let online = events_named(events, "network_online");
    let addrs = addresses_of(online[0]);
    assert!(addrs.contains(&"192.168.77.2/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"10.0.2.15/24".to_string()), "{addrs:?}");
}

/// Powers off; asserts the DHCP release and the poweroff path; returns all events.
fn power_off(vm: &mut Vm) -> Result<Vec<Value>> {
    vm.powerdown()?;
    let released = vm.wait_event("network_released", Duration::from_secs(60))?;
    assert_eq!(released["dhcp_clients"], 1, "{released}");
    let down = vm.wait_event("shutdown", Duration::from_secs(60))?;
    assert_eq!(down["action"], "poweroff", "{down}");
    let status = vm.wait_exit(Duration::from_secs(90))?;
    ensure!(status.success(), "QEMU after poweroff: {status}");
    Ok(vm.events())
}

fn check_u_state(state: &Path) -> Result<()> {
    let up = "/lib/kiln/overlay";
    let cat = |p: &str| debugfs(state, &format!("cat {up}/{p}"));
    assert_eq!(
        cat("etc/upper/kiln-test/plain.txt")?,
        "plain text\nappended\n"
    );
    assert_eq!(cat("etc/upper/kiln-test/b64.txt")?, "base64 text\n");
    assert_eq!(cat("etc/upper/kiln-test/gzip.txt")?, "gzip text\n");
    assert_eq!(cat("etc/upper/kiln-test/gzb64.txt")?, "gz+b64 text\n");
    assert_eq!(cat("home/upper/ops/deferred.txt")?, "deferred\n");
    assert_eq!(cat("home/upper/ops/.ssh/authorized_keys")?.trim(), KEY);
    let stat = debugfs(state, &format!("stat {up}/etc/upper/kiln-test/gzb64.txt"))?;
    assert!(stat.contains("Mode:  0600"), "{stat}");
    let stat = debugfs(state, &format!("stat {up}/home/upper/ops/deferred.txt"))?;
    assert!(stat.contains("Mode:  0640"), "{stat}");
    assert!(stat.contains("User:  1000"), "{stat}");
    Ok(())
}

/// Node C: kernel, initrd and options taken from the image's ESP; `kiln.config=` added.
fn cmdline_boot(dir: &Path, base: &Path, raw: &Path) -> Result<()> {
    let esp = dir.join("esp.img");
    common::partition(raw, "EFI", &esp)?;
    let esp_s = d(&esp);
    let entry = tool_ok(
        "mcopy",
        &["-n", "-i", &esp_s, "::/loader/entries/kiln-a+3.conf", "-"],
    )?
    .stdout;
    let options = entry
        .lines()
        .find_map(|l| l.strip_prefix("options "))
        .context("no options line in the loader entry")?
        .to_string();
    for (from, to) in [
        ("::/kiln/a/vmlinuz", "vmlinuz"),
        ("::/kiln/a/initrd.img", "initrd"),
    ] {
        tool_ok("mcopy", &["-n", "-i", &esp_s, from, &d(&dir.join(to))])?;
    }
    let toml = "instance_id = \"iid-cmdline\"\nhostname = \"node-c\"\nruncmd = [\"echo kiln-cmdline-runcmd host=$(busybox cat /proc/sys/kernel/hostname) > /dev/console\"]\n\n[[network.interfaces]]\nmatch = { mac = \"52:54:00:12:34:56\" }\naddresses = [\"10.0.2.60/24\"]\ngateway4 = \"10.0.2.2\"\n";
    let packed = zstd::encode_all(toml.as_bytes(), 19)?;
    let mut cfg = VmConfig::new("seeds-cmdline", base);
    cfg.extra_args.extend([
        "-kernel".to_string(),
        d(&dir.join("vmlinuz")),
        "-initrd".to_string(),
        d(&dir.join("initrd")),
        "-append".to_string(),
        format!("{options} kiln.config={}", b64(&packed)),
    ]);
    let mut vm = Vm::start(cfg)?;
    vm.wait_event("ready", BOOT)?;
    vm.wait_console("kiln-cmdline-runcmd host=node-c", Duration::from_secs(60))?;
    let events = vm.events();
    let found = events_named(&events, "config_found");
    assert_eq!(found[0]["source"], "cmdline", "{}", found[0]);
    assert_eq!(found[0]["instance_id"], "iid-cmdline");
    let online = events_named(&events, "network_online");
    assert_eq!(addresses_of(online[0]), vec!["10.0.2.60/24".to_string()]);
    vm.powerdown()?;
    vm.wait_event("shutdown", Duration::from_secs(60))?;
    vm.wait_exit(Duration::from_secs(90))?;
    Ok(())
}

#[test]
fn usb_configdrive_l2_supervisor_and_cmdline() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let dir = image::target_dir().join("qemu-tests/seeds");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (base, raw) = common::build_node(&dir, &[])?;
    let stick = usb_stick(&dir)?;
    let iso = config_drive(&dir)?;
    let disk_u = dir.join("u.qcow2");
    common::overlay(&base, &disk_u)?;
    // Two loopback UDP ports unlikely to collide with a parallel run.
    let port = 20000 + (std::process::id() % 20000) as u16;

    let mut u = VmConfig::new("seeds-usb", &disk_u);
    u.snapshot = false;
    u.extra_args.extend(l2_nic(U_L2_MAC, port, port + 1));
    u.extra_args.extend(
        [
            "-device",
            "qemu-xhci,id=xhci",
            "-drive",
            &format!("if=none,id=stick,format=raw,readonly=on,file={}", d(&stick)),
            "-device",
            "usb-storage,bus=xhci.0,drive=stick",
        ]
        .map(String::from),
    );
    let mut b = VmConfig::new("seeds-configdrive", &base);
    b.extra_args.extend(l2_nic(B_L2_MAC, port + 1, port));
    b.extra_args.extend(["-cdrom".to_string(), d(&iso)]);
    let mut u = Vm::start(u)?;
    let mut b = Vm::start(b)?;

    u.wait_event("ready", BOOT)?;
    b.wait_event("ready", BOOT)?;
    u.wait_console("kiln-l2-reached-192.168.77.2 host=node-u mtu=1400", BOOT)?;
    b.wait_console("kiln-l2-reached-192.168.77.1 host=node-b", BOOT)?;
    check_u_events(&u.events());
    check_b_events(&b.events());
    supervisor_checks(&mut u)?;
    power_off(&mut b)?;
    power_off(&mut u)?;
    check_u_state(&common::state_partition(&disk_u, &dir)?)?;

    cmdline_boot(&dir, &base, &raw)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
