//! What a node's `events.jsonl` (init's JSON-line boot events) says about it: the boot
//! phase reached, or why it failed. Pure: takes the file's text, returns a [`Phase`].

use serde_json::Value;

/// Where a node's boot is, from its events.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// No event yet (firmware, kernel, or QEMU not started).
    Booting,
    Stage1,
    Stage2,
    Ready {
        boot_seconds: Option<f64>,
    },
    /// `fatal`: init is in maintenance mode.
    Fatal(String),
    /// `config_error` from first boot: the seed was refused.
    ConfigError(String),
    /// `shutdown`: init is powering off or rebooting.
    Shutdown(String),
}

impl Phase {
    /// Failed for good: `up` stops waiting.
    pub fn failed(&self) -> bool {
        matches!(self, Phase::Fatal(_) | Phase::ConfigError(_))
    }

    /// One word (and the reason) for tables and progress lines.
    pub fn describe(&self) -> String {
        match self {
            Phase::Booting => "booting".into(),
            Phase::Stage1 => "stage1".into(),
            Phase::Stage2 => "stage2".into(),
            Phase::Ready {
                boot_seconds: Some(s),
            } => format!("ready ({s:.1} s)"),
            Phase::Ready { boot_seconds: None } => "ready".into(),
            Phase::Fatal(why) => format!("fatal: {why}"),
            Phase::ConfigError(why) => format!("config_error: {why}"),
            Phase::Shutdown(action) => format!("shutdown ({action})"),
        }
    }
}

/// The phase after every complete line of `text` (a half-written last line is ignored,
/// as are lines that are not JSON objects with an `event`). Service events do not
/// change the phase; `stage1` after `ready` (a reboot) starts over.
pub fn phase(text: &str) -> Phase {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let mut phase = Phase::Booting;
    for line in complete.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        phase = match v["event"].as_str() {
            Some("stage1") => Phase::Stage1,
            Some("stage2") => Phase::Stage2,
            Some("ready") => Phase::Ready {
                boot_seconds: v["boot_seconds"].as_f64(),
            },
            Some("fatal") => Phase::Fatal(field("error")),
            Some("config_error") => {
                Phase::ConfigError(format!("{}: {}", field("source"), field("reason")))
            }
            Some("shutdown") => Phase::Shutdown(field("action")),
            _ => continue,
        };
    }
    phase
}

/// Whether the events show Kubernetes steps (init runs `kubeadm` only when the image
/// carries it).
pub fn runs_kubernetes(text: &str) -> bool {
    text.lines().any(|line| {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v["event"] == "service_starting" && v["service"] == "kubeadm")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        let s1 = r#"{"ts":1.0,"event":"stage1","kernel":"6.12","slot":"a"}"#;
        let s2 = r#"{"ts":2.0,"event":"stage2"}"#;
        let svc = r#"{"ts":2.5,"event":"service_ready","service":"etcd","seconds":0.5}"#;
        let ready = r#"{"ts":3.0,"event":"ready","boot_seconds":2.999}"#;
        let fatal = r#"{"ts":3.0,"event":"fatal","error":"mount root: no partition","stage":1}"#;
        let cfg = r#"{"ts":3.0,"event":"config_error","source":"nocloud","reason":"bad yaml"}"#;
        let down = r#"{"ts":9.0,"event":"shutdown","action":"poweroff"}"#;
        let cases: Vec<(String, Phase)> = vec![
            (String::new(), Phase::Booting),
            ("garbage\n".into(), Phase::Booting),
            (format!("{s1}\n"), Phase::Stage1),
            (format!("{s1}\n{s2}\n{svc}\n"), Phase::Stage2),
            (
                format!("{s1}\n{s2}\n{ready}\n{svc}\n"),
                Phase::Ready {
                    boot_seconds: Some(2.999),
                },
            ),
            (format!("{s1}\n{s2}\n{ready}"), Phase::Stage2),
            (
                format!("{s1}\n{fatal}\n"),
                Phase::Fatal("mount root: no partition".into()),
            ),
            (
                format!("{s1}\n{s2}\n{cfg}\n"),
                Phase::ConfigError("nocloud: bad yaml".into()),
            ),
            (
                format!("{s1}\n{s2}\n{ready}\n{down}\n"),
                Phase::Shutdown("poweroff".into()),
            ),
            (format!("{ready}\n{down}\n{s1}\n"), Phase::Stage1),
        ];
        for (text, want) in cases {
            assert_eq!(phase(&text), want, "{text}");
        }
    }

    #[test]
    fn failures_and_words() {
        assert!(Phase::Fatal("x".into()).failed());
        assert!(Phase::ConfigError("x".into()).failed());
        assert!(!Phase::Ready { boot_seconds: None }.failed());
        assert_eq!(
            Phase::Ready {
                boot_seconds: Some(84.25)
            }
            .describe(),
            "ready (84.2 s)"
        );
        assert_eq!(Phase::Fatal("boom".into()).describe(), "fatal: boom");
    }

    #[test]
    fn kubernetes_from_events() {
        let kube = r#"{"ts":5.0,"event":"service_starting","service":"kubeadm","pid":9}"#;
        let etcd = r#"{"ts":5.0,"event":"service_starting","service":"etcd","pid":9}"#;
        assert!(runs_kubernetes(&format!("{etcd}\n{kube}\n")));
        assert!(!runs_kubernetes(&format!("{etcd}\n")));
    }
}
