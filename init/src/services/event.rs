//! The supervisor's structured events, built on `crate::events::Event` so that the one
//! encoder and the one writer (report.rs) handle them like every other boot event.
//!
//! Owns the names and fields of the `service_*` and `log*` events; writes nothing.

use std::time::Duration;

use crate::events::{Event, Value};

/// How a process ended, decoded from a wait(2) status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// Decodes a raw wait status (as filled in by waitpid(2)).
    pub fn from_wait_status(status: libc::c_int) -> Self {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// Anything but exit code 0.
    pub fn failed(self) -> bool {
        self != Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

fn event(name: &'static str, service: &str) -> Event {
    Event {
        name,
        fields: vec![("service", Value::Str(service.to_string()))],
    }
}

fn uint(n: i64) -> Value {
    Value::Uint(u64::try_from(n).unwrap_or(0))
}

/// `service_starting` {service, pid}.
pub fn starting(service: &str, pid: i32) -> Event {
    let mut e = event("service_starting", service);
    e.fields.push(("pid", uint(pid.into())));
    e
}

/// `service_ready` {service, seconds}: seconds from spawn to ready.
pub fn ready(service: &str, after: Duration) -> Event {
    let mut e = event("service_ready", service);
    e.fields.push(("seconds", Value::Seconds(after)));
    e
}

/// `service_exited` {service, pid, code | signal}.
pub fn exited(service: &str, pid: i32, exit: Exit) -> Event {
    let mut e = event("service_exited", service);
    e.fields.push(("pid", uint(pid.into())));
    e.fields.push(match exit {
        Exit::Code(c) => ("code", uint(c.into())),
        Exit::Signal(s) => ("signal", uint(s.into())),
    });
    e
}

/// `service_restart` {service, in_seconds}.
pub fn restart(service: &str, delay: Duration) -> Event {
    let mut e = event("service_restart", service);
    e.fields.push(("in_seconds", Value::Seconds(delay)));
    e
}

/// `service_failed` {service, reason}: needs attention (spawn error, crash loop, exited
/// for good, dependency failed, would not die); `service_restart` follows if retried.
pub fn failed(service: &str, reason: &str) -> Event {
    let mut e = event("service_failed", service);
    e.fields.push(("reason", Value::Str(reason.to_string())));
    e
}

/// `service_stopped` {service}: stopped for shutdown.
pub fn stopped(service: &str) -> Event {
    event("service_stopped", service)
}

/// `log` {service, line}: one output line (only forwarded when verbose).
pub fn log_line(service: &str, line: &str) -> Event {
    let mut e = event("log", service);
    e.fields.push(("line", Value::Str(line.to_string())));
    e
}

/// `log_dropped` {service, lines}: lines over the forwarding rate limit.
pub fn log_dropped(service: &str, lines: u64) -> Event {
    let mut e = event("log_dropped", service);
    e.fields.push(("lines", Value::Uint(lines)));
    e
}

/// `log_error` {service, error}: the log file could not be written (output is still
/// drained so that the service never blocks on a full pipe).
pub fn log_error(service: &str, error: &str) -> Event {
    let mut e = event("log_error", service);
    e.fields.push(("error", Value::Str(error.to_string())));
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::encode;

    #[test]
    fn decodes_wait_status() {
        // Linux layout: exit code in bits 8..16, terminating signal in bits 0..7.
        let cases = [
            (0, Exit::Code(0), false),
            (3 << 8, Exit::Code(3), true),
            (libc::SIGKILL, Exit::Signal(9), true),
            (libc::SIGTERM | 0x80, Exit::Signal(15), true),
        ];
        for (raw, want, failed) in cases {
            assert_eq!(Exit::from_wait_status(raw), want, "{raw:#x}");
            assert_eq!(want.failed(), failed);
        }
    }

    #[test]
    fn encodes_service_events() {
        let ms = Duration::from_millis;
        let cases = [
            (
                starting("containerd", 42),
                r#"{"ts":1.000,"event":"service_starting","service":"containerd","pid":42}"#,
            ),
            (
                ready("containerd", ms(1_250)),
                r#"{"ts":1.000,"event":"service_ready","service":"containerd","seconds":1.250}"#,
            ),
            (
                exited("a", 7, Exit::Code(3)),
                r#"{"ts":1.000,"event":"service_exited","service":"a","pid":7,"code":3}"#,
            ),
            (
                exited("a", 7, Exit::Signal(9)),
                r#"{"ts":1.000,"event":"service_exited","service":"a","pid":7,"signal":9}"#,
            ),
            (
                restart("a", ms(2_000)),
                r#"{"ts":1.000,"event":"service_restart","service":"a","in_seconds":2.000}"#,
            ),
            (
                failed("a", "x"),
                r#"{"ts":1.000,"event":"service_failed","service":"a","reason":"x"}"#,
            ),
            (
                stopped("a"),
                r#"{"ts":1.000,"event":"service_stopped","service":"a"}"#,
            ),
        ];
        for (event, want) in cases {
            assert_eq!(encode(&event, ms(1_000)), want);
        }
    }
}
