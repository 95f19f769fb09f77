//! Structured boot events and their JSON-lines encoding (the contract read by qemu-tests
//! and `kiln dev`).
//!
//! Owns the event names, their fields and the encoder: one object per line, keys `ts`
//! (seconds since boot, CLOCK_BOOTTIME, 3 decimals) and `event` first, then the event's
//! fields in declaration order. It does not write anywhere (report.rs does).

use std::fmt::Write as _;
use std::time::Duration;

/// A field value: JSON string or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Uint(u64),
    /// Rendered as seconds with exactly three decimals, like `ts`.
    Seconds(Duration),
    /// Any JSON (arrays, objects), rendered by serde_json.
    Json(serde_json::Value),
}

/// One event: a name and ordered fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: &'static str,
    pub fields: Vec<(&'static str, Value)>,
}

impl Event {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            fields: Vec::new(),
        }
    }

    fn str(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((key, Value::Str(value.into())));
        self
    }

    fn uint(mut self, key: &'static str, value: u64) -> Self {
        self.fields.push((key, Value::Uint(value)));
        self
    }
}

/// `network_online {interfaces}` or `network_timeout {waiting}` from the network runner.
pub fn network(e: &crate::net::NetEvent) -> Event {
    let mut event = Event::new(e.name());
    if let serde_json::Value::Object(map) = e.fields() {
        for (k, v) in map {
            let key = match k.as_str() {
                "interfaces" => "interfaces",
                "waiting" => "waiting",
                _ => continue,
            };
            event.fields.push((key, Value::Json(v)));
        }
    }
    event
}

/// `stage1` {kernel, slot}: stage 1 started (slot is `a`, `b` or `none`).
pub fn stage1(kernel: &str, slot: &str) -> Event {
    Event::new("stage1").str("kernel", kernel).str("slot", slot)
}

/// `modules` {loaded, failed}: modules.load processed.
pub fn modules(loaded: usize, failed: usize) -> Event {
    Event::new("modules")
        .uint("loaded", loaded as u64)
        .uint("failed", failed as u64)
}

/// `module_failed` {module, error}: one module did not load (not fatal).
pub fn module_failed(module: &str, error: &str) -> Event {
    Event::new("module_failed")
        .str("module", module)
        .str("error", error)
}

/// `root_mounted` {device, partname, fstype}.
pub fn root_mounted(device: &str, partname: &str, fstype: &str) -> Event {
    Event::new("root_mounted")
        .str("device", device)
        .str("partname", partname)
        .str("fstype", fstype)
}

/// `root_fetched` {url, bytes, sha256, seconds}: the network root is in RAM and matches
/// its digest.
pub fn root_fetched(url: &str, bytes: u64, sha256: &str, took: Duration) -> Event {
    let mut e = Event::new("root_fetched")
        .str("url", url)
        .uint("bytes", bytes)
        .str("sha256", sha256);
    e.fields.push(("seconds", Value::Seconds(took)));
    e
}

/// `seed_fetched` {url, status}: stage 1 fetched a `ds=nocloud-net` seed (`found`,
/// `absent` or `error: …`).
pub fn seed_fetched(url: &str, status: &str) -> Event {
    Event::new("seed_fetched")
        .str("url", url)
        .str("status", status)
}

/// `stage2` {}: stage 2 started.
pub fn stage2() -> Event {
    Event::new("stage2")
}

/// `ready` {boot_seconds}: stage 2 is up and serving signals.
pub fn ready(boot: Duration, vmhwm_kib: Option<u64>) -> Event {
    let mut event = Event::new("ready");
    event.fields.push(("boot_seconds", Value::Seconds(boot)));
    if let Some(kib) = vmhwm_kib {
        event.fields.push(("init_vmhwm_kib", Value::Uint(kib)));
    }
    event
}

/// `VmHWM` (peak resident set, KiB) from a /proc/<pid>/status text.
pub fn vmhwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `shutdown` {action}: `poweroff` or `reboot`.
pub fn shutdown(action: &str) -> Event {
    Event::new("shutdown").str("action", action)
}

/// `fatal` {error, stage}: the whole error chain; stage is the number 1 or 2.
pub fn fatal(error: &str, stage: u8) -> Event {
    Event::new("fatal")
        .str("error", error)
        .uint("stage", u64::from(stage))
}

/// `log_end` {service, lines}: the end of a `log` stream.
pub fn log_end(service: &str, lines: usize) -> Event {
    Event::new("log_end")
        .str("service", service)
        .uint("lines", lines as u64)
}

/// `request_error` {reason}: a request on the event port was refused.
pub fn request_error(reason: &str) -> Event {
    Event::new("request_error").str("reason", reason)
}

/// Events that supervised cluster steps (`init cluster …`) may report by printing
/// `@kiln-event {"event":NAME,…}` lines; only services marked `events` are listened to.
pub const CHILD_EVENTS: &[&str] = &[
    "etcd_certs",
    "etcd_prepared",
    "etcd_member_added",
    "etcd_waiting",
    "etcd_snapshot",
    "etcd_restored",
    "etcd_error",
    "kubeadm_start",
    "kubeadm_retry",
    "kubeadm_done",
    "kubeadm_skipped",
    "api_ready",
    "manifests_applied",
    "kubelet_waiting",
    "cluster_error",
];
/// The fields those events may carry (others are dropped).
const CHILD_KEYS: &[&str] = &[
    "step",
    "state",
    "plan",
    "attempt",
    "code",
    "error",
    "wait_s",
    "members",
    "member",
    "id",
    "path",
    "bytes",
    "sha256",
    "endpoint",
    "manifests",
    "files",
    "argv",
    "seconds",
    "name",
];
/// The line prefix of a child event.
pub const CHILD_PREFIX: &str = "@kiln-event ";

/// A child's `@kiln-event {…}` line as an event with `service` first; None when the line
/// is not one, names an unknown event, or is not a JSON object.
pub fn from_child(service: &str, line: &str) -> Option<Event> {
    let json = line.trim_end().strip_prefix(CHILD_PREFIX)?;
    let serde_json::Value::Object(map) = serde_json::from_str(json).ok()? else {
        return None;
    };
    let name = map.get("event")?.as_str()?;
    let name = *CHILD_EVENTS.iter().find(|n| **n == name)?;
    let mut event = Event::new(name).str("service", service);
    for key in CHILD_KEYS {
        if let Some(v) = map.get(*key) {
            event.fields.push((key, Value::Json(v.clone())));
        }
    }
    Some(event)
}

/// The line a child prints to report `name` with `fields` (an object) to PID 1.
pub fn child_line(name: &str, fields: serde_json::Value) -> String {
    let mut map = serde_json::Map::new();
    map.insert("event".into(), name.into());
    if let serde_json::Value::Object(f) = fields {
        map.extend(f);
    }
    format!("{CHILD_PREFIX}{}", serde_json::Value::Object(map))
}

/// `network_released` {dhcp_clients}: the DHCP clients sent their DHCPRELEASE (if they
/// held a lease), removed their addresses and stopped: at shutdown, and in stage 1 after a
/// network boot's downloads (stage 2 brings the configured network up afresh).
pub fn network_released(dhcp_clients: usize) -> Event {
    Event::new("network_released").uint("dhcp_clients", dhcp_clients as u64)
}

/// Encodes `event` as one JSON object (no trailing newline).
pub fn encode(event: &Event, ts: Duration) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"ts\":");
    push_seconds(&mut out, ts);
    out.push_str(",\"event\":");
    push_string(&mut out, event.name);
    for (key, value) in &event.fields {
        out.push(',');
        push_string(&mut out, key);
        out.push(':');
        match value {
            Value::Str(s) => push_string(&mut out, s),
            Value::Uint(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Seconds(d) => push_seconds(&mut out, *d),
            Value::Json(v) => out.push_str(&v.to_string()),
        }
    }
    out.push('}');
    out
}

fn push_seconds(out: &mut String, d: Duration) {
    let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
}

/// JSON string with RFC 8259 escaping; non-ASCII is emitted as UTF-8.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {

    #[test]
    fn child_events_are_whitelisted() {
        let line = child_line(
            "etcd_prepared",
            serde_json::json!({"state": "new", "members": 3, "secret": "x"}),
        );
        let Some(e) = from_child("etcd-prepare", &line) else {
            panic!("not bridged: {line}")
        };
        assert_eq!(e.name, "etcd_prepared");
        assert_eq!(
            encode(&e, Duration::ZERO),
            r#"{"ts":0.000,"event":"etcd_prepared","service":"etcd-prepare","state":"new","members":3}"#
        );
        for bad in [
            "plain output",
            "@kiln-event not json",
            r#"@kiln-event {"event":"ready"}"#,
            r#"@kiln-event {"event":7}"#,
            r#"@kiln-event ["etcd_prepared"]"#,
        ] {
            assert!(from_child("s", bad).is_none(), "{bad}");
        }
    }
    use super::*;

    #[test]
    fn ready_carries_peak_rss() {
        let status = "Name:\tinit\nVmPeak:\t   9000 kB\nVmHWM:\t    4321 kB\n";
        assert_eq!(vmhwm_kib(status), Some(4321));
        assert_eq!(vmhwm_kib("Name:\tinit\n"), None);
        assert_eq!(
            encode(&ready(ms(8863), Some(4321)), ms(8866)),
            r#"{"ts":8.866,"event":"ready","boot_seconds":8.863,"init_vmhwm_kib":4321}"#
        );
    }

    #[test]
    fn network_events_carry_json_arrays() {
        use crate::net::{IfaceStatus, NetEvent};
        let online = NetEvent::Online {
            interfaces: vec![IfaceStatus {
                name: "eth0".into(),
                addresses: vec!["10.0.2.15/24".into()],
            }],
        };
        assert_eq!(
            encode(&network(&online), ms(6511)),
            r#"{"ts":6.511,"event":"network_online","interfaces":[{"addresses":["10.0.2.15/24"],"name":"eth0"}]}"#
        );
        let timeout = NetEvent::Timeout {
            waiting: vec!["eth1".into()],
        };
        assert_eq!(
            encode(&network(&timeout), ms(20000)),
            r#"{"ts":20.000,"event":"network_timeout","waiting":["eth1"]}"#
        );
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn encodes_each_contract_event() {
        let cases: Vec<(Event, Duration, &str)> = vec![
            (
                stage1("6.12.57+deb13-amd64", "a"),
                Duration::new(1, 234_567_891),
                r#"{"ts":1.234,"event":"stage1","kernel":"6.12.57+deb13-amd64","slot":"a"}"#,
            ),
            (
                modules(7, 1),
                ms(5),
                r#"{"ts":0.005,"event":"modules","loaded":7,"failed":1}"#,
            ),
            (
                module_failed(
                    "/lib/m/x.ko",
                    "finit_module: Exec format error (os error 8)",
                ),
                ms(10_000),
                r#"{"ts":10.000,"event":"module_failed","module":"/lib/m/x.ko","error":"finit_module: Exec format error (os error 8)"}"#,
            ),
            (
                root_mounted("/dev/vda2", "KILN-ROOT-A", "squashfs"),
                ms(2_050),
                r#"{"ts":2.050,"event":"root_mounted","device":"/dev/vda2","partname":"KILN-ROOT-A","fstype":"squashfs"}"#,
            ),
            (stage2(), ms(0), r#"{"ts":0.000,"event":"stage2"}"#),
            (
                ready(Duration::new(3, 999_999_999), None),
                ms(3_999),
                r#"{"ts":3.999,"event":"ready","boot_seconds":3.999}"#,
            ),
            (
                shutdown("poweroff"),
                ms(61_001),
                r#"{"ts":61.001,"event":"shutdown","action":"poweroff"}"#,
            ),
            (
                fatal("find root partition: no partition", 1),
                ms(30_100),
                r#"{"ts":30.100,"event":"fatal","error":"find root partition: no partition","stage":1}"#,
            ),
        ];
        for (event, ts, want) in cases {
            assert_eq!(encode(&event, ts), want);
        }
    }

    #[test]
    fn escapes_strings() {
        let cases = [
            ("plain", r#""plain""#),
            ("say \"hi\"", r#""say \"hi\"""#),
            ("C:\\path", r#""C:\\path""#),
            ("a\nb\rc\td", r#""a\nb\rc\td""#),
            ("\u{8}\u{c}", r#""\b\f""#),
            ("\u{0}\u{1f}\u{7f}", r#""\u0000\u001f\u007f""#),
            ("/ünïcode ✓", "\"/ünïcode ✓\""),
        ];
        for (raw, want) in cases {
            let mut out = String::new();
            push_string(&mut out, raw);
            assert_eq!(out, want, "{raw:?}");
        }
    }

    #[test]
    fn escaped_field_keeps_the_line_single() {
        let line = encode(&module_failed("x\ny", "e\"\\"), ms(1));
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            r#"{"ts":0.001,"event":"module_failed","module":"x\ny","error":"e\"\\"}"#
        );
    }
}
