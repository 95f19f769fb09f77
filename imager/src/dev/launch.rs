//! A dev node's QEMU command line, as a pure function of what `up` decided (ports, MACs,
//! paths), plus the few choices that are plain data: node addresses and MACs, and the
//! guest ports forwarded per role. Spawning the process is `up`'s job.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::qemu::hub::nic_args;
use crate::qemu::process::qemu_path;
use crate::qemu::{Accel, Arch, EVENT_PORT};

/// The dev clusters' L2 segment (each cluster has its own hub, so all may use it).
pub const SUBNET: [u8; 3] = [192, 168, 87];
pub const PREFIX: &str = "24";
/// Guest ports a control plane exposes on 127.0.0.1: the API server and etcd's clients.
pub const CONTROL_PLANE_PORTS: [u16; 2] = [6443, 2379];
/// The interface user networking appears as (the hub NIC comes first: eth0).
pub const USER_INTERFACE: &str = "eth1";
pub const MAX_CONTROL_PLANES: u32 = 9;
pub const MAX_WORKERS: u32 = 50;

/// Address of control plane `i` (1-based): .11, .12, …; of worker `i`: .101, .102, ….
pub fn address(control_plane: bool, i: u32) -> IpAddr {
    let base: u32 = if control_plane { 10 } else { 100 };
    let last = u8::try_from(base + i).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], last))
}

/// MACs of a node's two NICs: 52:54:00 (QEMU's prefix), 6b/6c per NIC, role, index.
pub fn macs(control_plane: bool, i: u32) -> [String; 2] {
    let role = if control_plane { 1 } else { 2 };
    let i = i & 0xff;
    [0x6b, 0x6c].map(|nic| format!("52:54:00:{nic:02x}:{role:02x}:{i:02x}"))
}

/// `n` distinct free TCP ports on 127.0.0.1 (all held open until every one is picked).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("pick a free port on 127.0.0.1"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Everything one node's command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLaunch {
    pub arch: Arch,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    pub firmware_code: PathBuf,
    pub vars: PathBuf,
    pub disk: PathBuf,
    pub seed: PathBuf,
    /// (hub port, VM port) on the cluster's hub.
    pub hub: (u16, u16),
    pub macs: [String; 2],
    /// The node's static address: forwards go there (the guest services listen on it).
    pub address: IpAddr,
    /// (host port on 127.0.0.1, guest port).
    pub forwards: Vec<(u16, u16)>,
    pub console_sock: PathBuf,
    pub console_log: PathBuf,
    pub events: PathBuf,
    pub qmp: PathBuf,
    pub pidfile: PathBuf,
}

/// The QEMU arguments (without the binary) for `n`.
pub fn qemu_args(n: &NodeLaunch) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-display", "none", "-M", n.arch.machine()]);
    push(&["-m", &n.memory_mib.to_string(), "-smp", &n.cpus.to_string()]);
    let code = format!(
        "if=pflash,format=raw,readonly=on,file={}",
        p(&n.firmware_code)
    );
    let vars = format!("if=pflash,format=raw,file={}", p(&n.vars));
    let disk = format!("if=virtio,format=qcow2,file={}", p(&n.disk));
    let seed = format!("if=virtio,format=raw,readonly=on,file={}", p(&n.seed));
    push(&[
        "-drive", &code, "-drive", &vars, "-drive", &disk, "-drive", &seed,
    ]);
    let console = format!(
        "socket,id=con,path={},server=on,wait=off,logfile={}",
        p(&n.console_sock),
        p(&n.console_log)
    );
    push(&["-chardev", &console, "-serial", "chardev:con"]);
    let events = format!("file,id=ev,path={}", p(&n.events));
    let port = format!("virtserialport,bus=vser0.0,chardev=ev,name={EVENT_PORT}");
    push(&["-device", "virtio-serial-pci,id=vser0", "-chardev", &events]);
    push(&["-device", &port]);
    let (hub, vm) = n.hub;
    args.extend(nic_args("hub", hub, vm, &n.macs[0]));
    let mut user = "user,id=user".to_string();
    for (host, guest) in &n.forwards {
        user.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{host}-{}:{guest}",
            n.address
        ));
    }
    let user_nic = format!("virtio-net-pci,netdev=user,mac={}", n.macs[1]);
    args.extend(["-netdev".into(), user, "-device".into(), user_nic]);
    let qmp = format!("unix:{},server=on,wait=off", p(&n.qmp));
    args.extend(["-qmp".into(), qmp, "-pidfile".into(), p(&n.pidfile)]);
    args.extend(n.accel.args(n.arch));
    args
}

fn p(path: &Path) -> String {
    qemu_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> NodeLaunch {
        NodeLaunch {
            arch: Arch::X86_64,
            accel: Accel::Tcg,
            memory_mib: 1024,
            cpus: 2,
            firmware_code: "/fw/CODE.fd".into(),
            vars: "/s/cp-1/efivars.fd".into(),
            disk: "/s/cp-1/disk.qcow2".into(),
            seed: "/s/cluster/nodes/cp-1/seed.img".into(),
            hub: (5000, 5001),
            macs: macs(true, 1),
            address: address(true, 1),
            forwards: vec![(40000, 6443), (40001, 2379)],
            console_sock: "/s/cp-1/console.sock".into(),
            console_log: "/s/cp-1/console.log".into(),
            events: "/s/cp-1/events.jsonl".into(),
            qmp: "/s/cp-1/qmp.sock".into(),
            pidfile: "/s/cp-1/qemu.pid".into(),
        }
    }

    /// Each option value the argv must carry, in order of appearance.
    #[test]
    fn control_plane_command_line() {
        let args = qemu_args(&launch());
        let want: &[(&str, &str)] = &[
            ("-M", "q35"),
            ("-m", "1024"),
            ("-smp", "2"),
            ("-drive", "if=pflash,format=raw,readonly=on,file=/fw/CODE.fd"),
            ("-drive", "if=pflash,format=raw,file=/s/cp-1/efivars.fd"),
            ("-drive", "if=virtio,format=qcow2,file=/s/cp-1/disk.qcow2"),
            ("-drive", "if=virtio,format=raw,readonly=on,file=/s/cluster/nodes/cp-1/seed.img"),
            ("-chardev", "socket,id=con,path=/s/cp-1/console.sock,server=on,wait=off,logfile=/s/cp-1/console.log"),
            ("-serial", "chardev:con"),
            ("-chardev", "file,id=ev,path=/s/cp-1/events.jsonl"),
            ("-device", "virtserialport,bus=vser0.0,chardev=ev,name=kiln.events"),
            ("-netdev", "dgram,id=hub,local.type=inet,local.host=127.0.0.1,local.port=5001,remote.type=inet,remote.host=127.0.0.1,remote.port=5000"),
            ("-device", "virtio-net-pci,netdev=hub,mac=52:54:00:6b:01:01"),
            ("-netdev", "user,id=user,hostfwd=tcp:127.0.0.1:40000-192.168.87.11:6443,hostfwd=tcp:127.0.0.1:40001-192.168.87.11:2379"),
            ("-device", "virtio-net-pci,netdev=user,mac=52:54:00:6c:01:01"),
            ("-qmp", "unix:/s/cp-1/qmp.sock,server=on,wait=off"),
            ("-pidfile", "/s/cp-1/qemu.pid"),
            ("-accel", "tcg,thread=single"),
            ("-cpu", "max"),
        ];
        let mut from = 0;
        for (flag, value) in want {
            let at = args[from..]
                .windows(2)
                .position(|w| w[0] == *flag && w[1] == *value)
                .unwrap_or_else(|| panic!("{flag} {value} missing or out of order in {args:?}"));
            from += at + 2;
        }
        assert_eq!(args[0], "-nodefaults");
    }

    #[test]
    fn worker_has_no_forwards_and_paths_are_escaped() {
        let mut n = launch();
        n.forwards.clear();
        n.macs = macs(false, 3);
        n.disk = "/s/a,b/disk.qcow2".into();
        n.accel = Accel::Kvm;
        let args = qemu_args(&n);
        assert!(args.iter().any(|a| a == "user,id=user"), "{args:?}");
        assert!(args
            .iter()
            .any(|a| a == "virtio-net-pci,netdev=hub,mac=52:54:00:6b:02:03"));
        assert!(args
            .iter()
            .any(|a| a == "if=virtio,format=qcow2,file=/s/a,,b/disk.qcow2"));
        assert!(args.windows(2).any(|w| w[0] == "-cpu" && w[1] == "host"));
    }

    #[test]
    fn addresses_and_macs() {
        let cases = [
            (true, 1, "192.168.87.11", "52:54:00:6b:01:01"),
            (true, 9, "192.168.87.19", "52:54:00:6b:01:09"),
            (false, 1, "192.168.87.101", "52:54:00:6b:02:01"),
            (false, 50, "192.168.87.150", "52:54:00:6b:02:32"),
        ];
        for (cp, i, addr, mac) in cases {
            assert_eq!(address(cp, i).to_string(), addr);
            let m = macs(cp, i);
            assert_eq!(m[0], mac);
            assert_eq!(m[1], mac.replace(":6b:", ":6c:"));
        }
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(8).unwrap_or_else(|e| panic!("{e}"));
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8, "{ports:?}");
        for port in ports {
            assert!(port > 0);
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "{port} free again"
            );
        }
    }
}
