//! `init cluster <step>`: the cluster steps PID 1 supervises, run as child processes of
//! the same binary. Each reads /run/kiln/cluster.json, reports progress as `@kiln-event`
//! lines on stdout (bridged to the event port) and plain lines for the service log, and
//! exits non-zero with one line on stderr when it fails (the supervisor retries).
//!
//! - `etcd-prepare`: certificates, then how etcd starts: existing data, restore from a
//!   snapshot, a new cluster (initial members) or a join (member-add); writes the argv.
//! - `etcd`: execs etcd with that argv (idles when this member was removed).
//! - `etcd-backup`: periodic snapshots with retention.
//! - `kubeadm`: PKI, /etc/hosts, kubeadm config, `kubeadm init|join` with backoff until
//!   the endpoint answers, then the baked manifests on the first control plane.
//! - `kubelet`: waits for kubeadm's kubelet config, then execs kubelet.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde_json::json;

use super::context::{write_private, Context, CONTEXT_PATH};
use super::specs::ETCD_ARGS;
use crate::chain::error_chain;
use crate::etcd;
use crate::events::child_line;

/// Set when this member left the cluster (`etcd` request `leave`); it then stays out.
pub const ETCD_REMOVED: &str = "/var/lib/kiln/etcd-removed";
pub const KUBEADM_DONE: &str = "/var/lib/kiln/kubeadm.done";
pub const KUBEADM_CONFIG: &str = "/var/lib/kiln/kubeadm.yaml";
pub const MANIFESTS: &str = "/usr/share/kiln/manifests";

type StepResult = Result<(), String>;

/// Runs one step; the exit code is what the supervisor sees.
pub fn main(args: &[String]) -> ExitCode {
    let step = args.first().map(String::as_str).unwrap_or("");
    let run = |f: fn(&Context) -> StepResult| -> StepResult {
        let ctx = Context::read(Path::new(CONTEXT_PATH)).map_err(|e| error_chain(&e))?;
        f(&ctx)
    };
    let result = match step {
        "etcd-prepare" => run(etcd_prepare),
        "etcd" => run(etcd_exec),
        "etcd-backup" => run(etcd_backup),
        "kubeadm" => run(kubeadm),
        "kubelet" => run(kubelet),
        other => Err(format!(
            "unknown step {other:?} (known: etcd-prepare, etcd, etcd-backup, kubeadm, kubelet)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            emit("cluster_error", json!({"step": step, "error": e}));
            let _ = writeln!(std::io::stderr(), "kiln-init cluster {step}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Reports an event to PID 1 (and the service log).
pub fn emit(name: &str, fields: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", child_line(name, fields));
    let _ = out.flush();
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Waits until `addr` is configured on this node (bind succeeds), up to `limit`.
fn wait_for_address(addr: IpAddr, limit: Duration) -> StepResult {
    let start = Instant::now();
    let mut told = false;
    loop {
        if TcpListener::bind(SocketAddr::new(addr, 0)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "address {addr} is not configured on this node after {} s",
                limit.as_secs()
            ));
        }
        if !told {
            emit(
                "etcd_waiting",
                json!({"step": "address", "endpoint": addr.to_string()}),
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn peer_url(addr: IpAddr) -> String {
    format!("https://{}", SocketAddr::new(addr, 2380))
}

fn client_endpoints(ctx: &Context) -> Vec<SocketAddr> {
    let mut eps: Vec<SocketAddr> = vec![SocketAddr::new(ctx.settings.address, 2379)];
    for m in &ctx.settings.control_planes {
        let ep = SocketAddr::new(m.address, 2379);
        if !eps.contains(&ep) {
            eps.push(ep);
        }
    }
    eps
}

fn etcd_prepare(ctx: &Context) -> StepResult {
    let root = Path::new("/");
    let paths = etcd::Paths::default();
    let args_path = Path::new(ETCD_ARGS);
    if Path::new(ETCD_REMOVED).exists() {
        write_private(args_path, b"[]").map_err(|e| format!("write {ETCD_ARGS}: {e}"))?;
        emit("etcd_prepared", json!({"state": "removed"}));
        return Ok(());
    }
    let s = &ctx.settings;
    wait_for_address(s.address, Duration::from_secs(300))?;
    let written = etcd::ensure_certs(root, s, &ctx.node_name).map_err(|e| error_chain(&e))?;
    emit("etcd_certs", json!({"files": written.len()}));
    let me = (ctx.node_name.clone(), peer_url(s.address));
    let (initial, state) = if etcd::data_exists(&paths) {
        (
            etcd::Initial::Existing { members: vec![me] },
            "existing-data",
        )
    } else if let Some(snapshot) = s
        .etcd
        .restore_from
        .as_ref()
        .map(|p| PathBuf::from(p.as_str()))
    {
        restore(ctx, &snapshot, &paths)?;
        (etcd::Initial::Restored, "restored")
    } else if s.initial_member().is_some() {
        let members = s
            .control_planes
            .iter()
            .map(|m| (m.name.to_string(), peer_url(m.address)))
            .collect();
        (etcd::Initial::New { members }, "new")
    } else {
        (join(ctx)?, "joined")
    };
    let argv = etcd::etcd_args(s, &ctx.node_name, &initial, &paths);
    let json = serde_json::to_vec(&argv).map_err(|e| e.to_string())?;
    write_private(args_path, &json).map_err(|e| format!("write {ETCD_ARGS}: {e}"))?;
    emit(
        "etcd_prepared",
        json!({"state": state, "name": ctx.node_name}),
    );
    Ok(())
}

fn restore(ctx: &Context, snapshot: &Path, paths: &etcd::Paths) -> StepResult {
    if !snapshot.is_file() {
        return Err(format!("restore_from {}: no such file", snapshot.display()));
    }
    let argv = etcd::restore_args(snapshot, &ctx.settings, &ctx.node_name, paths);
    let (program, args) = argv.split_first().ok_or("empty restore command")?;
    say(&format!("restoring etcd from {}", snapshot.display()));
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("run {program}: {e}"))?;
    if !status.success() {
        return Err(format!("{program} snapshot restore failed: {status}"));
    }
    emit(
        "etcd_restored",
        json!({"path": snapshot.display().to_string()}),
    );
    Ok(())
}

/// Adds this node to the running cluster (or finds it already added), retrying until a
/// member answers; returns the initial cluster etcd must start with.
fn join(ctx: &Context) -> Result<etcd::Initial, String> {
    let mine = peer_url(ctx.settings.address);
    let pki = etcd::Paths::default().pki_dir;
    let endpoints: Vec<SocketAddr> = ctx
        .settings
        .control_planes
        .iter()
        .map(|m| SocketAddr::new(m.address, 2379))
        .collect();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result =
            etcd::Client::new(&pki, endpoints.clone(), Duration::from_secs(5)).and_then(|client| {
                let members = client.member_list()?;
                if members.iter().any(|m| m.peer_urls.contains(&mine)) {
                    return Ok(members);
                }
                let (added, all) = client.member_add(std::slice::from_ref(&mine))?;
                emit(
                    "etcd_member_added",
                    json!({"id": added.id.to_string(), "members": all.len()}),
                );
                Ok(all)
            });
        match result {
            Ok(members) => {
                let members = members
                    .into_iter()
                    .filter_map(|m| {
                        let url = m.peer_urls.first()?.clone();
                        let name = if url == mine {
                            ctx.node_name.clone()
                        } else {
                            m.name
                        };
                        (!name.is_empty()).then_some((name, url))
                    })
                    .collect();
                return Ok(etcd::Initial::Existing { members });
            }
            Err(e) => {
                let wait = backoff(attempt);
                emit(
                    "etcd_waiting",
                    json!({"step": "member-add", "attempt": attempt, "error": error_chain(&e), "wait_s": wait.as_secs()}),
                );
                std::thread::sleep(wait);
            }
        }
    }
}

/// 2, 4, 8, 16, 30, 30, … seconds.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.min(5)).min(30))
}

fn etcd_exec(_ctx: &Context) -> StepResult {
    let bytes = std::fs::read(ETCD_ARGS).map_err(|e| format!("read {ETCD_ARGS}: {e}"))?;
    let argv: Vec<String> =
        serde_json::from_slice(&bytes).map_err(|e| format!("{ETCD_ARGS}: {e}"))?;
    let removed = Path::new(ETCD_REMOVED).exists();
    let Some((program, args)) = argv.split_first().filter(|_| !removed) else {
        // Removed from the cluster: keep its data out of the way and stay idle.
        let data = etcd::Paths::default().data_dir;
        if data.exists() {
            let mut aside = data.clone().into_os_string();
            aside.push(".removed");
            let _ = std::fs::rename(&data, aside);
        }
        say("this member was removed from the etcd cluster; etcd stays stopped");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    };
    let err = Command::new(program).args(args).exec();
    Err(format!("exec {program}: {err}"))
}

/// Takes one snapshot into the backup directory and prunes old ones.
pub fn snapshot_now(ctx: &Context) -> Result<etcd::SnapshotInfo, String> {
    let paths = etcd::Paths::default();
    let client = etcd::Client::new(
        &paths.pki_dir,
        client_endpoints(ctx),
        Duration::from_secs(30),
    )
    .map_err(|e| error_chain(&e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::fs::create_dir_all(&paths.backup_dir)
        .map_err(|e| format!("create {}: {e}", paths.backup_dir.display()))?;
    let dest = paths.backup_dir.join(etcd::snapshot_name(now));
    let info = client.snapshot(&dest).map_err(|e| error_chain(&e))?;
    etcd::prune(&paths.backup_dir, ctx.settings.etcd.snapshot_keep).map_err(|e| error_chain(&e))?;
    Ok(info)
}

fn etcd_backup(ctx: &Context) -> StepResult {
    let every = Duration::from_secs(ctx.settings.etcd.snapshot_interval_s.max(1));
    loop {
        std::thread::sleep(every);
        match snapshot_now(ctx) {
            Ok(info) => emit(
                "etcd_snapshot",
                json!({"path": info.path.display().to_string(), "bytes": info.bytes, "sha256": info.sha256_hex}),
            ),
            Err(e) => emit("etcd_error", json!({"step": "snapshot", "error": e})),
        }
    }
}

/// Removes this node from the etcd cluster and marks it so it stays out.
pub fn leave(ctx: &Context) -> Result<u64, String> {
    let paths = etcd::Paths::default();
    let client = etcd::Client::new(
        &paths.pki_dir,
        client_endpoints(ctx),
        Duration::from_secs(10),
    )
    .map_err(|e| error_chain(&e))?;
    let mine = peer_url(ctx.settings.address);
    let members = client.member_list().map_err(|e| error_chain(&e))?;
    let me = members
        .iter()
        .find(|m| m.peer_urls.contains(&mine))
        .ok_or_else(|| format!("{mine} is not a member"))?;
    // Marked first: once removed, etcd exits and its restart must find the mark.
    write_private(Path::new(ETCD_REMOVED), b"")
        .map_err(|e| format!("write {ETCD_REMOVED}: {e}"))?;
    if let Err(e) = client.member_remove(me.id) {
        let _ = std::fs::remove_file(ETCD_REMOVED);
        return Err(error_chain(&e));
    }
    Ok(me.id)
}

fn kubeadm(ctx: &Context) -> StepResult {
    super::kubeadm::run(ctx)
}

fn kubelet(_ctx: &Context) -> StepResult {
    let root = Path::new("/");
    let mut told = false;
    let argv = loop {
        match crate::kube::kubelet_args(root) {
            Ok(argv) => break argv,
            Err(crate::kube::KubeError::NotConfigured) => {
                if !told {
                    emit("kubelet_waiting", json!({"step": "config"}));
                    told = true;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(error_chain(&e)),
        }
    };
    let (program, args) = argv.split_first().ok_or("empty kubelet command")?;
    let err = Command::new(program).args(args).exec();
    Err(format!("exec {program}: {err}"))
}
