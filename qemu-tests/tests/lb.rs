//! The IPVS load balancer on a real kernel: one client VM running Kiln's LB in front of two
//! backend VMs that serve HTTP /healthz and /id on :6443 (busybox httpd), all on one L2
//! hub. Checked from inside the client (as kubelet would connect) with busybox wget and
//! Debian's `ipvsadm -Ln` (a tool we did not write), through `exec` requests:
//! spread over both backends; a backend killed → drained and removed, no request reaches
//! it; back → rejoins after the rise threshold; `ipvsadm -C` → Kiln's rules restored and a
//! foreign service left alone; reload without restart; a bad reload refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use qemu_tests::hub::Hub;
use qemu_tests::image::{self, tool_ok};
use qemu_tests::{require_qemu, Arch, Vm, VmConfig};
use serde_json::{json, Value};

mod common;
use common::{d, events_named, exec, wait_for};

const TOOLS: &[&str] = &["cloud-localds", "qemu-img", "python3", "busybox"];
const BOOT: Duration = Duration::from_secs(300);
const VIP: &str = "10.103.97.2";
const B1: &str = "192.168.77.11:6443";
const B2: &str = "192.168.77.12:6443";

fn network(mac: &str, addr: &str) -> String {
    format!("version: 2\nethernets:\n  l2:\n    match:\n      macaddress: '{mac}'\n    addresses: [{addr}/24]\n  up:\n    match:\n      macaddress: '52:54:00:12:34:56'\n    dhcp4: true\n")
}

fn backend_user_data(name: &str) -> String {
    format!("#cloud-config\nhostname: {name}\nruncmd:\n  - busybox mkdir -p /run/www\n  - echo ok > /run/www/healthz\n  - echo {name} > /run/www/id\n  - busybox httpd -p 6443 -h /run/www\n  - busybox dd if=/dev/zero of=/run/www/big bs=1048576 count=16\n")
}

/// api-1 is also a control plane running the load balancer with itself as a backend:
/// link mode (a local real server), /etc/hosts pointing at itself.
fn control_plane_user_data() -> String {
    format!(
        "{}kiln:\n  role: control-plane\n  debug_exec: true\n  lb:\n    backends: ['192.168.77.11', '192.168.77.12']\n    check: {{kind: http, path: /healthz}}\n",
        backend_user_data("api-1")
    )
}

const CLIENT_USER_DATA: &str = "#cloud-config
hostname: lb-client
kiln:
  role: worker
  debug_exec: true
  lb:
    backends: ['192.168.77.11', '192.168.77.12']
    check: {kind: http, path: /healthz}
";

fn seed(dir: &Path, name: &str, user_data: &str, mac: &str, addr: &str) -> Result<String> {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub)?;
    std::fs::write(sub.join("user-data"), user_data)?;
    std::fs::write(
        sub.join("meta-data"),
        format!("instance-id: iid-{name}\nlocal-hostname: {name}\n"),
    )?;
    std::fs::write(sub.join("network-config"), network(mac, addr))?;
    let img = sub.join("seed.img");
    let p = |n: &str| d(&sub.join(n));
    tool_ok(
        "cloud-localds",
        &[
            "-N",
            &p("network-config"),
            &d(&img),
            &p("user-data"),
            &p("meta-data"),
        ],
    )?;
    Ok(d(&img))
}

fn vm(name: &str, base: &Path, seed: &str, nic: Vec<String>) -> Result<Vm> {
    let mut cfg = VmConfig::new(name, base);
    cfg.memory_mib = 768;
    cfg.extra_args.extend(nic);
    cfg.extra_args.extend([
        "-drive".to_string(),
        format!("if=virtio,format=raw,readonly=on,file={seed}"),
    ]);
    Vm::start(cfg)
}

/// The three VMs on their hub: client `c` (the load balancer), backends `b1` and `b2`.
struct Lab {
    dir: std::path::PathBuf,
    base: std::path::PathBuf,
    hub: Hub,
    /// api-2's seed, to boot it again.
    s2: String,
    c: Vm,
    b1: Vm,
    b2: Vm,
}

impl Lab {
    /// Builds the image (+ ipvsadm) into target/qemu-tests/`name` and starts the VMs;
    /// api-1 boots with `api1_user_data`.
    fn boot(name: &str, api1_user_data: &str) -> Result<Lab> {
        let dir = image::target_dir().join("qemu-tests").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let (base, _) = common::build_node(&dir, &["ipvsadm"])?;
        let hub = Hub::start(3)?;
        let nodes = [
            ("lb-client", CLIENT_USER_DATA.to_string(), "10"),
            ("api-1", api1_user_data.to_string(), "11"),
            ("api-2", backend_user_data("api-2"), "12"),
        ];
        let mut seeds = Vec::new();
        for (node, user_data, last) in &nodes {
            let mac = format!("52:54:00:77:00:{last}");
            let addr = format!("192.168.77.{last}");
            seeds.push(seed(&dir, node, user_data, &mac, &addr)?);
        }
        let mut vms = Vec::new();
        for (i, (node, _, last)) in nodes.iter().enumerate() {
            let mac = format!("52:54:00:77:00:{last}");
            vms.push(vm(
                &format!("{name}-{node}"),
                &base,
                &seeds[i],
                hub.nic_args(i, &mac),
            )?);
        }
        let mut vms = vms.into_iter();
        let (Some(c), Some(b1), Some(b2)) = (vms.next(), vms.next(), vms.next()) else {
            anyhow::bail!("three VMs expected");
        };
        Ok(Lab {
            dir,
            base,
            hub,
            s2: seeds.swap_remove(2),
            c,
            b1,
            b2,
        })
    }
}

/// A real server as `ipvsadm -Ln` shows it: (address, forward, weight).
type RealServer = (String, String, u32);
/// `ipvsadm -Ln`: (service line, its real servers).
type Table = Vec<(String, Vec<RealServer>)>;

/// `ipvsadm -Ln` as (service line, [(real server, forward, weight)]).
fn ipvs_table(c: &mut Vm) -> Result<Table> {
    let (code, out) = exec(c, "ipvsadm -Ln")?;
    ensure!(code == 0, "ipvsadm -Ln: {code}: {out}");
    let mut table: Table = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [proto @ ("TCP" | "UDP"), addr, sched, ..] => {
                table.push((format!("{proto} {addr} {sched}"), Vec::new()));
            }
            ["->", rs, fwd, weight, _, _] if *rs != "RemoteAddress:Port" => {
                let entry = table.last_mut().context("real server before service")?;
                entry
                    .1
                    .push((rs.to_string(), fwd.to_string(), weight.parse()?));
            }
            _ => {}
        }
    }
    Ok(table)
}

fn kiln_service(table: &Table) -> Vec<RealServer> {
    let want = format!("TCP {VIP}:6443 rr");
    let mut rs = table
        .iter()
        .find(|(s, _)| *s == want)
        .map(|(_, rs)| rs.clone())
        .unwrap_or_default();
    rs.sort();
    rs
}

fn masq(rs: &str, weight: u32) -> RealServer {
    (rs.to_string(), "Masq".to_string(), weight)
}

/// `n` requests to the VIP; the backend names that answered (one per line).
fn through_vip(c: &mut Vm, n: u32) -> Result<Vec<String>> {
    let cmd = format!("for i in $(busybox seq 1 {n}); do busybox wget -q -T 3 -O - http://{VIP}:6443/id || echo FAIL; done");
    let (_, out) = exec(c, &cmd)?;
    Ok(out.lines().map(String::from).collect())
}

/// Waits for an `lb_backend` event for `backend` to state `to` from event index `since` on.
fn wait_backend(
    c: &mut Vm,
    since: usize,
    backend: &str,
    to: &str,
    timeout: Duration,
) -> Result<Value> {
    wait_for(c, since, timeout, |e| {
        e["event"] == "lb_backend" && e["backend"] == backend && e["to"] == to
    })
}

#[test]
fn ipvs_load_balancer_spreads_fails_over_and_restores() -> Result<()> {
    if !require_qemu(Arch::X86_64) || !image::require_tools(TOOLS) {
        return Ok(());
    }
    let Lab {
        dir,
        base,
        hub,
        s2,
        mut c,
        mut b1,
        mut b2,
    } = Lab::boot("lb", &control_plane_user_data())?;
    b1.wait_event("ready", BOOT)?;
    b2.wait_event("ready", BOOT)?;
    c.wait_event("ready", BOOT)?;
    let started = c.wait_event("lb_started", Duration::from_secs(60))?;
    assert_eq!(
        (started["mode"].as_str(), started["vip"].as_str()),
        (Some("route"), Some(VIP)),
        "{started}"
    );
    wait_backend(&mut c, 0, B1, "up", Duration::from_secs(60))?;
    wait_backend(&mut c, 0, B2, "up", Duration::from_secs(60))?;
    let (_, hosts) = exec(&mut c, "busybox grep apiserver.cluster.local /etc/hosts")?;
    assert_eq!(hosts.trim(), format!("{VIP} apiserver.cluster.local"));

    // Spread over both backends, exactly the expected table.
    assert_eq!(
        kiln_service(&ipvs_table(&mut c)?),
        vec![masq(B1, 1), masq(B2, 1)]
    );
    // Kiln's own netlink reading of the table agrees with ipvsadm's.
    let (code, dump) = exec(&mut c, "/sbin/init ipvs-dump")?;
    ensure!(code == 0, "ipvs-dump: {dump}");
    eprintln!("--- ipvs-dump (kernel capture) ---\n{dump}");
    let mut decoded: Vec<&str> = dump.lines().take_while(|l| !l.starts_with('#')).collect();
    decoded.sort(); // the kernel's order of real servers is its hash order
    assert_eq!(
        decoded,
        vec![
            format!("  dest {B1} Masquerade weight 1"),
            format!("  dest {B2} Masquerade weight 1"),
            format!("service tcp {VIP}:6443 rr flags 0 timeout 0 netmask ffffffff fwmark 0"),
        ]
    );
    let answers = through_vip(&mut c, 8)?;
    assert!(
        answers.iter().filter(|a| *a == "api-1").count() >= 2,
        "{answers:?}"
    );
    assert!(
        answers.iter().filter(|a| *a == "api-2").count() >= 2,
        "{answers:?}"
    );

    // api-1, a control plane with a local real server: link mode; the VIP reaches itself
    // and api-2 (source-NATed); no drift between rounds.
    let cp = b1.wait_event("lb_started", Duration::from_secs(60))?;
    assert_eq!(cp["mode"], "link", "{cp}");
    wait_backend(&mut b1, 0, B1, "up", Duration::from_secs(60))?;
    wait_backend(&mut b1, 0, B2, "up", Duration::from_secs(60))?;
    let (_, hosts) = exec(&mut b1, "busybox grep apiserver.cluster.local /etc/hosts")?;
    assert_eq!(hosts.trim(), "192.168.77.11 apiserver.cluster.local");
    // 6.12 keeps masquerade for a local real server (older kernels showed "Local").
    assert_eq!(
        kiln_service(&ipvs_table(&mut b1)?),
        vec![masq(B1, 1), masq(B2, 1)]
    );
    let answers = through_vip(&mut b1, 8)?;
    assert!(answers.iter().any(|a| a == "api-1"), "{answers:?}");
    assert!(answers.iter().any(|a| a == "api-2"), "{answers:?}");
    let since = b1.events().len();
    std::thread::sleep(Duration::from_secs(3));
    let syncs = b1.events()[since..]
        .iter()
        .filter(|e| e["event"] == "lb_sync")
        .count();
    assert_eq!(syncs, 0, "IPVS rewritten without a change");

    // Power cut on api-2: drained, then removed; no request reaches it.
    let since = c.events().len();
    let cut = Instant::now();
    b2.kill()?;
    let drained = wait_backend(&mut c, since, B2, "draining", Duration::from_secs(30))?;
    let drain_s = cut.elapsed().as_secs_f64();
    let down = wait_backend(&mut c, since, B2, "down", Duration::from_secs(30))?;
    let down_s = cut.elapsed().as_secs_f64();
    eprintln!("failover (host clock, TCG): drained after {drain_s:.2} s, removed after {down_s:.2} s ({drained} {down})");
    assert!(down_s < 15.0, "removal took {down_s:.1} s");
    let answers = through_vip(&mut c, 6)?;
    assert!(answers.iter().all(|a| a == "api-1"), "{answers:?}");
    assert_eq!(kiln_service(&ipvs_table(&mut c)?), vec![masq(B1, 1)]);

    // Back: a fresh boot of api-2 rejoins after the rise threshold.
    let since = c.events().len();
    let mut b2 = vm(
        "lb-api-2b",
        &base,
        &s2,
        hub.nic_args(2, "52:54:00:77:00:12"),
    )?;
    b2.wait_event("ready", BOOT)?;
    wait_backend(&mut c, since, B2, "up", Duration::from_secs(60))?;
    assert_eq!(
        kiln_service(&ipvs_table(&mut c)?),
        vec![masq(B1, 1), masq(B2, 1)]
    );

    // A foreign service is left alone; a flush is repaired within an interval.
    let (code, out) = exec(&mut c, "ipvsadm -A -t 10.9.9.9:80 -s rr")?;
    ensure!(code == 0, "add foreign service: {out}");
    std::thread::sleep(Duration::from_secs(3));
    let table = ipvs_table(&mut c)?;
    assert!(
        table.iter().any(|(s, _)| s == "TCP 10.9.9.9:80 rr"),
        "{table:?}"
    );
    assert_eq!(kiln_service(&table), vec![masq(B1, 1), masq(B2, 1)]);
    let since = c.events().len();
    let (code, _) = exec(&mut c, "ipvsadm -C")?;
    ensure!(code == 0);
    let sync = wait_for(&mut c, since, Duration::from_secs(10), |e| {
        e["event"] == "lb_sync"
    })?;
    eprintln!("restored after flush: {sync}");
    let table = ipvs_table(&mut c)?;
    assert_eq!(kiln_service(&table), vec![masq(B1, 1), masq(B2, 1)]);
    assert!(
        !table.iter().any(|(s, _)| s.contains("10.9.9.9")),
        "{table:?}"
    );

    // Reload without restart: api-2 pruned; a bad reload is refused.
    let settings = json!({"backends": [B1], "check": {"kind": "http", "path": "/healthz"}});
    c.send(&json!({"request": "lb", "settings": settings}))?;
    c.wait_event("lb_reloaded", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(kiln_service(&ipvs_table(&mut c)?), vec![masq(B1, 1)]);
    let bad = json!({"port": 0, "backends": [B1], "check": {"kind": "tcp"}});
    let since = c.events().len();
    c.send(&json!({"request": "lb", "settings": bad}))?;
    let err = wait_for(&mut c, since, Duration::from_secs(30), |e| {
        e["event"] == "lb_error"
    })?;
    assert!(
        err["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("lb.port must not be 0"),
        "{err}"
    );
    assert!(events_named(&c.events(), "fatal").is_empty());

    for v in [&mut c, &mut b1, &mut b2] {
        v.powerdown()?;
    }
    for v in [&mut c, &mut b1, &mut b2] {
        v.wait_exit(Duration::from_secs(90))?;
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Guest-side probe loop: every 0.1 s, one request through the VIP and one straight to
/// api-2, each in the background (a hanging request delays no other), logged as
/// `uptime vip|direct answer|FAIL`.
const PROBE_LOOP: &str = "( while [ ! -e /run/stop-probe ]; do t=$(busybox cut -d' ' -f1 /proc/uptime); ( r=$(busybox wget -q -T 1 -O - http://10.103.97.2:6443/id 2>/dev/null || echo FAIL); echo \"$t vip $r\" >> /run/probe.log ) & ( r=$(busybox wget -q -T 1 -O - http://192.168.77.12:6443/id 2>/dev/null || echo FAIL); echo \"$t direct $r\" >> /run/probe.log ) & busybox usleep 100000; done ) </dev/null >/dev/null 2>&1 &";

/// From a probe log around a power cut and a restart of api-2 (guest clock):
/// (failover: api-2's last direct answer → last VIP request that still went to it (and
/// failed); failed VIP requests; recovery: api-2's first direct answer again → its first
/// answer through the VIP).
fn failover_from_log(log: &str) -> Option<(f64, usize, f64)> {
    let mut rows: Vec<(f64, &str, &str)> = log
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?, f.next()?))
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let alive = |r: &&(f64, &str, &str)| r.1 == "direct" && r.2 == "api-2";
    let dead_at = rows
        .iter()
        .take_while(|r| !(r.1 == "direct" && r.2 == "FAIL"))
        .filter(alive)
        .last()?
        .0;
    let back_at = rows.iter().filter(|r| r.0 > dead_at).find(|r| alive(r))?.0;
    let fails: Vec<f64> = rows
        .iter()
        .filter(|r| r.0 > dead_at && r.0 < back_at && r.1 == "vip" && r.2 == "FAIL")
        .map(|r| r.0)
        .collect();
    let rejoined = rows
        .iter()
        .find(|r| r.0 >= back_at && r.1 == "vip" && r.2 == "api-2")?
        .0;
    Some((fails.last()? - dead_at, fails.len(), rejoined - back_at))
}

/// One power cut and restart of api-2 with the current settings; returns (failover s,
/// failed requests, recovery s), all on the client's clock, and the new api-2 VM.
fn failover_round(
    c: &mut Vm,
    b2: Vm,
    base: &Path,
    s2: &str,
    hub: &Hub,
    name: &str,
) -> Result<(f64, usize, f64, Vm)> {
    let mut b2 = b2;
    exec(c, "busybox rm -f /run/stop-probe /run/probe.log")?;
    exec(c, PROBE_LOOP)?;
    std::thread::sleep(Duration::from_secs(4));
    let since = c.events().len();
    b2.kill()?;
    wait_backend(c, since, B2, "down", Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_secs(3));
    let since = c.events().len();
    let mut b2 = vm(name, base, s2, hub.nic_args(2, "52:54:00:77:00:12"))?;
    b2.wait_event("ready", BOOT)?;
    wait_backend(c, since, B2, "up", Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_secs(3));
    exec(c, "busybox touch /run/stop-probe; busybox sleep 2")?;
    let (_, log) = exec(c, "busybox cat /run/probe.log")?;
    let (failover, fails, recovery) =
        failover_from_log(&log).context("no failover and recovery in the probe log")?;
    Ok((failover, fails, recovery, b2))
}

/// Seconds for one `wget` of `url` to /dev/null, `n` times (guest clock).
fn fetch_times(c: &mut Vm, url: &str, n: u32) -> Result<Vec<f64>> {
    let cmd = format!("for i in $(busybox seq 1 {n}); do s=$(busybox cut -d' ' -f1 /proc/uptime); busybox wget -q -T 30 -O /dev/null {url} || exit 1; e=$(busybox cut -d' ' -f1 /proc/uptime); echo $s $e; done");
    let (code, out) = exec(c, &cmd)?;
    ensure!(code == 0, "{url}: {out}");
    Ok(out
        .lines()
        .filter_map(|l| {
            let (s, e) = l.split_once(' ')?;
            Some(e.parse::<f64>().ok()? - s.parse::<f64>().ok()?)
        })
        .collect())
}

/// Requests per second from the client: `n` sequential GETs of /id to `url`.
fn rate(c: &mut Vm, url: &str, n: u32) -> Result<f64> {
    let cmd = format!("s=$(busybox cut -d' ' -f1 /proc/uptime); for i in $(busybox seq 1 {n}); do busybox wget -q -T 3 -O /dev/null {url} || exit 1; done; e=$(busybox cut -d' ' -f1 /proc/uptime); echo $s $e");
    let (code, out) = exec(c, &cmd)?;
    ensure!(code == 0, "{url}: {out}");
    let t: Vec<f64> = out
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    ensure!(t.len() == 2, "{out}");
    Ok(f64::from(n) / (t[1] - t[0]))
}

/// Benchmark (not a test): `init/benches/lb.sh` runs it and records the figures.
#[test]
#[ignore = "benchmark: run by init/benches/lb.sh"]
fn lb_bench() -> Result<()> {
    require_qemu(Arch::X86_64);
    let out = std::env::var("LB_BENCH_OUT").unwrap_or_else(|_| "/tmp/lb-bench.json".into());
    let soak: u64 = std::env::var("LB_SOAK_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let Lab {
        dir: _,
        base,
        hub,
        s2,
        mut c,
        mut b1,
        b2,
    } = Lab::boot("lb-bench", &backend_user_data("api-1"))?;
    c.wait_event("ready", BOOT)?;
    wait_backend(&mut c, 0, B1, "up", BOOT)?;
    wait_backend(&mut c, 0, B2, "up", BOOT)?;

    let (mut vip_rates, mut direct_rates) = (Vec::new(), Vec::new());
    let (mut vip_bulk, mut direct_bulk) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        vip_rates.push(rate(&mut c, &format!("http://{VIP}:6443/id"), 100)?);
        direct_rates.push(rate(&mut c, "http://192.168.77.11:6443/id", 100)?);
        // 16 MiB over one connection: MiB/s.
        let mib = |t: Vec<f64>| t.iter().map(|s| 16.0 / s).collect::<Vec<f64>>();
        vip_bulk.extend(mib(fetch_times(
            &mut c,
            &format!("http://{VIP}:6443/big"),
            2,
        )?));
        direct_bulk.extend(mib(fetch_times(
            &mut c,
            "http://192.168.77.11:6443/big",
            2,
        )?));
    }
    let (k_fail, k_fails, k_rec, b2) =
        failover_round(&mut c, b2, &base, &s2, &hub, "bench-api-2b")?;

    // lvscare's defaults in the same harness: 5 s interval, 10 s timeout, act on one probe.
    let lvscare = json!({"backends": [B1, B2], "check": {"kind": "http", "path": "/healthz",
        "interval_ms": 5000, "timeout_ms": 10000, "rise": 1, "fall": 1}});
    c.send(&json!({"request": "lb", "settings": lvscare}))?;
    c.wait_event("lb_reloaded", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(6));
    let (l_fail, l_fails, l_rec, b2) =
        failover_round(&mut c, b2, &base, &s2, &hub, "bench-api-2c")?;

    // Soak with Kiln's defaults and a healthy backend set: no transition may happen.
    let defaults = json!({"backends": [B1, B2], "check": {"kind": "http", "path": "/healthz"}});
    c.send(&json!({"request": "lb", "settings": defaults}))?;
    c.wait_event("lb_reloaded", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(5));
    let since = c.events().len();
    std::thread::sleep(Duration::from_secs(soak));
    let flaps = c.events()[since..]
        .iter()
        .filter(|e| e["event"] == "lb_backend")
        .count();

    let result = json!({
        "vip_rps": vip_rates, "direct_rps": direct_rates,
        "vip_mib_s": vip_bulk, "direct_mib_s": direct_bulk,
        "kiln": {"failover_s": k_fail, "failed_requests": k_fails, "recovery_s": k_rec},
        "lvscare_model": {"failover_s": l_fail, "failed_requests": l_fails, "recovery_s": l_rec},
        "soak_s": soak, "soak_transitions": flaps,
        "accel": format!("{:?}", c.accel()),
    });
    std::fs::write(&out, serde_json::to_string_pretty(&result)?)?;
    eprintln!("{result}");
    drop(b2);
    b1.kill()?;
    Ok(())
}
