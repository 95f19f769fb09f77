//! Tests against the real kernel, each inside a fresh network namespace: the test binary
//! re-executes itself under `unshare --net`, and results are checked with iproute2's
//! `ip -j` (a tool we did not write) and, for DHCP, with dnsmasq as the server.
//! Missing root, unshare, veth or dnsmasq prints `skipped: <reason>` (a panic under CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const CHILD_ENV: &str = "KILN_NET_NETNS_CHILD";

fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("skipped under CI=true: {reason}");
    }
    println!("skipped: {reason}");
}

/// True in the namespaced child (run the body); in the parent, runs the child and
/// checks it passed, or reports the skip.
fn in_netns(test: &str, needs: &[&str]) -> bool {
    if std::env::var_os(CHILD_ENV).is_some() {
        return true;
    }
    let probe = "ip link add kprobe0 type veth peer name kprobe1";
    match Command::new("unshare")
        .args(["--net", "sh", "-c", probe])
        .output()
    {
        Err(e) => skip(&format!("run unshare: {e}")),
        Ok(out) if !out.status.success() => skip(&format!(
            "unshare --net with a veth pair: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => {
            if let Some(tool) = needs.iter().find(|t| which(t).is_none()) {
                skip(&format!("{tool} not installed"));
                return false;
            }
            let exe = std::env::current_exe().unwrap();
            let out = Command::new("unshare")
                .arg("--net")
                .arg(exe)
                .args(["--exact", &format!("net::netns_tests::{test}")])
                .args(["--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, "1")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "namespaced run failed:\n{text}");
            assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
        }
    }
    false
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.exists())
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_json(args: &str) -> serde_json::Value {
    let out = Command::new("sh")
        .args(["-c", &format!("ip -j {args}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "ip -j {args}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `local/prefixlen` of every address of `dev`.
fn addresses(dev: &str) -> Vec<String> {
    let v = ip_json(&format!("addr show dev {dev}"));
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// `dst via gateway metric` of every IPv4 route of `dev`.
fn routes(dev: &str) -> Vec<String> {
    let v = ip_json(&format!("-4 route show dev {dev}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut s = r["dst"].as_str().unwrap().to_string();
            if let Some(gw) = r["gateway"].as_str() {
                s.push_str(&format!(" via {gw}"));
            }
            if let Some(m) = r["metric"].as_u64() {
                s.push_str(&format!(" metric {m}"));
            }
            s
        })
        .collect()
}

#[test]
fn rtnetlink_configures_links_addresses_routes() {
    if !in_netns("rtnetlink_configures_links_addresses_routes", &["ip"]) {
        return;
    }
    sh("ip link add kva type veth peer name kvb");
    let mut nl = RtNetlink::new().unwrap();
    let links = nl.links().unwrap();
    let lo = links.iter().find(|l| l.name == "lo").unwrap();
    assert_eq!((lo.kind.clone(), lo.up), (LinkKind::Loopback, false));
    let kva = links.iter().find(|l| l.name == "kva").unwrap().clone();
    assert_eq!(kva.kind, LinkKind::Virtual("veth".into()));
    assert!(kva.mac.is_some());

    let plan = NetPlan {
        interfaces: vec![IfacePlan {
            name: "kva".into(),
            addresses: vec![
                "10.99.0.1/24".parse().unwrap(),
                "fd00:99::1/64".parse().unwrap(),
            ],
            gateway4: Some("10.99.0.254".parse().unwrap()),
            routes: vec![StaticRoute {
                dst: "10.98.0.0/16".parse().unwrap(),
                via: "10.99.0.2".parse().unwrap(),
                metric: Some(77),
            }],
            mtu: Some(1400),
            ..IfacePlan::default()
        }],
        ..NetPlan::default()
    };
    let applied = apply(&plan, &mut nl).unwrap();
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    // Applying twice is harmless (NLM_F_REPLACE).
    let again = apply(&plan, &mut nl).unwrap();
    assert!(again.failures.is_empty(), "{:?}", again.failures);

    let link = &ip_json("link show dev kva")[0];
    assert_eq!(link["mtu"], 1400);
    assert!(link["flags"].as_array().unwrap().contains(&"UP".into()));
    assert!(ip_json("link show dev lo")[0]["flags"]
        .as_array()
        .unwrap()
        .contains(&"UP".into()));
    let addrs = addresses("kva");
    assert!(addrs.contains(&"10.99.0.1/24".into()), "{addrs:?}");
    assert!(addrs.contains(&"fd00:99::1/64".into()), "{addrs:?}");
    let brd = ip_json("-4 addr show dev kva")[0]["addr_info"][0]["broadcast"].clone();
    assert_eq!(brd, "10.99.0.255");
    let mut got = routes("kva");
    got.sort();
    assert_eq!(
        got,
        [
            "10.98.0.0/16 via 10.99.0.2 metric 77",
            "10.99.0.0/24",
            "default via 10.99.0.254"
        ]
    );

    let route = Route {
        dst: "10.98.0.0/16".parse().unwrap(),
        gateway: Some("10.99.0.2".parse().unwrap()),
        index: kva.index,
        metric: Some(77),
    };
    nl.del_route(&route).unwrap();
    nl.del_address(kva.index, "fd00:99::1/64".parse().unwrap())
        .unwrap();
    assert!(!routes("kva").iter().any(|r| r.starts_with("10.98.")));
    assert!(!addresses("kva").iter().any(|a| a.starts_with("fd00:99::1")));
    let err = nl.del_route(&route).unwrap_err();
    assert!(matches!(err, NetlinkError::Kernel(..)), "{err:?}");
    assert!(crate::chain::error_chain(&err)
        .starts_with("kernel refused delete route 10.98.0.0/16 via 10.99.0.2"));
}

/// Kills and reaps the dnsmasq helper on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dhcp_lease_from_dnsmasq_and_release() {
    if !in_netns("dhcp_lease_from_dnsmasq_and_release", &["ip", "dnsmasq"]) {
        return;
    }
    let leases =
        std::env::temp_dir().join(format!("kiln-net-dnsmasq-{}.leases", std::process::id()));
    let _ = std::fs::remove_file(&leases);
    // dnsmasq runs in a second namespace that receives the peer end of a veth pair.
    let script = format!(
        "while ! ip link show kd0 >/dev/null 2>&1; do sleep 0.05; done
         ip link set lo up; ip addr add 10.99.1.1/24 dev kd0; ip link set kd0 up
         exec dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
           --user=root --interface=kd0 --bind-interfaces --log-dhcp \
           --dhcp-range=10.99.1.50,10.99.1.99,255.255.255.0,2m \
           --dhcp-option=option:router,10.99.1.1 --dhcp-option=option:dns-server,10.99.1.53 \
           --dhcp-option=option:domain-name,kiln.test --dhcp-leasefile={}",
        leases.display()
    );
    let child = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let helper = Helper(child);
    sh(&format!(
        "ip link add kd1 type veth peer name kd0 && ip link set kd0 netns {}",
        helper.0.id()
    ));

    let plan = NetPlan {
        interfaces: vec![IfacePlan {
            name: "kd1".into(),
            dhcp4: true,
            ..IfacePlan::default()
        }],
        hostname: Some("kiln-test".into()),
        ..NetPlan::default()
    };
    let mut events = Vec::new();
    let mut status = bring_up(
        &plan,
        Box::new(RtNetlink::new().unwrap()),
        &RawFactory,
        Arc::new(SystemClock),
        &mut |e: &NetEvent| events.push(e.clone()),
        Duration::from_secs(30),
    );
    assert!(status.online, "{events:?} {:?}", status.failures);
    let addr = status.interfaces[0].addresses[0].clone();
    assert!(
        addr.starts_with("10.99.1.") && addr.ends_with("/24"),
        "{addr}"
    );
    assert!(addresses("kd1").contains(&addr));
    assert!(
        routes("kd1").contains(&"default via 10.99.1.1".into()),
        "{:?}",
        routes("kd1")
    );
    assert_eq!(
        status.nameservers,
        ["10.99.1.53".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(status.search, ["kiln.test"]);
    let ip = addr.split('/').next().unwrap().to_string();
    wait_for("the lease file", || {
        std::fs::read_to_string(&leases).is_ok_and(|t| t.contains(&ip) && t.contains("kiln-test"))
    });

    status.keeper.release_all();
    assert!(
        !addresses("kd1").contains(&addr),
        "address removed on release"
    );
    wait_for("dnsmasq to drop the released lease", || {
        std::fs::read_to_string(&leases).is_ok_and(|t| !t.contains(&ip))
    });
    drop(helper);
    let _ = std::fs::remove_file(&leases);
}
