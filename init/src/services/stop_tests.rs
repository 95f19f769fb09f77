//! Supervisor scenarios on fakes: shutdown order, stop signals and timeouts, no restarts
//! while stopping; foreign pids; the tick timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::event::Exit;
use super::harness::{run, svc, Op, Op::*, World, A_UP};
use super::spec::RestartPolicy::Always;
use super::spec::ServiceSpec;

#[test]
fn stops_in_reverse_order_with_timeouts() {
    type Case = (
        &'static str,
        Vec<ServiceSpec>,
        Vec<(Op, &'static [&'static str])>,
    );
    let mut c = svc("c", &["b"], false, Always);
    c.stop_signal = libc::SIGINT;
    let chain = vec![
        svc("a", &[], false, Always),
        svc("b", &["a"], false, Always),
        c,
    ];
    let mut slow = svc("a", &[], false, Always);
    slow.stop_timeout = Duration::from_secs(5);
    let chain_up: &[&str] = &[
        "spawn a",
        "starting a",
        "ready a 0s",
        "spawn b",
        "starting b",
        "ready b 0s",
        "spawn c",
        "starting c",
        "ready c 0s",
    ];
    let cases: Vec<Case> = vec![
        (
            "reverse dependency order, per-service stop signal",
            chain,
            vec![
                (Start, chain_up),
                (Stop, &["kill c INT"]),
                (Stop, &[]),
                (
                    Exit("c", Exit::Code(0)),
                    &["exited c code=0", "stopped c", "kill b TERM"],
                ),
                (
                    Exit("b", Exit::Signal(15)),
                    &["exited b signal=15", "stopped b", "kill a TERM"],
                ),
                (Exit("a", Exit::Code(0)), &["exited a code=0", "stopped a"]),
            ],
        ),
        (
            "SIGKILL after the stop timeout",
            vec![slow.clone()],
            vec![
                (Start, &A_UP),
                (Stop, &["kill a TERM"]),
                (Advance(4999), &[]),
                (
                    Advance(1),
                    &[
                        "failed a: did not stop within 5 s, sending SIGKILL",
                        "kill a KILL",
                    ],
                ),
                (
                    Exit("a", Exit::Signal(9)),
                    &["exited a signal=9", "stopped a"],
                ),
            ],
        ),
        (
            "a process that survives SIGKILL is given up",
            vec![slow],
            vec![
                (Start, &A_UP),
                (Stop, &["kill a TERM"]),
                (
                    Advance(5000),
                    &[
                        "failed a: did not stop within 5 s, sending SIGKILL",
                        "kill a KILL",
                    ],
                ),
                (
                    Advance(2000),
                    &["failed a: still running after SIGKILL, given up"],
                ),
            ],
        ),
        (
            "a service exiting during shutdown is not restarted",
            vec![
                svc("a", &[], false, Always),
                svc("b", &["a"], false, Always),
            ],
            vec![
                (
                    Start,
                    &[
                        "spawn a",
                        "starting a",
                        "ready a 0s",
                        "spawn b",
                        "starting b",
                        "ready b 0s",
                    ],
                ),
                (Stop, &["kill b TERM"]),
                (Exit("a", Exit::Code(1)), &["exited a code=1", "stopped a"]),
                (Exit("b", Exit::Code(0)), &["exited b code=0", "stopped b"]),
                (Advance(60000), &[]),
            ],
        ),
        (
            "a pending restart is cancelled; waiting services never start",
            vec![
                svc("a", &[], false, Always),
                svc("b", &[], true, Always),
                svc("c", &["b"], false, Always),
            ],
            vec![
                (
                    Start,
                    &[
                        "spawn a",
                        "spawn b",
                        "starting a",
                        "ready a 0s",
                        "starting b",
                    ],
                ),
                (
                    Exit("a", Exit::Code(1)),
                    &["exited a code=1", "restart a 1s"],
                ),
                (Stop, &["stopped a", "kill b TERM"]),
                (Up("b"), &[]),
                (Advance(5000), &[]),
                (Exit("b", Exit::Code(0)), &["exited b code=0", "stopped b"]),
            ],
        ),
    ];
    for (title, specs, steps) in cases {
        let world = run(title, specs, &steps);
        assert!(world.exec.all_stopped(), "{title}");
    }
}

#[test]
fn unknown_pids_are_not_ours() {
    let mut world = World::new(vec![svc("a", &[], false, Always)]);
    world.step(Start);
    assert!(!world.exec.on_exit(4242, Exit::Code(0), &mut |_| {}));
    assert!(!world.exec.all_stopped());
}

#[test]
fn timeout_follows_the_nearest_timer() {
    let ms = Duration::from_millis;
    let mut world = World::new(vec![
        svc("a", &[], false, Always),
        svc("b", &[], true, Always),
    ]);
    let cases: Vec<(Op, Option<Duration>)> = vec![
        (Start, Some(ms(100))),
        (Up("b"), Some(ms(100))),
        (Advance(100), None),
        (Exit("a", Exit::Code(1)), Some(ms(1000))),
        (Advance(400), Some(ms(600))),
        (Stop, Some(ms(10_000))),
    ];
    for (op, want) in cases {
        world.step(op);
        assert_eq!(world.exec.timeout(), want, "after {op:?}");
    }
}
