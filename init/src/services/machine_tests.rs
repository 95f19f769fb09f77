//! Supervisor scenarios on fakes: start order and readiness gating, restart policies,
//! backoff and crash loops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::event::Exit;
use super::harness::{run, svc, Op, Op::*, A_UP};
use super::machine::Phase;
use super::spec::RestartPolicy::{Always, Never, OnFailure};
use super::spec::ServiceSpec;

#[test]
fn starts_in_dependency_order_gated_by_readiness() {
    let specs = vec![
        svc("c", &["b"], false, Always),
        svc("b", &["a"], true, Always),
        svc("a", &[], false, Always),
    ];
    let steps: &[(Op, &[&str])] = &[
        (
            Start,
            &[
                "spawn a",
                "starting a",
                "ready a 0s",
                "spawn b",
                "starting b",
            ],
        ),
        (Advance(100), &[]),
        (Up("b"), &[]),
        (
            Advance(200),
            &["ready b 0.3s", "spawn c", "starting c", "ready c 0s"],
        ),
        (Advance(1000), &[]),
    ];
    let world = run("order", specs, steps);
    assert_eq!(world.exec.supervisor().phase("c"), Some(Phase::Ready));
}

#[test]
fn restarts_with_doubling_backoff_crash_loop_and_reset() {
    let fail = Exit("a", Exit::Code(1));
    let steps: &[(Op, &[&str])] = &[
        (Start, &A_UP),
        (fail, &["exited a code=1", "restart a 1s"]),
        (Advance(999), &[]),
        (Advance(1), &A_UP),
        (fail, &["exited a code=1", "restart a 2s"]),
        (Advance(2000), &A_UP),
        (fail, &["exited a code=1", "restart a 4s"]),
        (Advance(4000), &A_UP),
        (fail, &["exited a code=1", "restart a 8s"]),
        (Advance(8000), &A_UP),
        (
            fail,
            &[
                "exited a code=1",
                "failed a: crash loop: 5 exits within 120 s",
                "restart a 16s",
            ],
        ),
        (Advance(16000), &A_UP),
        (fail, &["exited a code=1", "restart a 30s"]),
        (Advance(30000), &A_UP),
        (fail, &["exited a code=1", "restart a 30s"]),
        (Advance(30000), &A_UP),
        // Up for 60 s: the next exit starts over.
        (Advance(60000), &[]),
        (fail, &["exited a code=1", "restart a 1s"]),
    ];
    run("backoff", vec![svc("a", &[], false, Always)], steps);
}

#[test]
fn restart_policies_decide_on_the_exit() {
    type Case = (
        &'static str,
        Vec<ServiceSpec>,
        Vec<(Op, &'static [&'static str])>,
    );
    let cases: Vec<Case> = vec![
        (
            "on-failure restarts after a signal, not after code 0",
            vec![svc("a", &[], false, OnFailure)],
            vec![
                (Start, &A_UP),
                (
                    Exit("a", Exit::Signal(9)),
                    &["exited a signal=9", "restart a 1s"],
                ),
                (Advance(1000), &A_UP),
                (Exit("a", Exit::Code(0)), &["exited a code=0"]),
                (Advance(60000), &[]),
            ],
        ),
        (
            "always restarts after code 0",
            vec![svc("a", &[], false, Always)],
            vec![
                (Start, &A_UP),
                (
                    Exit("a", Exit::Code(0)),
                    &["exited a code=0", "restart a 1s"],
                ),
            ],
        ),
        (
            "never: a failure fails the dependents too",
            vec![svc("a", &[], true, Never), svc("b", &["a"], false, Always)],
            vec![
                (Start, &["spawn a", "starting a"]),
                (
                    Exit("a", Exit::Code(3)),
                    &[
                        "exited a code=3",
                        "failed a: exited with code 3, restart policy Never",
                        "failed b: dependency a failed",
                    ],
                ),
                (Advance(60000), &[]),
            ],
        ),
        (
            "never: a one-shot that succeeds lets its dependents start",
            vec![svc("a", &[], true, Never), svc("b", &["a"], false, Always)],
            vec![
                (Start, &["spawn a", "starting a"]),
                (
                    Exit("a", Exit::Code(0)),
                    &["exited a code=0", "spawn b", "starting b", "ready b 0s"],
                ),
            ],
        ),
        (
            "spawn errors are reported and retried with backoff",
            vec![svc("a", &[], false, Always)],
            vec![
                (FailSpawn("a"), &[]),
                (
                    Start,
                    &[
                        "failed a: spawn: spawn /bin/a: entity not found",
                        "restart a 1s",
                    ],
                ),
                (
                    Advance(1000),
                    &[
                        "failed a: spawn: spawn /bin/a: entity not found",
                        "restart a 2s",
                    ],
                ),
            ],
        ),
        (
            "spawn error with restart never",
            vec![svc("a", &[], false, Never), svc("b", &["a"], false, Always)],
            vec![
                (FailSpawn("a"), &[]),
                (
                    Start,
                    &[
                        "failed a: spawn: spawn /bin/a: entity not found",
                        "failed b: dependency a failed",
                    ],
                ),
            ],
        ),
    ];
    for (title, specs, steps) in cases {
        run(title, specs, &steps);
    }
}

#[test]
fn one_shot_after_a_ready_service_ends_exited() {
    use super::harness::World;
    let specs = vec![
        svc("a", &[], true, Always),
        svc("imp", &["a"], true, OnFailure),
    ];
    let mut w = World::new(specs);
    let mut log = Vec::new();
    for op in [
        Start,
        Up("a"),
        Advance(300),
        Up("imp"),
        Exit("imp", Exit::Code(0)),
        Advance(300),
    ] {
        log.extend(w.step(op));
    }
    let sup = w.exec.supervisor();
    assert_eq!(sup.phase("a"), Some(Phase::Ready), "{log:?}");
    assert_eq!(sup.phase("imp"), Some(Phase::Exited), "{log:?}");
}
