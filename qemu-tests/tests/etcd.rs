//! etcd under init on real kernels, with seeds from `kiln cluster gen`: three control
//! planes on one L2 hub form a TLS etcd cluster (checked with Debian's `etcdctl` inside
//! a guest: member list, a key written on one node read on another); a fourth control
//! plane joins through member-add; one VM is powered off and the rest still serve
//! writes; an on-demand snapshot is taken, the joined member leaves (member-remove), and
//! the snapshot restored onto a fresh node returns the data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use qemu_tests::hub::Hub;
use qemu_tests::image::{self, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm};
use serde_json::{json, Value};

mod common;
use common::{d, exec, wait_for};

const TOOLS: &[&str] = &["qemu-img", "python3", "busybox"];
const BOOT: Duration = Duration::from_secs(400);
const NET: &str = "192.168.80";

/// `etcdctl` as a control plane runs it against `endpoints` (healthcheck client cert).
fn etcdctl(endpoints: &str, args: &str) -> String {
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints={endpoints} --dial-timeout=5s --command-timeout=15s \
         --cacert=/etc/kubernetes/pki/etcd/ca.crt \
         --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
         --key=/etc/kubernetes/pki/etcd/healthcheck-client.key {args} 2>&1"
    )
}

fn endpoint(last: u8) -> String {
    format!("https://{NET}.{last}:2379")
}

/// `kiln cluster gen` through the imager library (what the CLI calls).
fn cluster_gen(
    name: &str,
    control_planes: &[&str],
    restore: Option<&Path>,
    out: &Path,
) -> Result<()> {
    let opts = kiln_imager::cluster::GenOptions {
        name: name.into(),
        control_planes: control_planes.iter().map(|s| s.to_string()).collect(),
        debug_exec: true,
        etcd_restore: restore.map(Path::to_path_buf),
        ..Default::default()
    };
    kiln_imager::cluster::gen(&opts, out)?;
    Ok(())
}

/// Starts node `name` (seed under `cluster/nodes/<name>/seed.img`) on hub port `port`.
fn start(
    dir: &Path,
    base: &Path,
    hub: &Hub,
    port: usize,
    cluster: &Path,
    name: &str,
    last: u8,
) -> Result<Vm> {
    let mac = format!("52:54:00:80:00:{last:02x}");
    common::start_cluster_node(
        &format!("etcd-{name}"),
        dir,
        base,
        hub,
        port,
        &mac,
        cluster,
        name,
        768,
    )
}

/// Waits until `vm`'s etcd is prepared in `state` and its service is ready.
fn etcd_up(vm: &mut Vm, state: &str) -> Result<Value> {
    let prepared = wait_for(vm, 0, BOOT, |e| e["event"] == "etcd_prepared")?;
    ensure!(
        prepared["state"] == state,
        "etcd prepared as {prepared}, wanted {state}"
    );
    wait_for(vm, 0, BOOT, |e| {
        e["event"] == "service_ready" && e["service"] == "etcd"
    })?;
    Ok(prepared)
}

/// `etcdctl member list -w json` → [(name, peer URL)], sorted.
fn members(vm: &mut Vm, endpoints: &str) -> Result<Vec<(String, String)>> {
    let (code, out) = exec(vm, &etcdctl(endpoints, "member list -w json"))?;
    ensure!(code == 0, "member list failed: {out}");
    let v: Value =
        serde_json::from_str(out.trim()).with_context(|| format!("member list: {out}"))?;
    let mut list: Vec<(String, String)> = v["members"]
        .as_array()
        .context("no members")?
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["peerURLs"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    list.sort();
    Ok(list)
}

fn put(vm: &mut Vm, endpoints: &str, key: &str, value: &str) -> Result<()> {
    let (code, out) = exec(vm, &etcdctl(endpoints, &format!("put {key} {value}")))?;
    ensure!(
        code == 0 && out.contains("OK"),
        "put {key} via {endpoints}: {out}"
    );
    Ok(())
}

fn get(vm: &mut Vm, endpoints: &str, key: &str) -> Result<String> {
    let (code, out) = exec(
        vm,
        &etcdctl(endpoints, &format!("get {key} --print-value-only")),
    )?;
    ensure!(code == 0, "get {key} via {endpoints}: {out}");
    Ok(out.trim().to_string())
}

/// `get` until it answers (a member that just started may still be catching up).
fn get_eventually(vm: &mut Vm, endpoints: &str, key: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match get(vm, endpoints, key) {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// `put` until it succeeds (after a power cut the survivors may first elect a leader).
fn put_eventually(vm: &mut Vm, endpoints: &str, key: &str, value: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match put(vm, endpoints, key, value) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// Sends an `etcd` request and waits for its answer (by id).
fn etcd_request(vm: &mut Vm, action: &str, id: &str, answer: &str) -> Result<Value> {
    let since = vm.events().len();
    vm.send(&json!({"request": "etcd", "action": action, "id": id}))?;
    let e = wait_for(vm, since, Duration::from_secs(120), |e| {
        e["id"] == id
            && (e["event"] == answer || e["event"] == "etcd_error" || e["event"] == "request_error")
    })?;
    ensure!(e["event"] == answer, "{action}: {e}");
    Ok(e)
}

/// Copies a guest file to the host through `exec` (gzip + base64: exec output is capped).
fn fetch(vm: &mut Vm, path: &str, to: &Path) -> Result<()> {
    let (code, out) = exec(vm, &format!("busybox gzip -c {path} | busybox base64"))?;
    ensure!(code == 0, "fetch {path}: {out}");
    let gz = to.with_extension("gz.b64");
    std::fs::write(&gz, out)?;
    tool_ok(
        "sh",
        &[
            "-c",
            &format!("base64 -d {} | gzip -dc > {}", d(&gz), d(to)),
        ],
    )?;
    Ok(())
}

struct Lab {
    dir: PathBuf,
    base: PathBuf,
    cluster: PathBuf,
    hub: Hub,
}

impl Lab {
    fn new(name: &str) -> Result<Lab> {
        let dir = image::target_dir().join("qemu-tests").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let (base, _) = common::build_node(&dir, &["etcd-server", "etcd-client"])?;
        let cluster = dir.join("cluster");
        let cps = [
            format!("{NET}.11"),
            format!("{NET}.12"),
            format!("{NET}.13"),
        ];
        let cps: Vec<&str> = cps.iter().map(String::as_str).collect();
        cluster_gen("etcdt", &cps, None, &cluster)?;
        let added = kiln_imager::cluster::add(
            &cluster,
            kiln_imager::cluster::Role::ControlPlane,
            &format!("{NET}.14"),
        )?;
        ensure!(
            added.nodes.len() == 1 && added.nodes[0].0.name.as_str() == "cp-4",
            "{added:?}"
        );
        Ok(Lab {
            dir,
            base,
            cluster,
            hub: Hub::start(5)?,
        })
    }

    fn start(&self, port: usize, name: &str, last: u8) -> Result<Vm> {
        start(
            &self.dir,
            &self.base,
            &self.hub,
            port,
            &self.cluster,
            name,
            last,
        )
    }

    /// Boots cp-1..3 and waits for a healthy three-member cluster; returns the VMs and
    /// the seconds from power-on to health (host clock).
    fn three(&self) -> Result<(Vec<Vm>, f64)> {
        let t0 = Instant::now();
        let mut vms = Vec::new();
        for (i, last) in [11u8, 12, 13].iter().enumerate() {
            vms.push(self.start(i, &format!("cp-{}", i + 1), *last)?);
        }
        for vm in &mut vms {
            etcd_up(vm, "new")?;
        }
        let all = format!("{},{},{}", endpoint(11), endpoint(12), endpoint(13));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, out) = exec(&mut vms[0], &etcdctl(&all, "endpoint health"))?;
            if code == 0 {
                break;
            }
            ensure!(Instant::now() < deadline, "cluster not healthy: {out}");
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok((vms, t0.elapsed().as_secs_f64()))
    }
}

#[test]
fn etcd_cluster_forms_joins_survives_a_power_cut_and_restores() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let lab = Lab::new("etcd")?;
    let (mut vms, formed) = lab.three()?;
    eprintln!("three control planes healthy {formed:.1} s after power-on");
    let want: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("cp-{i}"), format!("https://{NET}.1{i}:2380")))
        .collect();
    assert_eq!(members(&mut vms[0], &endpoint(11))?, want);
    for vm in &vms {
        let certs = vm
            .events()
            .iter()
            .filter(|e| e["event"] == "etcd_certs")
            .count();
        assert_eq!(certs, 1, "certificates issued once per node");
    }
    put(&mut vms[0], &endpoint(11), "kiln/k1", "v1")?;
    assert_eq!(get(&mut vms[1], &endpoint(12), "kiln/k1")?, "v1");

    // A fourth control plane, not in the initial list, joins with member-add.
    let t_join = Instant::now();
    let mut cp4 = lab.start(3, "cp-4", 14)?;
    let added = wait_for(&mut cp4, 0, BOOT, |e| e["event"] == "etcd_member_added")?;
    assert_eq!(added["members"], 4, "{added}");
    etcd_up(&mut cp4, "joined")?;
    assert_eq!(get_eventually(&mut cp4, &endpoint(14), "kiln/k1")?, "v1");
    eprintln!(
        "cp-4 joined {:.1} s after power-on",
        t_join.elapsed().as_secs_f64()
    );
    let listed = members(&mut vms[0], &endpoint(11))?;
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed.contains(&("cp-4".into(), format!("https://{NET}.14:2380"))),
        "{listed:?}"
    );

    // Power cut on cp-3: three of four members remain, writes go on.
    let mut cp3 = vms.pop().context("cp-3")?;
    cp3.kill()?;
    let cut = Instant::now();
    put_eventually(&mut vms[0], &endpoint(11), "kiln/k2", "v2")?;
    eprintln!(
        "write accepted {:.1} s after the power cut",
        cut.elapsed().as_secs_f64()
    );
    assert_eq!(get(&mut cp4, &endpoint(14), "kiln/k2")?, "v2");
    assert_eq!(get(&mut vms[1], &endpoint(12), "kiln/k2")?, "v2");

    // On-demand snapshot on cp-1, copied out and checked against the reported digest.
    let snap = etcd_request(&mut vms[0], "snapshot", "s1", "etcd_snapshot")?;
    let path = snap["path"].as_str().context("snapshot path")?.to_string();
    assert!(
        path.starts_with("/var/lib/kiln/etcd-backup/etcd-"),
        "{snap}"
    );
    let local = lab.dir.join("snapshot.db");
    fetch(&mut vms[0], &path, &local)?;
    assert_eq!(
        Some(std::fs::metadata(&local)?.len()),
        snap["bytes"].as_u64(),
        "{snap}"
    );
    assert_eq!(
        image::sha256(&local)?,
        snap["sha256"].as_str().unwrap_or(""),
        "{snap}"
    );

    // cp-4 leaves (member-remove); the others see three members again.
    etcd_request(&mut cp4, "leave", "l1", "etcd_left")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = members(&mut vms[0], &endpoint(11))?;
        if listed == want {
            break;
        }
        ensure!(Instant::now() < deadline, "cp-4 still listed: {listed:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    // The removed member stops for good: etcd exits, its step restarts, sees the removal
    // mark and idles (no restart loop of a removed etcd).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (stopped, _) = exec(
            &mut cp4,
            "busybox grep -q 'etcd stays stopped' /var/log/kiln/etcd.log",
        )?;
        let (running, out) = exec(&mut cp4, "busybox pidof etcd")?;
        if stopped == 0 && running != 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "cp-4 after leaving: etcd pid {out:?}, idle line found: {}",
            stopped == 0
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(cp4);
    drop(vms);

    // Disaster recovery: a fresh node restores the snapshot into a new cluster.
    let restore = lab.dir.join("restore");
    cluster_gen("restored", &[&format!("{NET}.21")], Some(&local), &restore)?;
    let mut r = start(&lab.dir, &lab.base, &lab.hub, 4, &restore, "cp-1", 21)?;
    let restored = wait_for(&mut r, 0, BOOT, |e| e["event"] == "etcd_restored")?;
    eprintln!("restored: {restored}");
    etcd_up(&mut r, "restored")?;
    assert_eq!(get_eventually(&mut r, &endpoint(21), "kiln/k1")?, "v1");
    assert_eq!(get(&mut r, &endpoint(21), "kiln/k2")?, "v2");
    assert_eq!(
        members(&mut r, &endpoint(21))?,
        [("cp-1".to_string(), format!("https://{NET}.21:2380"))]
    );
    Ok(())
}

/// The `ts` (guest seconds since boot) of `vm`'s `service_ready` for etcd.
fn etcd_ready_ts(vm: &Vm) -> f64 {
    vm.events()
        .iter()
        .find(|e| e["event"] == "service_ready" && e["service"] == "etcd")
        .and_then(|e| e["ts"].as_f64())
        .unwrap_or(f64::NAN)
}

/// Benchmark (figures, not assertions), run by `init/benches/etcd.sh`: power-on of three
/// control planes to a healthy cluster, and power-on of a fourth to a serving member.
#[test]
#[ignore = "benchmark: run by init/benches/etcd.sh"]
fn etcd_bench() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !image::require_tools(TOOLS) {
        anyhow::bail!("benchmark cannot run here");
    }
    let rounds: usize = std::env::var("ETCD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let lab = Lab::new("bench-etcd")?;
    let mut results = Vec::new();
    let mut accel = String::new();
    for round in 0..rounds {
        let (vms, formed) = lab.three()?;
        accel = format!("{:?}", vms[0].accel());
        let guest: Vec<f64> = vms.iter().map(etcd_ready_ts).collect();
        let t = Instant::now();
        let mut cp4 = lab.start(3, "cp-4", 14)?;
        etcd_up(&mut cp4, "joined")?;
        get_eventually(&mut cp4, &endpoint(14), "missing-key")?;
        let join = t.elapsed().as_secs_f64();
        let join_guest = etcd_ready_ts(&cp4);
        eprintln!("round {round}: healthy after {formed:.1} s (etcd ready at guest {guest:?}); join {join:.1} s (guest {join_guest:.1})");
        results.push(json!({"formed_s": formed, "guest_ready_s": guest, "join_s": join, "join_guest_ready_s": join_guest}));
        drop(cp4);
        drop(vms);
    }
    let out = std::env::var("ETCD_BENCH_OUT").unwrap_or_else(|_| d(&lab.dir.join("result.json")));
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({"accel": accel, "rounds": results}))?,
    )?;
    eprintln!("wrote {out}");
    Ok(())
}
