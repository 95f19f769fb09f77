#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::lb::fake::{Call, FakeIpvs};
use crate::lb::model::Protocol;

fn vip() -> ServiceKey {
    key([10, 103, 97, 2], 6443)
}

fn key(ip: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey {
        addr: IpAddr::from(ip),
        port,
        protocol: Protocol::Tcp,
    }
}

fn be(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 168, 0, last], 6443))
}

fn vs(scheduler: &str, backends: &[(u8, u32)]) -> VirtualService {
    VirtualService {
        key: vip(),
        scheduler: scheduler.into(),
        backends: backends
            .iter()
            .map(|&(last, weight)| Backend {
                addr: be(last),
                weight,
            })
            .collect(),
    }
}

fn healthy() -> BTreeMap<SocketAddr, State> {
    BTreeMap::new()
}

fn with(states: &[(u8, State)]) -> BTreeMap<SocketAddr, State> {
    states.iter().map(|&(last, s)| (be(last), s)).collect()
}

/// Reconciles once and returns the writes it made.
fn round(
    r: &mut Reconciler,
    ipvs: &mut FakeIpvs,
    health: &BTreeMap<SocketAddr, State>,
) -> Vec<Call> {
    ipvs.clear_calls();
    let outcome = r.reconcile(ipvs, health).unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    ipvs.writes()
}

fn three() -> (Reconciler, FakeIpvs) {
    let mut r = Reconciler::new(vec![vs("rr", &[(1, 1), (2, 1), (3, 1)])]).unwrap();
    let mut ipvs = FakeIpvs::new();
    round(&mut r, &mut ipvs, &healthy());
    (r, ipvs)
}

#[test]
fn creates_service_and_dests_then_is_idempotent() {
    let mut r = Reconciler::new(vec![vs("rr", &[(1, 1), (2, 3)])]).unwrap();
    let mut ipvs = FakeIpvs::new();
    let writes = round(&mut r, &mut ipvs, &healthy());
    assert_eq!(
        writes,
        [
            Call::NewService(vip(), "rr".into()),
            Call::NewDest(vip(), be(1), 1),
            Call::NewDest(vip(), be(2), 3),
        ]
    );
    assert_eq!(round(&mut r, &mut ipvs, &healthy()), []);
    let observed = observe(&mut ipvs, r.owned()).unwrap();
    assert_eq!(plan(&r.desired(&healthy()), &observed, r.owned()), []);
}

#[test]
fn restores_rules_after_external_flush() {
    let (mut r, mut ipvs) = three();
    ipvs.flush();
    let writes = round(&mut r, &mut ipvs, &healthy());
    assert_eq!(writes.len(), 4);
    assert_eq!(
        ipvs.weights(&vip()).unwrap(),
        [(be(1), 1), (be(2), 1), (be(3), 1)]
    );
}

#[test]
fn health_sets_weights() {
    // (health of backends 1..3, expected real servers)
    type Row = (&'static [(u8, State)], &'static [(u8, u32)]);
    let table: [Row; 5] = [
        (&[(2, State::Draining)], &[(1, 1), (2, 0), (3, 1)]),
        (&[(2, State::Down)], &[(1, 1), (3, 1)]),
        (
            &[(1, State::Up), (2, State::Up), (3, State::Up)],
            &[(1, 1), (2, 1), (3, 1)],
        ),
        (&[(1, State::Down), (2, State::Draining)], &[(2, 0), (3, 1)]),
        // Nothing would carry traffic: fail open to the configured weights.
        (
            &[(1, State::Down), (2, State::Down), (3, State::Draining)],
            &[(1, 1), (2, 1), (3, 1)],
        ),
    ];
    for (states, want) in table {
        let (mut r, mut ipvs) = three();
        round(&mut r, &mut ipvs, &with(states));
        let want: Vec<_> = want.iter().map(|&(last, w)| (be(last), w)).collect();
        let mut got = ipvs.weights(&vip()).unwrap();
        got.sort();
        assert_eq!(got, want, "{states:?}");
        assert_eq!(
            round(&mut r, &mut ipvs, &with(states)),
            [],
            "{states:?} settled"
        );
    }
}

#[test]
fn drain_remove_and_return_are_minimal_ops() {
    let (mut r, mut ipvs) = three();
    let steps = [
        (State::Draining, vec![Call::SetDest(vip(), be(2), 0)]),
        (State::Down, vec![Call::DelDest(vip(), be(2))]),
        (State::Up, vec![Call::NewDest(vip(), be(2), 1)]),
    ];
    for (state, want) in steps {
        assert_eq!(
            round(&mut r, &mut ipvs, &with(&[(2, state)])),
            want,
            "{state}"
        );
    }
}

#[test]
fn prunes_dests_not_configured() {
    let (mut r, mut ipvs) = three();
    ipvs.new_dest(&vip(), &Dest::new(be(9).ip(), 6443, 5))
        .unwrap();
    r.set_services(vec![vs("rr", &[(1, 1), (3, 2)])]).unwrap();
    let writes = round(&mut r, &mut ipvs, &healthy());
    assert_eq!(
        writes,
        [
            Call::SetDest(vip(), be(3), 2),
            Call::DelDest(vip(), be(2)),
            Call::DelDest(vip(), be(9)),
        ]
    );
}

#[test]
fn scheduler_change_edits_the_service() {
    let (mut r, mut ipvs) = three();
    r.set_services(vec![vs("wrr", &[(1, 1), (2, 1), (3, 1)])])
        .unwrap();
    assert_eq!(
        round(&mut r, &mut ipvs, &healthy()),
        [Call::SetService(vip(), "wrr".into())]
    );
    assert_eq!(ipvs.service(&vip()).unwrap().scheduler, "wrr");
    assert_eq!(round(&mut r, &mut ipvs, &healthy()), []);
}

#[test]
fn foreign_services_are_never_read_or_touched() {
    let foreign = key([10, 96, 0, 1], 443);
    let svc = Service {
        key: foreign,
        scheduler: "sh".into(),
        flags: 0,
        timeout: 0,
        netmask: u32::MAX,
        fwmark: 0,
    };
    let dests = vec![Dest::new(be(1).ip(), 6443, 7)];
    let mut ipvs = FakeIpvs::new();
    ipvs.insert_foreign(svc.clone(), dests.clone());
    let mut r = Reconciler::new(vec![vs("rr", &[(1, 1)])]).unwrap();
    round(&mut r, &mut ipvs, &healthy());
    r.set_services(vec![]).unwrap();
    round(&mut r, &mut ipvs, &healthy());
    assert_eq!(ipvs.keys(), [foreign]);
    assert_eq!(ipvs.weights(&foreign).unwrap(), [(be(1), 7)]);
    assert!(
        ipvs.calls().iter().all(|c| *c != Call::Dests(foreign)),
        "{:?}",
        ipvs.calls()
    );
}

#[test]
fn unconfigured_service_is_deleted_once_then_disowned() {
    let (mut r, mut ipvs) = three();
    r.set_services(vec![]).unwrap();
    assert_eq!(
        round(&mut r, &mut ipvs, &healthy()),
        [Call::DelService(vip())]
    );
    assert!(r.owned().is_empty());
    // Someone else creating the same key later owns it.
    ipvs.new_service(&service(&vs("rr", &[]))).unwrap();
    assert_eq!(round(&mut r, &mut ipvs, &healthy()), []);
}

#[test]
fn configured_key_created_by_someone_else_is_taken_over() {
    let mut ipvs = FakeIpvs::new();
    let mut theirs = service(&vs("lc", &[]));
    theirs.timeout = 300;
    ipvs.insert_foreign(theirs, vec![Dest::new(be(9).ip(), 6443, 1)]);
    let mut r = Reconciler::new(vec![vs("rr", &[(1, 1)])]).unwrap();
    let writes = round(&mut r, &mut ipvs, &healthy());
    assert_eq!(
        writes,
        [
            Call::SetService(vip(), "rr".into()),
            Call::NewDest(vip(), be(1), 1),
            Call::DelDest(vip(), be(9)),
        ]
    );
}

#[test]
fn failed_ops_are_reported_and_retried() {
    let mut r = Reconciler::new(vec![vs("rr", &[(1, 1), (2, 1)])]).unwrap();
    let mut ipvs = FakeIpvs::new();
    ipvs.fail_next("new_dest", libc::EINVAL);
    let outcome = r.reconcile(&mut ipvs, &healthy()).unwrap();
    assert_eq!(outcome.applied.len(), 2, "the other ops still ran");
    let (op, err) = &outcome.failed[0];
    assert_eq!(*op, Op::NewDest(vip(), Dest::new(be(1).ip(), 6443, 1)));
    assert!(
        matches!(err, IpvsError::Kernel { op: "new_dest", errno, .. } if *errno == libc::EINVAL)
    );
    assert_eq!(
        round(&mut r, &mut ipvs, &healthy()),
        [Call::NewDest(vip(), be(1), 1)]
    );
}

#[test]
fn dump_failure_is_an_error_and_changes_nothing() {
    let (mut r, mut ipvs) = three();
    ipvs.flush();
    ipvs.fail_next("services", libc::ENOMEM);
    ipvs.clear_calls();
    let err = r.reconcile(&mut ipvs, &healthy()).unwrap_err();
    assert!(matches!(
        err,
        ReconcileError::Observe(IpvsError::Kernel { op: "services", .. })
    ));
    assert_eq!(ipvs.writes(), []);
    assert_eq!(
        r.owned().len(),
        1,
        "still owned, the next round restores it"
    );
}

#[test]
fn invalid_configs_are_refused() {
    let mut dup_service = vec![vs("rr", &[]), vs("rr", &[])];
    let table: Vec<(&str, Vec<VirtualService>, ConfigError)> = vec![
        (
            "duplicate service",
            std::mem::take(&mut dup_service),
            ConfigError::DuplicateService("10.103.97.2:6443".into()),
        ),
        (
            "duplicate backend",
            vec![vs("rr", &[(1, 1), (1, 2)])],
            ConfigError::DuplicateBackend {
                service: "10.103.97.2:6443".into(),
                backend: be(1),
            },
        ),
        (
            "weight",
            vec![vs("rr", &[(1, 1 << 31)])],
            ConfigError::Weight {
                service: "10.103.97.2:6443".into(),
                backend: be(1),
                weight: 1 << 31,
            },
        ),
        (
            "empty scheduler",
            vec![vs("", &[])],
            ConfigError::Scheduler("10.103.97.2:6443".into(), "".into()),
        ),
        (
            "odd scheduler",
            vec![vs("r r", &[])],
            ConfigError::Scheduler("10.103.97.2:6443".into(), "r r".into()),
        ),
    ];
    for (name, services, want) in table {
        assert_eq!(Reconciler::new(services).unwrap_err(), want, "{name}");
    }
}

#[test]
fn backends_lists_every_configured_address() {
    let mut other = vs("rr", &[(3, 1), (4, 1)]);
    other.key = key([10, 103, 97, 3], 443);
    let r = Reconciler::new(vec![vs("rr", &[(1, 1), (3, 1)]), other]).unwrap();
    assert_eq!(r.backends(), BTreeSet::from([be(1), be(3), be(4)]));
}

#[test]
fn ops_display() {
    let d = Dest::new(be(1).ip(), 6443, 2);
    let table = [
        (
            Op::NewService(service(&vs("rr", &[]))),
            "add service tcp 10.103.97.2:6443 (rr)",
        ),
        (Op::DelService(vip()), "delete service tcp 10.103.97.2:6443"),
        (
            Op::NewDest(vip(), d.clone()),
            "add 192.168.0.1:6443 weight 2 to tcp 10.103.97.2:6443",
        ),
        (
            Op::SetDest(vip(), d.clone()),
            "set 192.168.0.1:6443 weight 2 in tcp 10.103.97.2:6443",
        ),
        (
            Op::DelDest(vip(), d),
            "delete 192.168.0.1:6443 weight 2 from tcp 10.103.97.2:6443",
        ),
    ];
    for (op, want) in table {
        assert_eq!(op.to_string(), want);
    }
}

#[test]
fn kernel_local_forwarding_of_a_local_backend_is_not_drift() {
    let r = Reconciler::new(vec![vs("rr", &[(1, 1)])]).unwrap();
    let desired = r.desired(&healthy());
    let mut observed = desired.clone();
    let set = |o: &mut Observed, f: Forward| o.get_mut(&vip()).unwrap().dests[0].forward = f;
    set(&mut observed, Forward::Local);
    assert_eq!(plan(&desired, &observed, r.owned()), vec![]);
    set(&mut observed, Forward::Tunnel);
    assert_eq!(plan(&desired, &observed, r.owned()).len(), 1);
}
