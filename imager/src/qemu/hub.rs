//! An unprivileged L2 segment for any number of VMs: each VM gets a QEMU `dgram` netdev
//! talking to its own UDP port of this hub on loopback, and the hub repeats every frame
//! to all other VMs (a dumb Ethernet hub: no learning, no root, no bridge, no TAP).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// A running hub; dropping it stops the threads.
#[derive(Debug)]
pub struct Hub {
    /// Per VM: (hub port, VM port).
    ports: Vec<(u16, u16)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn free_udp_port() -> Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").context("bind a UDP port")?;
    Ok(s.local_addr()?.port())
}

impl Hub {
    /// A hub with `n` ports.
    pub fn start(n: usize) -> Result<Hub> {
        let mut sockets = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..n {
            let s = UdpSocket::bind("127.0.0.1:0").context("bind a hub port")?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            let vm_port = free_udp_port()?;
            ports.push((s.local_addr()?.port(), vm_port));
            sockets.push(Arc::new(s));
        }
        let peers: Vec<SocketAddr> = ports
            .iter()
            .map(|&(_, vm)| SocketAddr::from(([127, 0, 0, 1], vm)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, socket) in sockets.iter().enumerate() {
            let (socket, all, peers) = (socket.clone(), sockets.clone(), peers.clone());
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    for (j, out) in all.iter().enumerate() {
                        if j != i {
                            // A VM that is not running yet just misses the frame.
                            let _ = out.send_to(&buf[..n], peers[j]);
                        }
                    }
                }
            }));
        }
        Ok(Hub {
            ports,
            stop,
            threads,
        })
    }

    /// QEMU arguments for VM `i`: a virtio NIC with `mac` on the hub.
    pub fn nic_args(&self, i: usize, mac: &str) -> Vec<String> {
        let (hub, vm) = self.ports[i];
        nic_args(&format!("hub{i}"), hub, vm, mac)
    }

    /// Per VM: (hub port, VM port), in port order.
    pub fn ports(&self) -> &[(u16, u16)] {
        &self.ports
    }

    /// Blocks until `stop` returns true (polled a few times a second), then stops the hub.
    pub fn run_until(self, stop: impl Fn() -> bool) {
        while !stop() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// QEMU arguments for a virtio NIC with `mac` whose netdev `id` sends to the hub's UDP
/// `hub_port` and receives on `vm_port` (both on 127.0.0.1).
pub fn nic_args(id: &str, hub_port: u16, vm_port: u16, mac: &str) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("dgram,id={id},local.type=inet,local.host=127.0.0.1,local.port={vm_port},remote.type=inet,remote.host=127.0.0.1,remote.port={hub_port}"),
        "-device".into(),
        format!("virtio-net-pci,netdev={id},mac={mac}"),
    ]
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn repeats_frames_to_every_other_port() {
        let hub = Hub::start(3).unwrap();
        let vms: Vec<UdpSocket> = hub
            .ports
            .iter()
            .map(|&(_, vm)| {
                let s = UdpSocket::bind(("127.0.0.1", vm)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        vms[0]
            .send_to(b"frame", ("127.0.0.1", hub.ports[0].0))
            .unwrap();
        let mut buf = [0u8; 16];
        for vm in &vms[1..] {
            let n = vm.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"frame");
        }
        vms[0]
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(vms[0].recv(&mut buf).is_err(), "no echo to the sender");
        assert!(hub.nic_args(1, "52:54:00:00:00:01")[1].contains("remote.port="));
    }
}
