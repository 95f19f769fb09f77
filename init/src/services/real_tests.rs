//! The executor with the real spawner, prober and clock on /bin/sh (no root needed). The
//! test is its own reaper: it waits for the specific pids the supervisor started, as
//! stage 2's `waitpid(-1)` loop does for all children.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use super::event::Exit;
use super::exec::Executor;
use super::logs::{numbered, EventQueue, Rotation};
use super::machine::{Phase, Supervisor, Timing};
use super::process::{BootClock, ProcessSpawner, SysProber};
use super::spec::{RestartPolicy, ServiceSpec};
use crate::events::{Event, Value};
use crate::testutil::TempDir;

/// waitpid(pid, WNOHANG): the raw status once `pid` has exited.
#[allow(unsafe_code)]
fn try_wait(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (ret == pid).then_some(status)
}

/// Blocks PID 1's signals in this (test) thread, as stage 2 does.
#[allow(unsafe_code)]
fn block_signals() {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it; the old mask is not
    // requested. Only this test thread's mask changes.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in crate::supervise::SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn field<'a>(e: &'a Event, key: &str) -> Option<&'a Value> {
    e.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

type Real = Executor<ProcessSpawner, SysProber, BootClock>;

fn executor(spec: ServiceSpec, rotation: Rotation) -> Real {
    let timing = Timing {
        initial_backoff: Duration::from_millis(50),
        ..Timing::default()
    };
    let queue = EventQueue::default();
    let spawner = ProcessSpawner::new(queue.clone(), rotation, Some(50));
    let machine = Supervisor::new(vec![spec], timing).unwrap();
    Executor::new(machine, spawner, SysProber, BootClock)
        .with_events(queue, Some(Duration::from_millis(250)))
}

/// Reaps, ticks and collects events until `done` or 10 s.
fn drive(exec: &mut Real, events: &mut Vec<Event>, done: impl Fn(&[Event]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(events) {
        assert!(Instant::now() < deadline, "timed out; events: {events:?}");
        let pids: Vec<i32> = events
            .iter()
            .filter(|e| e.name == "service_starting")
            .filter_map(|e| match field(e, "pid") {
                Some(Value::Uint(p)) => i32::try_from(*p).ok(),
                _ => None,
            })
            .collect();
        for pid in pids {
            if let Some(status) = try_wait(pid) {
                exec.on_exit(pid, Exit::from_wait_status(status), &mut |e| {
                    events.push(e.clone())
                });
            }
        }
        exec.on_tick(&mut |e| events.push(e.clone()));
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn count(events: &[Event], name: &str) -> usize {
    events.iter().filter(|e| e.name == name).count()
}

fn wait_for_file(path: &Path, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = std::fs::read_to_string(path).unwrap_or_default();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn restarts_a_failing_shell_and_rotates_its_log() {
    let tmp = TempDir::new("real-restart");
    let log = tmp.path().join("log/t.log");
    let mut spec = ServiceSpec::new(
        "t",
        &["/bin/sh", "-c", "echo hi; echo err >&2; sleep 0.2; exit 3"],
    );
    spec.restart = RestartPolicy::OnFailure;
    spec.log = log.clone();
    // "hi\nerr\n" is 7 bytes: two runs fit in 16 bytes, the third rotates.
    let mut exec = executor(
        spec,
        Rotation {
            max_bytes: 16,
            keep: 2,
        },
    );
    let mut events = Vec::new();
    exec.start(&mut |e| events.push(e.clone()));
    drive(&mut exec, &mut events, |ev| {
        count(ev, "service_exited") == 3
    });
    exec.stop_all(&mut |e| events.push(e.clone()));
    assert!(exec.all_stopped());
    assert_eq!(exec.supervisor().phase("t"), Some(Phase::Stopped));

    let exits: Vec<_> = events
        .iter()
        .filter(|e| e.name == "service_exited")
        .collect();
    assert!(
        exits
            .iter()
            .all(|e| field(e, "code") == Some(&Value::Uint(3))),
        "{exits:?}"
    );
    let delays: Vec<_> = events
        .iter()
        .filter(|e| e.name == "service_restart")
        .filter_map(|e| field(e, "in_seconds").cloned())
        .collect();
    let ms = |n| Value::Seconds(Duration::from_millis(n));
    assert_eq!(delays, [ms(50), ms(100), ms(200)]);
    assert_eq!(count(&events, "service_starting"), 3);
    assert_eq!(count(&events, "service_stopped"), 1);

    assert_eq!(
        wait_for_file(&numbered(&log, 1), "hi\nerr\nhi\nerr\n"),
        "hi\nerr\nhi\nerr\n"
    );
    assert_eq!(wait_for_file(&log, "hi\nerr\n"), "hi\nerr\n");
    // Forwarded lines arrive as `log` events on a later drain.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&events, "log") < 6 && Instant::now() < deadline {
        exec.on_tick(&mut |e| events.push(e.clone()));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(count(&events, "log"), 6, "{events:?}");
}

#[test]
fn children_get_an_empty_signal_mask_a_session_and_a_clean_env() {
    block_signals();
    let tmp = TempDir::new("real-clean");
    let log = tmp.path().join("c.log");
    // Builtins only for the mask: dash blocks signals while it waits for a child.
    let script = r#"while read -r k v; do [ "$k" = SigBlk: ] && echo "$k $v"; done < /proc/$$/status; cut -d" " -f1,6 /proc/$$/stat; echo "$PATH|$FOO|$HOME""#;
    let mut spec = ServiceSpec::new("c", &["/bin/sh", "-c", script]);
    spec.restart = RestartPolicy::Never;
    spec.env = vec![("FOO".into(), "bar".into())];
    spec.log = log.clone();
    let mut exec = executor(spec, Rotation::default());
    let mut events = Vec::new();
    exec.start(&mut |e| events.push(e.clone()));
    drive(&mut exec, &mut events, |ev| {
        count(ev, "service_exited") == 1
    });
    let Some(Value::Uint(pid)) = field(&events[0], "pid").cloned() else {
        panic!("{events:?}");
    };
    let want = format!(
        "SigBlk: 0000000000000000\n{pid} {pid}\n{}|bar|\n",
        super::process::DEFAULT_PATH
    );
    assert_eq!(wait_for_file(&log, &want), want);
    assert_eq!(exec.supervisor().phase("c"), Some(Phase::Exited));
}

#[test]
fn a_missing_program_is_a_spawn_failure() {
    let tmp = TempDir::new("real-missing");
    let mut spec = ServiceSpec::new("m", &["/nonexistent/kiln-test"]);
    spec.restart = RestartPolicy::Never;
    spec.log = tmp.path().join("m.log");
    let mut exec = executor(spec, Rotation::default());
    let mut events = Vec::new();
    exec.start(&mut |e| events.push(e.clone()));
    assert_eq!(
        field(&events[0], "reason"),
        Some(&Value::Str(
            "spawn: spawn /nonexistent/kiln-test: No such file or directory (os error 2)".into()
        ))
    );
    assert_eq!(exec.supervisor().phase("m"), Some(Phase::Failed));
}
