#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::lb::fake::FakeClock;
use std::io::ErrorKind;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn refused() -> ProbeResult {
    Err(ProbeError::Connect(ErrorKind::ConnectionRefused))
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 6443))
}

fn letter(state: State) -> char {
    match state {
        State::Unknown => '?',
        State::Up => 'u',
        State::Draining => 'd',
        State::Down => 'x',
    }
}

#[test]
fn machine_follows_rise_and_fall() {
    // (name, rise, fall, results: '+' healthy / '-' failed, state after each result)
    let table = [
        ("first success is up", 2, 2, "+", "u"),
        ("unknown drains then falls", 2, 2, "--", "dx"),
        ("one blip drains, rise brings back", 2, 2, "+-++", "uddu"),
        ("fall after two failures", 2, 2, "+--", "udx"),
        ("down needs rise successes", 2, 2, "+--+-++", "udxxxxu"),
        ("flapping stays drained", 2, 2, "+-+-+-+-", "uddddddd"),
        ("fall 1 goes straight down", 1, 1, "+-+", "uxu"),
        ("rise 3", 3, 2, "--+++", "dxxxu"),
        ("draining unknown rises", 2, 2, "-++", "ddu"),
        ("up ignores successes", 2, 2, "+++", "uuu"),
        ("down ignores failures", 2, 3, "-----", "ddxxx"),
    ];
    for (name, rise, fall, results, want) in table {
        let mut m = Machine::default();
        let got: String = results
            .chars()
            .map(|c| {
                let r = if c == '+' { Ok(()) } else { refused() };
                m.observe(&r, rise, fall);
                letter(m.state())
            })
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn machine_reports_reasons() {
    let err = ProbeError::Connect(ErrorKind::ConnectionRefused);
    let mut m = Machine::default();
    let steps: Vec<_> = [Ok(()), refused(), refused(), Ok(()), Ok(())]
        .iter()
        .map(|r| m.observe(r, 2, 2))
        .collect();
    assert_eq!(
        steps,
        vec![
            Some((State::Up, Reason::FirstSuccess)),
            Some((
                State::Draining,
                Reason::Failed {
                    failures: 1,
                    error: err.clone()
                }
            )),
            Some((
                State::Down,
                Reason::Fell {
                    failures: 2,
                    error: err
                }
            )),
            None,
            Some((State::Up, Reason::Rose { successes: 2 })),
        ]
    );
}

#[test]
fn validate_rejects_zero_fields() {
    let d = HealthConfig::default();
    let table = [
        (
            HealthConfig {
                interval: Duration::ZERO,
                ..d
            },
            Some("interval"),
        ),
        (
            HealthConfig {
                timeout: Duration::ZERO,
                ..d
            },
            Some("timeout"),
        ),
        (HealthConfig { rise: 0, ..d }, Some("rise")),
        (HealthConfig { fall: 0, ..d }, Some("fall")),
        (d, None),
    ];
    for (config, want) in table {
        assert_eq!(config.validate().err(), want.map(HealthError::Zero));
    }
}

fn table(clock: &FakeClock, backends: &[SocketAddr]) -> HealthTable {
    let mut t = HealthTable::new(HealthConfig::default(), Arc::new(clock.clone()));
    t.set_backends(backends.iter().copied());
    t
}

#[test]
fn probes_are_due_per_backend_and_never_stacked() {
    let clock = FakeClock::default();
    let mut t = table(&clock, &[addr(1), addr(2)]);
    let first = t.poll();
    assert_eq!(first.start.len(), 2);
    assert!(t.poll().start.is_empty(), "nothing new while in flight");
    clock.advance(300 * MS);
    t.record(first.start[0], &Ok(()));
    assert_eq!(
        t.wait_time(),
        Some(700 * MS),
        "one interval after the start"
    );
    clock.advance(700 * MS);
    let second = t.poll();
    assert_eq!(
        second.start.iter().map(|t| t.backend).collect::<Vec<_>>(),
        [addr(1)]
    );
}

#[test]
fn slow_result_makes_next_probe_due_at_once() {
    let clock = FakeClock::default();
    let mut t = HealthTable::new(
        HealthConfig {
            timeout: 3 * SEC,
            ..HealthConfig::default()
        },
        Arc::new(clock.clone()),
    );
    t.set_backends([addr(1)]);
    let ticket = t.poll().start[0];
    clock.advance(2500 * MS);
    t.record(ticket, &Ok(()));
    assert_eq!(t.wait_time(), Some(Duration::ZERO));
    assert_eq!(t.poll().start.len(), 1);
}

#[test]
fn stale_tickets_are_ignored() {
    let clock = FakeClock::default();
    let mut t = table(&clock, &[addr(1)]);
    let old = t.poll().start[0];
    t.set_backends([]);
    assert_eq!(t.record(old, &Ok(())), None, "removed backend");
    t.set_backends([addr(1)]);
    let new = t.poll().start[0];
    assert_eq!(
        t.record(old, &Ok(())),
        None,
        "ticket of the previous incarnation"
    );
    assert_eq!(t.state(&addr(1)), State::Unknown);
    assert!(t.record(new, &Ok(())).is_some());
    assert_eq!(t.state(&addr(1)), State::Up);
}

#[test]
fn set_backends_keeps_known_states() {
    let clock = FakeClock::default();
    let mut t = table(&clock, &[addr(1)]);
    let ticket = t.poll().start[0];
    t.record(ticket, &Ok(()));
    t.set_backends([addr(1), addr(2)]);
    let want = BTreeMap::from([(addr(1), State::Up), (addr(2), State::Unknown)]);
    assert_eq!(t.states(), want);
    assert_eq!(t.state(&addr(9)), State::Unknown);
}

/// Drives a table in 10 ms ticks. `behave(backend, start)` says how long the probe
/// takes and what it returns; `None` means it never returns (a hung thread).
fn simulate(
    t: &mut HealthTable,
    clock: &FakeClock,
    until: Duration,
    behave: impl Fn(SocketAddr, Duration) -> Option<(Duration, ProbeResult)>,
) -> (Vec<Transition>, Vec<(SocketAddr, Duration)>) {
    let mut pending: Vec<(Duration, Ticket, ProbeResult)> = Vec::new();
    let (mut transitions, mut starts) = (Vec::new(), Vec::new());
    while clock.now() <= until {
        let now = clock.now();
        let (done, rest) = pending.into_iter().partition(|(at, _, _)| *at <= now);
        pending = rest;
        for (_, ticket, result) in done {
            transitions.extend(t.record(ticket, &result));
        }
        let poll = t.poll();
        transitions.extend(poll.transitions);
        for ticket in poll.start {
            starts.push((ticket.backend, now));
            if let Some((took, result)) = behave(ticket.backend, now) {
                pending.push((now + took, ticket, result));
            }
        }
        clock.advance(10 * MS);
    }
    (transitions, starts)
}

#[test]
fn hanging_backend_delays_nobody_else() {
    let clock = FakeClock::default();
    let (hung, a, b) = (addr(1), addr(2), addr(3));
    let mut t = table(&clock, &[hung, a, b]);
    let behave = |backend: SocketAddr, _: Duration| (backend != hung).then_some((5 * MS, Ok(())));
    let (transitions, starts) = simulate(&mut t, &clock, 4990 * MS, behave);
    for backend in [a, b] {
        let at: Vec<_> = starts
            .iter()
            .filter(|(s, _)| *s == backend)
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(at, (0..5).map(|i| i * SEC).collect::<Vec<_>>(), "{backend}");
        assert_eq!(t.state(&backend), State::Up);
    }
    // The hung probe is given up after timeout + interval and counts as a failure.
    let hung_changes: Vec<_> = transitions
        .iter()
        .filter(|tr| tr.backend == hung)
        .map(|tr| (tr.to, tr.at, tr.reason.clone()))
        .collect();
    let lost = ProbeError::Lost(2 * SEC);
    assert_eq!(
        hung_changes,
        vec![
            (
                State::Draining,
                2 * SEC,
                Reason::Failed {
                    failures: 1,
                    error: lost.clone()
                }
            ),
            (
                State::Down,
                4 * SEC,
                Reason::Fell {
                    failures: 2,
                    error: lost
                }
            ),
        ]
    );
}

/// The default thresholds meet the failover target: for every phase of a backend's
/// death relative to its probe timer, measure how long until Draining (no new
/// connections) and Down (removed).
#[test]
fn failover_timing_with_defaults() {
    let defaults = HealthConfig::default();
    // (how the backend dies, worst drain, worst removal)
    let table = [("refuses", SEC, 2 * SEC), ("hangs", 2 * SEC, 3 * SEC)];
    for (mode, max_drain, max_down) in table {
        let mut worst = (Duration::ZERO, Duration::ZERO);
        for phase in 0..10 {
            let clock = FakeClock::default();
            let mut t = table_with(&clock, defaults);
            let dies = 3 * SEC + phase * 100 * MS + 5 * MS;
            let behave = |_: SocketAddr, start: Duration| {
                Some(match (start >= dies, mode) {
                    (false, _) => (2 * MS, Ok(())),
                    (true, "refuses") => (2 * MS, refused()),
                    (true, _) => (defaults.timeout, Err(ProbeError::Timeout(defaults.timeout))),
                })
            };
            let (transitions, _) = simulate(&mut t, &clock, 8 * SEC, behave);
            let when = |s| {
                transitions
                    .iter()
                    .find(|tr| tr.to == s)
                    .map(|tr| tr.at - dies)
            };
            let (drain, down) = (when(State::Draining).unwrap(), when(State::Down).unwrap());
            worst = (worst.0.max(drain), worst.1.max(down));
        }
        // One simulation tick of slack: results are delivered on the next tick.
        let tick = 10 * MS;
        assert!(
            worst.0 <= max_drain + tick,
            "{mode}: drained after {:?}",
            worst.0
        );
        assert!(
            worst.1 <= max_down + tick,
            "{mode}: removed after {:?}",
            worst.1
        );
        assert!(
            worst.1 > max_down - 200 * MS,
            "{mode}: bound is tight, got {:?}",
            worst.1
        );
    }
}

fn table_with(clock: &FakeClock, config: HealthConfig) -> HealthTable {
    let mut t = HealthTable::new(config, Arc::new(clock.clone()));
    t.set_backends([addr(1)]);
    t
}

#[test]
fn transition_displays_change_and_reason() {
    let tr = Transition {
        backend: addr(1),
        from: State::Up,
        to: State::Draining,
        reason: Reason::Failed {
            failures: 1,
            error: ProbeError::Status(500),
        },
        at: SEC,
    };
    assert_eq!(
        tr.to_string(),
        "backend 10.0.0.1:6443 up -> draining: probe failed (1 in a row): HTTP status 500"
    );
}
