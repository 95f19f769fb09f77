//! Requests the host sends on the event port (one JSON object per line) and their
//! answers as events:
//! - `{"request":"log","service":"containerd","lines":100}` → the last lines of
//!   /var/log/kiln/<service>.log as `log` events, then `log_end`;
//! - `{"request":"exec","id":"x","command":"ipvsadm -Ln"}` → `exec_result {id, code,
//!   output}` from `/bin/sh -c`, only when the config sets `kiln: debug_exec: true`;
//! - `{"request":"lb","settings":{…}}` → reloads the load balancer (`lb_reloaded`);
//! - `{"request":"etcd","action":"snapshot"|"leave","id":"x"}` on control planes →
//!   `etcd_snapshot {id, path, bytes, sha256}` / `etcd_left {id, member}` / `etcd_error`.
//!
//! Owns request parsing and the answers; it never touches services (read-only), and only
//! names services the supervisor knows, so a request cannot name an arbitrary path.

use std::path::Path;

use serde::Deserialize;

use crate::events::{self, Event};

/// Lines sent when a request does not say; and the most one request can get.
pub const DEFAULT_LINES: usize = 100;
pub const MAX_LINES: usize = 2000;
/// Requests handled per wake-up; the rest of a burst is refused (the host is trusted,
/// but PID 1 must not be kept busy by a flood).
pub const BURST: usize = 8;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Log { service: String, lines: usize },
    Exec { id: String, command: String },
    Lb(Box<crate::lb::settings::LbSettings>),
    Etcd { id: String, action: EtcdAction },
}

/// What an `etcd` request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdAction {
    /// A snapshot into /var/lib/kiln/etcd-backup now → `etcd_snapshot`.
    Snapshot,
    /// Remove this member from the cluster (member-remove) → `etcd_left`.
    Leave,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    request: String,
    service: Option<String>,
    lines: Option<usize>,
    id: Option<String>,
    command: Option<String>,
    settings: Option<crate::lb::settings::LbSettings>,
    action: Option<String>,
}

/// What answering a request may use.
pub struct Context<'a> {
    /// Services the supervisor knows.
    pub services: &'a [&'a str],
    pub log_dir: &'a Path,
    /// `kiln: debug_exec` from the config.
    pub exec_enabled: bool,
    /// Where exec results arrive later (from their threads).
    pub background: &'a crate::services::logs::EventQueue,
    pub lb: Option<&'a crate::lb::run::Handle>,
    /// The node's cluster context (for `etcd` requests).
    pub cluster: Option<&'a crate::cluster::context::Context>,
    /// Where exec output is collected (`/run/kiln`).
    pub scratch: &'a Path,
}

/// Parses one request line; the error is the one-line reason sent back.
pub fn parse(line: &str) -> Result<Request, String> {
    let wire: Wire = serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))?;
    match wire.request.as_str() {
        "log" => {
            let service = wire.service.ok_or("log request without \"service\"")?;
            let lines = wire.lines.unwrap_or(DEFAULT_LINES).min(MAX_LINES);
            Ok(Request::Log { service, lines })
        }
        "exec" => {
            let command = wire.command.ok_or("exec request without \"command\"")?;
            Ok(Request::Exec {
                id: wire.id.unwrap_or_default(),
                command,
            })
        }
        "lb" => {
            let settings = wire.settings.ok_or("lb request without \"settings\"")?;
            Ok(Request::Lb(Box::new(settings)))
        }
        "etcd" => {
            let action = match wire.action.as_deref() {
                Some("snapshot") => EtcdAction::Snapshot,
                Some("leave") => EtcdAction::Leave,
                Some(other) => {
                    return Err(format!(
                        "unknown etcd action {other:?} (known: snapshot, leave)"
                    ))
                }
                None => return Err("etcd request without \"action\"".into()),
            };
            Ok(Request::Etcd {
                id: wire.id.unwrap_or_default(),
                action,
            })
        }
        other => Err(format!(
            "unknown request {other:?} (known: log, exec, lb, etcd)"
        )),
    }
}

/// Answers one request line; exec results come later through `ctx.background`.
pub fn handle(line: &str, ctx: &Context) -> Vec<Event> {
    match parse(line) {
        Ok(Request::Exec { id, command }) if ctx.exec_enabled => {
            spawn_exec(id, command, ctx.scratch, ctx.background.clone());
            Vec::new()
        }
        Ok(Request::Exec { .. }) => vec![events::request_error(
            "exec is disabled (set kiln: debug_exec: true in the node config)",
        )],
        Ok(Request::Lb(settings)) => match ctx.lb {
            Some(lb) => {
                lb.reload(*settings);
                Vec::new()
            }
            None => vec![events::request_error("no load balancer is running")],
        },
        Ok(Request::Etcd { id, action }) => match ctx.cluster {
            Some(c) if c.is_control_plane() => {
                spawn_etcd(id, action, c.clone(), ctx.background.clone());
                Vec::new()
            }
            _ => vec![events::request_error("this node runs no etcd")],
        },
        Ok(Request::Log { service, lines }) => log_tail(&service, lines, ctx.services, ctx.log_dir),
        Err(reason) => vec![events::request_error(&reason)],
    }
}

/// Runs `/bin/sh -c command` on a thread of its own; the result is queued as
/// `exec_result {id, code, output}` (a minute at most, then SIGKILL).
fn spawn_exec(
    id: String,
    command: String,
    scratch: &Path,
    queue: crate::services::logs::EventQueue,
) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = scratch.join(format!("exec-{n}.out"));
    let _ = std::thread::Builder::new()
        .name("exec".into())
        .spawn(move || {
            let mut cmd = std::process::Command::new("/bin/sh");
            cmd.arg("-c").arg(&command);
            let limit = std::time::Duration::from_secs(60);
            let (code, output) = match crate::children::run(&mut cmd, &scratch, limit) {
                Ok(out) => (i64::from(out.code), out.output),
                Err(e) => (-1, format!("spawn /bin/sh: {e}")),
            };
            queue.push(Event {
                name: "exec_result",
                fields: vec![
                    ("id", events::Value::Str(id)),
                    ("code", events::Value::Json(code.into())),
                    ("output", events::Value::Str(output)),
                ],
            });
        });
}

/// Runs an etcd request on a thread of its own; the answer is queued as `etcd_snapshot
/// {id, path, bytes, sha256}`, `etcd_left {id, member}` or `etcd_error {id, error}`.
fn spawn_etcd(
    id: String,
    action: EtcdAction,
    cluster: crate::cluster::context::Context,
    queue: crate::services::logs::EventQueue,
) {
    use crate::cluster::steps;
    use events::Value;
    let _ = std::thread::Builder::new()
        .name("etcd-request".into())
        .spawn(move || {
            let id = ("id", Value::Str(id));
            let event = match action {
                EtcdAction::Snapshot => steps::snapshot_now(&cluster).map(|info| Event {
                    name: "etcd_snapshot",
                    fields: vec![
                        id.clone(),
                        ("path", Value::Str(info.path.display().to_string())),
                        ("bytes", Value::Uint(info.bytes)),
                        ("sha256", Value::Str(info.sha256_hex)),
                    ],
                }),
                EtcdAction::Leave => steps::leave(&cluster).map(|member| Event {
                    name: "etcd_left",
                    fields: vec![id.clone(), ("member", Value::Str(member.to_string()))],
                }),
            };
            queue.push(event.unwrap_or_else(|e| Event {
                name: "etcd_error",
                fields: vec![id, ("error", Value::Str(e))],
            }));
        });
}

/// The last `lines` of a service's log as `log` events, then `log_end`. `services` are
/// the names the supervisor knows (no other name becomes a path); logs are in `log_dir`.
fn log_tail(service: &str, lines: usize, services: &[&str], log_dir: &Path) -> Vec<Event> {
    if !services.contains(&service) {
        let known = services.join(", ");
        let reason = format!("no service {service:?} (known: {known})");
        return vec![events::request_error(&reason)];
    }
    let path = log_dir.join(format!("{service}.log"));
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            let reason = format!("read {}: {e}", path.display());
            return vec![events::request_error(&reason)];
        }
    };
    let all: Vec<&str> = text.lines().collect();
    let tail = all
        .get(all.len().saturating_sub(lines)..)
        .unwrap_or_default();
    let mut out: Vec<Event> = tail
        .iter()
        .map(|l| crate::services::event::log_line(service, l))
        .collect();
    out.push(events::log_end(service, tail.len()));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::events::Value;
    use crate::testutil::TempDir;

    /// `handle` with only logs to read (no exec, no load balancer).
    fn answer(line: &str, services: &[&str], log_dir: &Path) -> Vec<Event> {
        let queue = crate::services::logs::EventQueue::default();
        let ctx = Context {
            services,
            log_dir,
            exec_enabled: false,
            background: &queue,
            lb: None,
            cluster: None,
            scratch: log_dir,
        };
        handle(line, &ctx)
    }

    fn field<'a>(e: &'a Event, key: &str) -> &'a Value {
        &e.fields.iter().find(|(k, _)| *k == key).unwrap().1
    }

    #[test]
    fn parses_requests() {
        let cases: &[(&str, Result<Request, &str>)] = &[
            (
                r#"{"request":"log","service":"containerd"}"#,
                Ok(Request::Log {
                    service: "containerd".into(),
                    lines: DEFAULT_LINES,
                }),
            ),
            (
                r#"{"request":"log","service":"x","lines":999999}"#,
                Ok(Request::Log {
                    service: "x".into(),
                    lines: MAX_LINES,
                }),
            ),
            (r#"{"request":"log"}"#, Err("without \"service\"")),
            (r#"{"request":"reboot"}"#, Err("unknown request \"reboot\"")),
            (
                r#"{"request":"exec","id":"a","command":"true"}"#,
                Ok(Request::Exec {
                    id: "a".into(),
                    command: "true".into(),
                }),
            ),
            (r#"{"request":"exec"}"#, Err("without \"command\"")),
            (r#"{"request":"lb"}"#, Err("without \"settings\"")),
            (r#"{"request":"etcd"}"#, Err("without \"action\"")),
            (
                r#"{"request":"etcd","action":"explode"}"#,
                Err("unknown etcd action"),
            ),
            (r#"{"request":"log","svc":"x"}"#, Err("unknown field `svc`")),
            ("not json", Err("bad request")),
        ];
        for (line, want) in cases {
            match (parse(line), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{line}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{line}: {got}"),
                (got, want) => panic!("{line}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn answers_with_the_log_tail() {
        let tmp = TempDir::new("control");
        tmp.write("containerd.log", "one\ntwo\nthree\n");
        let ev = answer(
            r#"{"request":"log","service":"containerd","lines":2}"#,
            &["containerd", "image-import"],
            tmp.path(),
        );
        let names: Vec<&str> = ev.iter().map(|e| e.name).collect();
        assert_eq!(names, ["log", "log", "log_end"]);
        assert_eq!(field(&ev[0], "line"), &Value::Str("two".into()));
        assert_eq!(field(&ev[1], "line"), &Value::Str("three".into()));
        assert_eq!(field(&ev[2], "lines"), &Value::Uint(2));
        // A known service that has not logged yet: an empty stream.
        let ev = answer(
            r#"{"request":"log","service":"image-import"}"#,
            &["containerd", "image-import"],
            tmp.path(),
        );
        assert_eq!(ev.len(), 1);
        assert_eq!(field(&ev[0], "lines"), &Value::Uint(0));
    }

    #[test]
    fn exec_runs_only_when_enabled() {
        let tmp = TempDir::new("control-exec");
        let queue = crate::services::logs::EventQueue::default();
        let mut ctx = Context {
            services: &[],
            log_dir: tmp.path(),
            exec_enabled: false,
            background: &queue,
            lb: None,
            cluster: None,
            scratch: tmp.path(),
        };
        let line = r#"{"request":"exec","id":"t1","command":"echo hi; exit 4"}"#;
        let ev = handle(line, &ctx);
        assert_eq!(ev[0].name, "request_error");
        ctx.exec_enabled = true;
        assert!(handle(line, &ctx).is_empty());
        let mut got = Vec::new();
        for _ in 0..100 {
            queue.drain(&mut |e| got.push(e.clone()));
            if !got.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].name, "exec_result");
        assert_eq!(field(&got[0], "id"), &Value::Str("t1".into()));
        assert_eq!(field(&got[0], "code"), &Value::Json(4.into()));
        assert_eq!(field(&got[0], "output"), &Value::Str("hi\n".into()));
        let ev = handle(r#"{"request":"lb","settings":{}}"#, &ctx);
        assert_eq!(ev[0].name, "request_error");
    }

    #[test]
    fn refuses_unknown_services_and_paths() {
        let tmp = TempDir::new("control-bad");
        for service in ["../../etc/shadow", "etcd"] {
            let line = format!(r#"{{"request":"log","service":"{service}"}}"#);
            let ev = answer(&line, &["containerd"], tmp.path());
            assert_eq!(ev.len(), 1);
            assert_eq!(ev[0].name, "request_error");
            let Value::Str(reason) = field(&ev[0], "reason") else {
                panic!()
            };
            assert!(reason.contains("no service"), "{reason}");
        }
    }
}
