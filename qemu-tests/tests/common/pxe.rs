//! Network-boot pieces shared by the x86_64 (pxe.rs) and aarch64 (aarch64.rs) QEMU tests:
//! one `kiln pxe serve` per bundle with its access log captured, per-MAC NoCloud seeds, the
//! iPXE script QEMU's built-in TFTP hands out, and the checks every network-booted node and
//! every bundle must pass. How a VM reaches iPXE (SeaBIOS + NIC ROM, or UEFI PXE) is the
//! test file's business.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Result};
use kiln_imager::pxe::{self, Config, Server};
use serde_json::Value;

use super::events_named;

/// `kiln pxe serve` for the bundle in `dir` (and per-MAC `seeds`) on a free local port;
/// every access-log line lands in `log`.
pub fn serve(
    dir: &Path,
    seeds: Option<&Path>,
    log: Arc<Mutex<Vec<String>>>,
) -> Result<pxe::Handle> {
    let mut config = Config::new(dir, "127.0.0.1:0".parse()?);
    config.seeds = seeds.map(Path::to_path_buf);
    config.log = Arc::new(move |line: &str| log.lock().unwrap().push(line.to_string()));
    Ok(Server::bind(config)?.spawn()?)
}

/// The seed folder of one MAC (the dash spelling iPXE's `${mac:hexhyp}` produces): its
/// hostname, and a user-data that prints `kiln-pxe-host=<hostname>` and
/// `kiln-pxe-arch=<uname -m>` on the console.
pub fn write_seed(dir: &Path, mac: &str, host: &str) -> Result<()> {
    let node = dir.join(mac.replace(':', "-"));
    std::fs::create_dir_all(&node)?;
    std::fs::write(
        node.join("meta-data"),
        format!("instance-id: {host}\nlocal-hostname: {host}\n"),
    )?;
    std::fs::write(
        node.join("user-data"),
        "#cloud-config\nruncmd:\n  \
         - echo kiln-pxe-host=$(busybox cat /proc/sys/kernel/hostname) > /dev/console\n  \
         - echo kiln-pxe-arch=$(busybox uname -m) > /dev/console\n",
    )?;
    Ok(())
}

/// Writes the folder QEMU's user networking serves over TFTP (`tftp=`), holding `script`:
/// an iPXE script that sets `kiln-base` to the server on `port` (10.0.2.2 is the host as
/// seen from user networking) and chains the bundle's boot.ipxe. `dhcp_first`: configure
/// the NIC first, for an iPXE that runs the script before opening any NIC (autoexec.ipxe);
/// the x86 NIC ROM has configured it already when it fetches its boot file.
pub fn tftp_dir(dir: &Path, port: u16, script: &str, dhcp_first: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dhcp = if dhcp_first { "dhcp\n" } else { "" };
    std::fs::write(
        dir.join(script),
        format!(
            "#!ipxe\n{dhcp}set kiln-base http://10.0.2.2:{port}/\nchain ${{kiln-base}}boot.ipxe\n"
        ),
    )?;
    Ok(dir.to_path_buf())
}

/// coreutils checks the bundle's SHA256SUMS, and boot.ipxe must pass the root's digest to
/// init. Returns that digest.
pub fn check_bundle(bundle: &Path) -> Result<String> {
    let out = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(bundle)
        .output()?;
    ensure!(
        out.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let root_sha = qemu_tests::image::sha256(&bundle.join("root.squashfs"))?;
    let script = std::fs::read_to_string(bundle.join("boot.ipxe"))?;
    ensure!(
        script.contains(&format!("kiln.root.sha256={root_sha}")),
        "{script}"
    );
    Ok(root_sha)
}

/// What every network-booted node with `mac` must have reported: the root fetched once
/// with the bundle's digest and loop-mounted, its own seed found on the server, stage 1's
/// DHCP lease released, the seed used as config, and no STATE partition (stage 2 goes on in
/// RAM). Returns the `root_fetched` event.
pub fn check_node(events: &[Value], mac: &str, root_sha: &str) -> Result<Value> {
    let fetched = events_named(events, "root_fetched");
    ensure!(fetched.len() == 1, "root_fetched: {fetched:?}");
    ensure!(fetched[0]["sha256"] == root_sha, "{}", fetched[0]);
    let mounted = events_named(events, "root_mounted");
    ensure!(
        mounted[0]["device"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/dev/loop"),
        "{}",
        mounted[0]
    );
    let seed = events_named(events, "seed_fetched");
    let mac_dashed = mac.replace(':', "-");
    ensure!(
        seed.len() == 1
            && seed[0]["status"] == "found"
            && seed[0]["url"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("/seeds/{mac_dashed}/")),
        "seed_fetched: {seed:?}"
    );
    let released = events_named(events, "network_released");
    ensure!(!released.is_empty(), "stage 1 kept its DHCP lease");
    let found = events_named(events, "config_found");
    ensure!(
        found.iter().any(|e| e["source"]
            .as_str()
            .unwrap_or_default()
            .starts_with("nocloud-net:http://10.0.2.2:")),
        "config_found: {found:?}"
    );
    ensure!(
        !events_named(events, "state_unavailable").is_empty(),
        "no state_unavailable event"
    );
    Ok(fetched[0].clone())
}

/// The server's access log: each bundle file requested at least `nodes` times, and a 200
/// for each MAC's meta-data.
pub fn check_server_log(lines: &[String], nodes: usize, macs: &[&str]) -> Result<()> {
    for want in ["/boot.ipxe", "/vmlinuz", "/initrd", "/root.squashfs"] {
        let n = lines
            .iter()
            .filter(|l| l.contains(&format!("GET {want} ")))
            .count();
        ensure!(
            n >= nodes,
            "{want} requested {n} times, want ≥ {nodes}: {lines:#?}"
        );
    }
    for mac in macs {
        let path = format!("/seeds/{}/meta-data", mac.replace(':', "-"));
        ensure!(
            lines
                .iter()
                .any(|l| l.contains(&path) && l.contains(" 200 ")),
            "no 200 for {path}: {lines:#?}"
        );
    }
    Ok(())
}
