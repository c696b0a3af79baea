//! The reconciler against a fake table.

use std::path::Path;

use ipvs::{DestinationConfig, ForwardMethod, ServiceConfig};

use super::memory::MemoryTable;
use super::*;
use crate::config;

const CONFIG: &str = "
services:
  - address: 198.18.0.10:80
    quorum: {min_up: 1}
    real_servers:
      - {address: 198.18.1.11:80, weight: 3}
      - {address: 198.18.1.12:80, weight: 1}
      - {address: 198.18.1.13:80, weight: 2}
";

fn service() -> VirtualService {
    let config = config::parse(CONFIG, Path::new("test.yaml"), Path::new(".")).expect("valid");
    config.services[0].clone()
}

fn rs(n: u8) -> DestinationKey {
    DestinationKey::new(format!("198.18.1.{n}:80").parse().expect("address"))
}

/// The table as ipvsadm made it: rs11..rs13 at `weights`.
fn table(weights: [u32; 3]) -> MemoryTable {
    let mut t = MemoryTable::default();
    t.services.insert(service().key, ServiceConfig::new("wrr"));
    let d = t.dests.entry(service().key).or_default();
    for (n, w) in [11, 12, 13].into_iter().zip(weights) {
        d.insert(rs(n), DestinationConfig::new(ForwardMethod::Masquerade, w));
    }
    t
}

fn health_of(states: [Health; 3]) -> impl Fn(&DestinationKey) -> View + Copy {
    move |d| {
        View::from(match d.addr.ip().to_string().as_str() {
            "198.18.1.11" => states[0],
            "198.18.1.12" => states[1],
            _ => states[2],
        })
    }
}

/// `desired` now, with no slow start under way.
fn desired(service: &VirtualService, view: impl Fn(&DestinationKey) -> View) -> Desired {
    super::desired(service, view, Instant::now())
}

fn weights(t: &MemoryTable) -> Vec<u32> {
    t.dests
        .values()
        .flat_map(|d| d.values().map(|c| c.weight))
        .collect()
}

use Health::{Down, Unknown, Up};

/// An outcome that changed nothing and saw rs11, rs12, rs13 at `w` (and
/// forwarded to by NAT, as [`table`] makes them).
fn seen(w: [u32; 3]) -> Outcome {
    Outcome {
        weights: vec![(rs(11), w[0]), (rs(12), w[1]), (rs(13), w[2])],
        forwards: [11, 12, 13]
            .map(|n| (rs(n), ForwardMethod::Masquerade))
            .to_vec(),
        ..Outcome::default()
    }
}

#[test]
fn nothing_is_touched_before_results() {
    let mut r = Reconciler::new(table([3, 1, 2]), false);
    let d = desired(&service(), health_of([Unknown; 3]));
    assert_eq!(d.weights.iter().filter(|(_, w)| w.is_some()).count(), 0);
    // Only the weights seen are reported.
    assert_eq!(r.reconcile(&d).expect("reconcile"), seen([3, 1, 2]));
    assert!(r.table().writes.is_empty());
}

#[test]
fn down_is_zero_and_up_is_the_configured_weight() {
    // A restart after the checker died with rs12 at 0: the configured
    // weight comes from the config, never from the table.
    let mut r = Reconciler::new(table([3, 0, 2]), false);
    let d = desired(&service(), health_of([Down, Up, Unknown]));
    let outcome = r.reconcile(&d).expect("reconcile");
    assert_eq!(weights(r.table()), vec![0, 1, 2]);
    // The weights reported are the ones after the pass.
    assert_eq!(outcome.weights, seen([0, 1, 2]).weights);
    assert_eq!(
        outcome.changes,
        vec![
            Change {
                service: d.service,
                destination: rs(11),
                from: 3,
                to: 0,
                out_of_band: false
            },
            Change {
                service: d.service,
                destination: rs(12),
                from: 0,
                to: 1,
                out_of_band: false
            },
        ]
    );
    // Nothing to do the second time.
    assert_eq!(r.reconcile(&d).expect("reconcile"), seen([0, 1, 2]));
    assert_eq!(r.table().writes.len(), 2);
}

#[test]
fn an_out_of_band_change_is_corrected_and_reported() {
    let mut r = Reconciler::new(table([3, 1, 2]), false);
    let d = desired(&service(), health_of([Up, Up, Down]));
    r.reconcile(&d).expect("reconcile");
    // ipvsadm -e ... -w 7 behind the checker's back.
    r.table.set(&d.service, rs(11), 7).expect("in the table");
    let outcome = r.reconcile(&d).expect("reconcile");
    assert_eq!(
        outcome.changes,
        vec![Change {
            service: d.service,
            destination: rs(11),
            from: 7,
            to: 3,
            out_of_band: true
        }]
    );
    assert_eq!(weights(r.table()), vec![3, 1, 0]);
}

#[test]
fn the_quorum_guard_fails_open() {
    let s = service();
    let all_down = desired(&s, health_of([Down; 3]));
    assert!(all_down.guard_active);
    assert_eq!(
        all_down.weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        vec![Some(3), Some(1), Some(2)]
    );
    let one_up = desired(&s, health_of([Down, Up, Down]));
    assert!(!one_up.guard_active);
    assert_eq!(
        one_up.weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(0)]
    );
    // Without a quorum, all down is all zero.
    let mut bare = s.clone();
    bare.quorum = None;
    let d = desired(&bare, health_of([Down; 3]));
    assert!(!d.guard_active);
    assert_eq!(
        d.weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        vec![Some(0); 3]
    );
}

#[test]
fn dry_run_writes_nothing_and_announces_once() {
    let mut r = Reconciler::new(table([3, 1, 2]), true);
    let d = desired(&service(), health_of([Down, Up, Up]));
    let first = r.reconcile(&d).expect("reconcile");
    assert_eq!(first.changes.len(), 1);
    assert_eq!(
        (first.changes[0].destination, first.changes[0].to),
        (rs(11), 0)
    );
    // A dry run reports the weights as they are.
    assert_eq!(r.reconcile(&d).expect("reconcile"), seen([3, 1, 2]));
    assert!(r.table().writes.is_empty());
}

#[test]
fn missing_real_servers_and_services_are_reported() {
    let mut t = table([3, 1, 2]);
    t.dests.values_mut().for_each(|d| {
        d.remove(&rs(13));
    });
    let mut r = Reconciler::new(t, false);
    let d = desired(&service(), health_of([Up, Up, Down]));
    assert_eq!(r.reconcile(&d).expect("reconcile").missing, vec![rs(13)]);

    let mut empty = Reconciler::new(MemoryTable::default(), false);
    let e = empty.reconcile(&d).expect_err("no service");
    assert_eq!(e.to_string(), "service TCP 198.18.0.10:80 does not exist");
}

fn parse(text: &str) -> config::Config {
    config::parse(text, Path::new("test.yaml"), Path::new(".")).expect("valid")
}

const SORRY: &str = "
services:
  - address: 198.18.0.10:80
    quorum: {min_up: 2, sorry_server: {address: 198.18.1.99:8080, weight: 5}}
    real_servers:
      - {address: 198.18.1.11:80, weight: 3}
      - {address: 198.18.1.12:80, weight: 1}
      - {address: 198.18.1.13:80, weight: 2}
";

fn sorry() -> DestinationKey {
    DestinationKey::new("198.18.1.99:8080".parse().expect("address"))
}

#[test]
fn below_quorum_the_sorry_server_takes_over_and_leaves_when_quorum_returns() {
    let s = parse(SORRY).services[0].clone();
    // As ipvsadm made it: the sorry server waiting at weight 0.
    let mut t = table([3, 1, 2]);
    t.dests.values_mut().for_each(|d| {
        d.insert(
            sorry(),
            DestinationConfig::new(ForwardMethod::Masquerade, 0),
        );
    });
    let mut r = Reconciler::new(t, false);

    // Unknown ones could still make the quorum: nothing acts at start-up.
    let start = desired(&s, health_of([Down, Unknown, Unknown]));
    assert!(!start.guard_active);
    assert_eq!(start.sorry.map(|(_, w)| w), Some(0));

    // Two of three down with min_up 2: the failed ones go to 0 (not held,
    // unlike fail open) and the sorry server gets its weight.
    let below = desired(&s, health_of([Down, Up, Down]));
    assert!(below.guard_active);
    assert_eq!(
        below.weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(0)]
    );
    let outcome = r.reconcile(&below).expect("reconcile");
    assert!(outcome
        .changes
        .iter()
        .any(|c| c.destination == sorry() && c.to == 5));
    assert!(outcome.weights.contains(&(sorry(), 5)));
    let table_weight = |r: &Reconciler<MemoryTable>, d: DestinationKey| {
        r.table()
            .dests
            .values()
            .find_map(|m| m.get(&d))
            .map(|c| c.weight)
    };
    assert_eq!(table_weight(&r, rs(11)), Some(0));
    assert_eq!(table_weight(&r, rs(13)), Some(0));
    assert_eq!(table_weight(&r, sorry()), Some(5));

    // Quorum is back: the sorry server is zeroed, the servers weigh again.
    let back = desired(&s, health_of([Up, Up, Down]));
    assert!(!back.guard_active);
    r.reconcile(&back).expect("reconcile");
    assert_eq!(table_weight(&r, sorry()), Some(0));
    assert_eq!(table_weight(&r, rs(11)), Some(3));

    // Weights mode does not add a missing sorry server: it reports it.
    let mut bare = Reconciler::new(table([3, 1, 2]), false);
    assert_eq!(
        bare.reconcile(&below).expect("reconcile").missing,
        vec![sorry()]
    );
    // ... and does not complain of its absence when it is not needed.
    assert!(bare.reconcile(&back).expect("reconcile").missing.is_empty());
}

#[test]
fn slow_start_ramps_in_tenths_and_a_down_is_zero_at_once() {
    let second = Duration::from_secs(1);
    let period = Duration::from_secs(10);
    let steps: Vec<u32> = (0..=11).map(|s| ramp(20, second * s, period)).collect();
    assert_eq!(steps, vec![2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 20, 20]);
    // Small weights: at least 1, never above the configured weight.
    let small: Vec<u32> = (0..=10).map(|s| ramp(3, second * s, period)).collect();
    assert_eq!(small, vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3]);
    assert_eq!(ramp(0, Duration::ZERO, period), 0);
    for w in [1, 7, 100, ipvs::MAX_WEIGHT] {
        for ms in (0..12_000).step_by(250) {
            let got = ramp(w, Duration::from_millis(ms), period);
            assert!((1..=w).contains(&got), "weight {w} at {ms} ms: {got}");
        }
    }

    let s = parse(
        "services:\n  - address: 198.18.0.10:80\n    slow_start: 10s\n    real_servers:\n      - {address: 198.18.1.11:80, weight: 20}\n      - {address: 198.18.1.12:80, weight: 4, slow_start: 2s}\n",
    )
    .services[0]
    .clone();
    // The injected clock: rs11 and rs12 came back at t0.
    let t0 = Instant::now();
    let view = |h: Health| {
        move |_: &DestinationKey| View {
            health: h,
            recovered_at: Some(t0),
            drained: None,
            program_weight: None,
        }
    };
    let at = |secs: u64, h: Health| {
        super::desired(&s, view(h), t0 + Duration::from_secs(secs))
            .weights
            .iter()
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
    };
    assert_eq!(at(0, Up), vec![Some(2), Some(1)]);
    assert_eq!(at(1, Up), vec![Some(4), Some(2)]);
    assert_eq!(at(5, Up), vec![Some(12), Some(4)]);
    assert_eq!(at(10, Up), vec![Some(20), Some(4)]);
    // Down during the ramp: 0 at once.
    assert_eq!(at(3, Down), vec![Some(0), Some(0)]);
    // An up not from down (start-up) is not ramped.
    let fresh = super::desired(&s, health_of([Up; 3]), t0);
    assert_eq!(
        fresh.weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        vec![Some(20), Some(4)]
    );
}

const MANAGED: &str = "
mode: managed
state_file: owned.json
services:
  - address: 198.18.0.10:80
    scheduler: wrr
    quorum: {min_up: 1, sorry_server: {address: 198.18.1.99:8080, weight: 5}}
    real_servers:
      - {address: 198.18.1.11:80, weight: 3}
      - {address: 198.18.1.12:80, weight: 1, upper_threshold: 10}
";

fn managed_config(text: &str, dir: &Path) -> config::Config {
    config::parse(text, &dir.join("checker.yaml"), dir).expect("valid")
}

/// One managed pass over every service, as the daemon's resync does.
fn pass(
    r: &mut Reconciler<MemoryTable>,
    config: &config::Config,
    health: impl Fn(&DestinationKey) -> View + Copy,
) -> Vec<Action> {
    let mut actions = r.remove_unconfigured(config, Instant::now()).actions;
    for s in &config.services {
        let want = desired(s, health);
        let (outcome, current) = r.ensure(s, &want);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        actions.extend(outcome.actions);
        r.reconcile_from(&want, current.expect("the service's entries"));
    }
    actions
}

#[test]
fn managed_mode_builds_updates_and_removes_only_what_it_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = managed_config(MANAGED, dir.path());
    let state_file = config.state_file.clone().expect("state_file");
    let vip = config.services[0].key;
    let foreign = ServiceKey::tcp("198.18.0.20:80".parse().expect("address"));
    let mut t = MemoryTable::default();
    // A service made by ipvsadm, not in the config.
    t.new_service(&foreign, &ServiceConfig::new("rr"))
        .expect("add");
    t.new_destination(
        &foreign,
        &rs(11),
        &DestinationConfig::new(ForwardMethod::Masquerade, 1),
    )
    .expect("add");
    let mut r = Reconciler::managed(t, false, &state_file).expect("no state file yet");

    // From an empty table: the service and its real servers, at weight 0
    // while their health is unknown.
    let actions = pass(&mut r, &config, health_of([Unknown; 3]));
    assert_eq!(
        actions,
        vec![
            Action::CreateService(vip),
            Action::CreateDestination(vip, rs(11), 0),
            Action::CreateDestination(vip, rs(12), 0),
        ]
    );
    assert_eq!(r.table().services[&vip], ServiceConfig::new("wrr"));
    let rs12 = r.table().dests[&vip][&rs(12)];
    assert_eq!(
        (rs12.forward, rs12.weight, rs12.upper_threshold),
        (ForwardMethod::Masquerade, 0, 10)
    );
    // Recorded on disk.
    let owned = owned::Owned::load(&state_file).expect("state file");
    assert_eq!(
        owned.services.iter().copied().collect::<Vec<_>>(),
        vec![vip]
    );
    assert_eq!(owned.destinations.len(), 2);

    // Checks pass: configured weights. A second pass changes nothing.
    assert!(pass(&mut r, &config, health_of([Up; 3])).is_empty());
    assert_eq!(r.table().dests[&vip][&rs(11)].weight, 3);
    assert_eq!(r.table().dests[&vip][&rs(12)].weight, 1);

    // Out of band: the scheduler and a forwarding method changed, the
    // service's real server deleted: all put back.
    r.table.services.insert(vip, ServiceConfig::new("rr"));
    r.table
        .dests
        .get_mut(&vip)
        .expect("vip")
        .get_mut(&rs(12))
        .expect("rs12")
        .forward = ForwardMethod::DirectRoute;
    r.table.del_destination(&vip, &rs(11)).expect("del");
    let actions = pass(&mut r, &config, health_of([Up; 3]));
    assert_eq!(
        actions,
        vec![
            Action::UpdateService(vip),
            Action::CreateDestination(vip, rs(11), 3),
            Action::UpdateDestination(vip, rs(12)),
        ]
    );
    assert_eq!(r.table().services[&vip].scheduler, "wrr");
    assert_eq!(
        r.table().dests[&vip][&rs(12)].forward,
        ForwardMethod::Masquerade
    );
    assert_eq!(r.table().dests[&vip][&rs(12)].weight, 1, "weight kept");

    // Everything down: the sorry server is added, then removed on recovery.
    pass(&mut r, &config, health_of([Down; 3]));
    assert_eq!(r.table().dests[&vip][&sorry()].weight, 5);
    assert_eq!(r.table().dests[&vip][&rs(11)].weight, 0);
    let actions = pass(&mut r, &config, health_of([Up; 3]));
    assert_eq!(actions, vec![Action::DeleteDestination(vip, sorry())]);
    assert!(!r.table().dests[&vip].contains_key(&sorry()));

    // Someone adds a real server to our service with ipvsadm.
    r.table
        .new_destination(
            &vip,
            &rs(13),
            &DestinationConfig::new(ForwardMethod::Masquerade, 1),
        )
        .expect("add");

    // A restart: the new reconciler knows what it made from the file.
    let table = std::mem::take(&mut r.table);
    let mut r = Reconciler::managed(table, false, &state_file).expect("state file");

    // rs12 leaves the config: weight 0, then (no connection) deleted;
    // rs13 (not ours) stays.
    let fewer = managed_config(
        &MANAGED.replace(
            "      - {address: 198.18.1.12:80, weight: 1, upper_threshold: 10}\n",
            "",
        ),
        dir.path(),
    );
    let actions = pass(&mut r, &fewer, health_of([Up; 3]));
    assert_eq!(actions, vec![Action::RemoveDestination(vip, rs(12))]);
    assert_eq!(r.table().dests[&vip][&rs(12)].weight, 0);
    let actions = pass(&mut r, &fewer, health_of([Up; 3]));
    assert_eq!(actions, vec![Action::DeleteDestination(vip, rs(12))]);
    assert_eq!(
        r.table().dests[&vip].keys().copied().collect::<Vec<_>>(),
        vec![rs(11), rs(13)]
    );

    // The service leaves the config: ours go, the service stays for rs13.
    let other = managed_config(
        "mode: managed\nstate_file: owned.json\nservices:\n  - address: 198.18.0.30:80\n    real_servers: [{address: 198.18.1.11:80}]\n",
        dir.path(),
    );
    let outcome = r.remove_unconfigured(&other, Instant::now());
    assert_eq!(
        outcome.actions,
        vec![Action::RemoveDestination(vip, rs(11))]
    );
    assert!(outcome.kept.is_empty());
    let outcome = r.remove_unconfigured(&other, Instant::now());
    assert_eq!(
        outcome.actions,
        vec![Action::DeleteDestination(vip, rs(11))]
    );
    assert_eq!(outcome.kept, vec![vip]);
    assert_eq!(
        r.table().dests[&vip].keys().copied().collect::<Vec<_>>(),
        vec![rs(13)]
    );
    // rs13 goes (by ipvsadm): now the service is deleted.
    r.table.del_destination(&vip, &rs(13)).expect("del");
    let outcome = r.remove_unconfigured(&other, Instant::now());
    assert_eq!(outcome.actions, vec![Action::DeleteService(vip)]);
    assert!(!r.table().services.contains_key(&vip));
    // The foreign service was never touched.
    assert_eq!(r.table().services[&foreign], ServiceConfig::new("rr"));
    assert_eq!(r.table().dests[&foreign][&rs(11)].weight, 1);
    assert_eq!(
        owned::Owned::load(&state_file).expect("file"),
        owned::Owned::default()
    );
}

#[test]
fn a_service_that_existed_is_adopted_but_never_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = managed_config(MANAGED, dir.path());
    let vip = config.services[0].key;
    let mut t = table([3, 1, 2]);
    t.services.insert(vip, ServiceConfig::new("rr"));
    let mut r = Reconciler::managed(t, false, config.state_file.as_deref().expect("file"))
        .expect("no file");
    let actions = pass(&mut r, &config, health_of([Up; 3]));
    // Settings follow the config; rs11 and rs12 were there, rs13 too (not configured, not ours).
    assert_eq!(
        actions,
        vec![
            Action::UpdateService(vip),
            Action::UpdateDestination(vip, rs(12))
        ]
    );
    assert!(r.owned().services.is_empty());
    let gone = managed_config(
        "mode: managed\nstate_file: owned.json\nservices:\n  - address: 198.18.0.30:80\n    real_servers: [{address: 198.18.1.11:80}]\n",
        dir.path(),
    );
    assert_eq!(
        r.remove_unconfigured(&gone, Instant::now()),
        ManagedOutcome::default()
    );
    assert_eq!(r.table().dests[&vip].len(), 3);
}

#[test]
fn managed_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = managed_config(MANAGED, dir.path());
    let vip = config.services[0].key;
    let mut r = Reconciler::managed(
        MemoryTable::default(),
        true,
        config.state_file.as_deref().expect("file"),
    )
    .expect("no file");
    let want = desired(&config.services[0], health_of([Unknown; 3]));
    let (outcome, current) = r.ensure(&config.services[0], &want);
    assert_eq!(
        current.expect_err("no service").to_string(),
        format!("service {vip} does not exist")
    );
    assert_eq!(
        outcome.actions,
        vec![
            Action::CreateService(vip),
            Action::CreateDestination(vip, rs(11), 0),
            Action::CreateDestination(vip, rs(12), 0),
        ]
    );
    assert!(r.table().services.is_empty());
    assert!(!config.state_file.expect("file").exists());
}

#[test]
fn leaving_managed_mode_keeps_what_it_created_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = managed_config(MANAGED, dir.path());
    let state_file = config.state_file.clone().expect("state_file");
    let vip = config.services[0].key;
    let mut r = Reconciler::managed(MemoryTable::default(), false, &state_file).expect("no file");
    pass(&mut r, &config, health_of([Up; 3]));
    let written = std::fs::read_to_string(&state_file).expect("state file");

    // A reload to weights mode: what it created is handed back, named.
    let left = r
        .set_state_file(None)
        .expect("no file to read")
        .expect("entries left behind");
    assert_eq!(left.state_file, state_file);
    assert_eq!(left.services(), "TCP 198.18.0.10:80");
    assert_eq!(
        left.real_servers(),
        "198.18.1.11:80 in TCP 198.18.0.10:80, 198.18.1.12:80 in TCP 198.18.0.10:80"
    );
    assert_eq!(r.owned(), &Owned::default());
    // Nothing is deleted, and the state file is as it was.
    let weights_config = parse(
        "services:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {address: 198.18.1.11:80, weight: 3}\n",
    );
    let want = desired(&weights_config.services[0], health_of([Up; 3]));
    r.reconcile(&want).expect("reconcile");
    assert_eq!(r.table().dests[&vip].len(), 2);
    assert_eq!(
        std::fs::read_to_string(&state_file).expect("state file"),
        written
    );
    // A second reload in weights mode has nothing more to say.
    assert_eq!(r.set_state_file(None).expect("weights mode"), None);

    // Back to managed mode with the same file: they are owned again, and
    // one that left the config is deleted.
    assert_eq!(r.set_state_file(Some(&state_file)).expect("read"), None);
    assert_eq!(r.owned().destinations.len(), 2);
    let fewer = managed_config(
        &MANAGED.replace(
            "      - {address: 198.18.1.12:80, weight: 1, upper_threshold: 10}\n",
            "",
        ),
        dir.path(),
    );
    assert_eq!(
        r.remove_unconfigured(&fewer, Instant::now()).actions,
        vec![Action::RemoveDestination(vip, rs(12))]
    );
}

/// `health_of`, with `drained` drained by `by`.
fn drained_of(
    states: [Health; 3],
    drained: &'static [u8],
    by: By,
) -> impl Fn(&DestinationKey) -> View + Copy {
    move |d| View {
        drained: drained.iter().any(|n| rs(*n) == *d).then_some(by),
        ..health_of(states)(d)
    }
}

/// A weight set to 0 out of band is left at 0 and reported as a drain; a
/// non-zero weight on such a drain is left too and reported as its end;
/// any other change is still set back.
#[test]
fn an_out_of_band_zero_is_a_drain_and_a_non_zero_weight_ends_it() {
    let mut r = Reconciler::new(table([3, 1, 2]), false);
    let s = service();
    let d = desired(&s, health_of([Up, Up, Up]));
    r.reconcile(&d).expect("reconcile");
    // ipvsadm -e ... -w 0.
    r.table.set(&d.service, rs(11), 0).expect("in the table");
    let outcome = r.reconcile(&d).expect("reconcile");
    assert_eq!(outcome.drained_out_of_band, vec![rs(11)]);
    assert!(outcome.changes.is_empty());
    assert_eq!(weights(r.table()), vec![0, 1, 2]);
    // The loop records the drain: rs11 is wanted at 0, and stays there.
    let drained = desired(&s, drained_of([Up, Up, Up], &[11], By::OutOfBand));
    assert_eq!(drained.drained_out_of_band, vec![rs(11)]);
    let outcome = r.reconcile(&drained).expect("reconcile");
    assert_eq!(outcome, seen([0, 1, 2]));
    // ipvsadm -e ... -w 9: the drain ends, the 9 stays for now.
    r.table.set(&d.service, rs(11), 9).expect("in the table");
    let outcome = r.reconcile(&drained).expect("reconcile");
    assert_eq!(outcome.undrained_out_of_band, vec![rs(11)]);
    assert_eq!(weights(r.table()), vec![9, 1, 2]);
    // Undrained: the configured weight, not counted as out of band.
    let outcome = r.reconcile(&d).expect("reconcile");
    assert_eq!(outcome.changes.len(), 1);
    assert!(!outcome.changes[0].out_of_band);
    assert_eq!(weights(r.table()), vec![3, 1, 2]);
    // A drain by the admin API is enforced: a weight set on it goes back.
    let by_api = desired(&s, drained_of([Up, Up, Up], &[12], By::Api));
    r.reconcile(&by_api).expect("reconcile");
    r.table.set(&d.service, rs(12), 9).expect("in the table");
    let outcome = r.reconcile(&by_api).expect("reconcile");
    assert!(outcome.undrained_out_of_band.is_empty());
    assert_eq!(weights(r.table()), vec![3, 0, 2]);
    assert!(outcome.changes[0].out_of_band);
}

/// A 0 set out of band while the real server goes down (so the pass
/// wants 0 too) is still the operator's drain: its recovery does not undo
/// it.
#[test]
fn an_out_of_band_zero_meeting_a_failure_is_still_a_drain() {
    let mut r = Reconciler::new(table([3, 1, 2]), false);
    let s = service();
    r.reconcile(&desired(&s, health_of([Up, Up, Up])))
        .expect("reconcile");
    r.table.set(&s.key, rs(11), 0).expect("in the table");
    let down = desired(&s, health_of([Down, Up, Up]));
    let outcome = r.reconcile(&down).expect("reconcile");
    assert_eq!(outcome.drained_out_of_band, vec![rs(11)]);
}

/// A 0 set out of band before the first results, after a pass that saw
/// the table while every health was unknown, is a drain too: the
/// results that follow, finding the table as that pass saw it, reconcile
/// nothing, so the next pass is the first to see the 0.
#[test]
fn an_out_of_band_zero_before_the_first_results_is_a_drain() {
    let mut r = Reconciler::new(table([3, 1, 2]), false);
    let s = service();
    let outcome = r
        .reconcile(&desired(&s, health_of([Unknown, Unknown, Unknown])))
        .expect("reconcile");
    assert!(outcome.changes.is_empty());
    r.table.set(&s.key, rs(11), 0).expect("in the table");
    let outcome = r
        .reconcile(&desired(&s, health_of([Up, Up, Up])))
        .expect("reconcile");
    assert_eq!(outcome.drained_out_of_band, vec![rs(11)]);
    assert!(outcome.changes.is_empty());
    assert_eq!(weights(r.table()), vec![0, 1, 2]);
    // A 0 the checker found at its start (its own, left by a run before
    // it, for a real server then down) is set back on recovery.
    let mut r = Reconciler::new(table([0, 1, 2]), false);
    r.reconcile(&desired(&s, health_of([Unknown, Unknown, Unknown])))
        .expect("reconcile");
    let outcome = r
        .reconcile(&desired(&s, health_of([Up, Up, Up])))
        .expect("reconcile");
    assert!(outcome.drained_out_of_band.is_empty());
    assert_eq!(outcome.changes.len(), 1);
    assert!(!outcome.changes[0].out_of_band);
    assert_eq!(weights(r.table()), vec![3, 1, 2]);
}

/// `out_of_band: restore`: a weight set to 0 out of band is set back too.
#[test]
fn strict_enforcement_sets_an_out_of_band_zero_back() {
    let mut r = Reconciler::new(table([3, 1, 2]), false);
    r.set_out_of_band(OutOfBand::Restore);
    let d = desired(&service(), health_of([Up, Up, Up]));
    r.reconcile(&d).expect("reconcile");
    r.table.set(&d.service, rs(11), 0).expect("in the table");
    let outcome = r.reconcile(&d).expect("reconcile");
    assert!(outcome.drained_out_of_band.is_empty());
    assert!(outcome.changes[0].out_of_band);
    assert_eq!(weights(r.table()), vec![3, 1, 2]);
}

/// A drained real server weighs 0 whatever its health, counts as not up
/// for the quorum, and the guard failing open never puts it back.
#[test]
fn a_drained_real_server_is_zero_and_not_up_for_the_quorum() {
    let s = service();
    let w = |d: &Desired| d.weights.iter().map(|(_, w)| *w).collect::<Vec<_>>();
    // Health unknown or up: 0 all the same.
    let d = desired(&s, drained_of([Unknown, Up, Up], &[11], By::Api));
    assert_eq!(w(&d), vec![Some(0), Some(1), Some(2)]);
    assert!(!d.guard_active);
    // min_up 1: the only up one drained, the others down: the guard acts
    // and holds the failed ones, but not the drained one.
    let d = desired(&s, drained_of([Up, Down, Down], &[11], By::Api));
    assert!(d.guard_active);
    assert_eq!(w(&d), vec![Some(0), Some(1), Some(2)]);
    let d = desired(
        &s,
        drained_of([Up, Up, Up], &[11, 12, 13], By::MaintenanceDir),
    );
    assert!(d.guard_active);
    assert_eq!(w(&d), vec![Some(0); 3]);
}

/// A real server that leaves the config stays at weight 0 while it has
/// active connections, up to `drain_timeout`; put back, its removal is
/// off; a restart in the middle finishes it.
#[test]
fn a_removed_real_server_waits_for_its_connections_or_the_drain_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = managed_config(MANAGED, dir.path());
    let vip = config.services[0].key;
    let state_file = config.state_file.clone().expect("file");
    let mut r = Reconciler::managed(MemoryTable::default(), false, &state_file).expect("no file");
    pass(&mut r, &config, health_of([Up; 3]));
    let fewer = managed_config(
        &MANAGED.replace(
            "      - {address: 198.18.1.12:80, weight: 1, upper_threshold: 10}\n",
            "drain_timeout: 10s\n",
        ),
        dir.path(),
    );
    assert_eq!(fewer.drain_timeout, Duration::from_secs(10));
    r.table.active.insert((vip, rs(12)), 2);
    let t0 = Instant::now();
    let outcome = r.remove_unconfigured(&fewer, t0);
    assert_eq!(
        outcome.actions,
        vec![Action::RemoveDestination(vip, rs(12))]
    );
    assert_eq!(r.table().dests[&vip][&rs(12)].weight, 0);
    assert_eq!(r.removing()[&(vip, rs(12))].active_connections, 2);
    // Connections open: it stays.
    let outcome = r.remove_unconfigured(&fewer, t0 + Duration::from_secs(5));
    assert!(outcome.actions.is_empty());
    // Put back in the config: no longer removed, its weight returns.
    pass(&mut r, &config, health_of([Up; 3]));
    assert!(r.removing().is_empty());
    assert_eq!(r.table().dests[&vip][&rs(12)].weight, 1);
    // Out again; a restart in the middle starts the removal again.
    r.remove_unconfigured(&fewer, t0);
    let table = std::mem::take(&mut r.table);
    let mut r = Reconciler::managed(table, false, &state_file).expect("state file");
    let outcome = r.remove_unconfigured(&fewer, t0);
    assert_eq!(
        outcome.actions,
        vec![Action::RemoveDestination(vip, rs(12))]
    );
    // The connections end: deleted.
    r.table.active.insert((vip, rs(12)), 0);
    let outcome = r.remove_unconfigured(&fewer, t0 + Duration::from_secs(1));
    assert_eq!(
        outcome.actions,
        vec![Action::DeleteDestination(vip, rs(12))]
    );
    assert!(!r.table().dests[&vip].contains_key(&rs(12)));
    assert!(r.removing().is_empty());
    // drain_timeout: deleted with its connections, and said so.
    pass(&mut r, &config, health_of([Up; 3]));
    r.table.active.insert((vip, rs(12)), 3);
    r.remove_unconfigured(&fewer, t0);
    let outcome = r.remove_unconfigured(&fewer, t0 + Duration::from_secs(10));
    assert_eq!(
        outcome.actions,
        vec![Action::DeleteDestination(vip, rs(12))]
    );
    assert_eq!(outcome.timed_out, vec![(vip, rs(12), 3)]);
}
