//! How kubeadm reaches things: names through `<root>/etc/hosts` then the system resolver,
//! and its waits for the kubelet's healthz and the API server's `/readyz`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::https::{self, Trust};
use super::Root;

/// Go's duration format for whole seconds (`1m0s`, `4m0s`, `30s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

/// kubeadm's kubelet-check: `http://{healthzBindAddress}:{healthzPort}/healthz` answers 200.
pub fn wait_kubelet(config: &Value, timeout: Duration) -> Result<()> {
    let port = config["healthzPort"].as_u64().unwrap_or(10248);
    let host = config["healthzBindAddress"].as_str().unwrap_or("127.0.0.1");
    let host = if host == "0.0.0.0" || host == "::" {
        "127.0.0.1"
    } else {
        host
    };
    let addr = SocketAddr::new(
        host.parse()
            .map_err(|_| anyhow!("healthzBindAddress {host:?} is not an IP"))?,
        port as u16,
    );
    println!("[kubelet-check] Waiting for a healthy kubelet at http://{addr}/healthz. This can take up to {}", go_duration(timeout));
    let start = Instant::now();
    poll(timeout, || {
        let r = https::get_plain(addr, "/healthz", Duration::from_secs(2))?;
        if r.status != 200 {
            bail!("status {}", r.status);
        }
        Ok(())
    })
    .map_err(|e| anyhow!("error execution phase wait-control-plane: failed while waiting for the kubelet to start: The HTTP call equal to 'curl -sSL http://{addr}/healthz' returned error: {e:#}"))?;
    println!(
        "[kubelet-check] The kubelet is healthy after {:.1}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// kubeadm's control-plane-check: the local API server answers `/readyz` with 200 over TLS
/// verified against the cluster CA.
pub fn wait_apiserver(ca_pem: &str, ip: IpAddr, port: u16, timeout: Duration) -> Result<()> {
    let url = format!("https://{}/readyz", SocketAddr::new(ip, port));
    println!("[control-plane-check] Waiting for healthy control plane components. This can take up to {}", go_duration(timeout));
    println!("[control-plane-check] Checking kube-apiserver at {url}");
    let config = https::client_config(&Trust::Ca(ca_pem.to_string()))?;
    poll(timeout, || {
        let r = https::get(SocketAddr::new(ip, port), &ip.to_string(), "/readyz", None, config.clone(), Duration::from_secs(2))?;
        if r.status != 200 {
            bail!("status {}", r.status);
        }
        Ok(())
    })
    .map_err(|e| anyhow!("error execution phase wait-control-plane: failed while waiting for the control plane to start: kube-apiserver check failed at {url}: {e:#}"))?;
    println!("[control-plane-check] kube-apiserver is healthy");
    Ok(())
}

fn poll(timeout: Duration, mut f: impl FnMut() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() >= timeout => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Resolves `host:port`: an IP as is, else `<root>/etc/hosts`, else the system resolver.
pub fn resolve(root: &Root, host: &str, port: u16) -> Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let hosts = root.read("/etc/hosts").unwrap_or_default();
    let from_file = hosts.lines().find_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        let ip: IpAddr = words.next()?.parse().ok()?;
        words.any(|w| w.eq_ignore_ascii_case(host)).then_some(ip)
    });
    if let Some(ip) = from_file {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| anyhow!("lookup {host}: no such host"))
}
