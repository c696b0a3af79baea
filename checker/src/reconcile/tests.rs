//! The reconciler against a fake table.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::config;

/// An IPVS table in memory that records every write.
#[derive(Debug, Default)]
struct FakeTable {
    weights: BTreeMap<ServiceKey, BTreeMap<DestinationKey, u32>>,
    writes: Vec<(DestinationKey, u32)>,
}

impl Table for FakeTable {
    fn weights(&mut self, service: &ServiceKey) -> Result<Vec<(DestinationKey, u32)>, ipvs::Error> {
        self.weights
            .get(service)
            .map(|d| d.iter().map(|(k, w)| (*k, *w)).collect())
            .ok_or(ipvs::Error::ServiceNotFound(*service))
    }

    fn set_weight(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        weight: u32,
    ) -> Result<u32, ipvs::Error> {
        let slot = self
            .weights
            .get_mut(service)
            .and_then(|d| d.get_mut(destination))
            .ok_or(ipvs::Error::DestinationNotFound {
                service: *service,
                destination: *destination,
            })?;
        self.writes.push((*destination, weight));
        Ok(std::mem::replace(slot, weight))
    }
}

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
fn table(weights: [u32; 3]) -> FakeTable {
    let mut t = FakeTable::default();
    let d = t.weights.entry(service().key).or_default();
    for (n, w) in [11, 12, 13].into_iter().zip(weights) {
        d.insert(rs(n), w);
    }
    t
}

fn health_of(states: [Health; 3]) -> impl Fn(&DestinationKey) -> Health {
    move |d| match d.addr.ip().to_string().as_str() {
        "198.18.1.11" => states[0],
        "198.18.1.12" => states[1],
        _ => states[2],
    }
}

fn weights(t: &FakeTable) -> Vec<u32> {
    t.weights
        .values()
        .flat_map(|d| d.values().copied())
        .collect()
}

use Health::{Down, Unknown, Up};

/// An outcome that changed nothing and saw rs11, rs12, rs13 at `w`.
fn seen(w: [u32; 3]) -> Outcome {
    Outcome {
        weights: vec![(rs(11), w[0]), (rs(12), w[1]), (rs(13), w[2])],
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
    r.table.weights.values_mut().for_each(|d| {
        d.insert(rs(11), 7);
    });
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
    t.weights.values_mut().for_each(|d| {
        d.remove(&rs(13));
    });
    let mut r = Reconciler::new(t, false);
    let d = desired(&service(), health_of([Up, Up, Down]));
    assert_eq!(r.reconcile(&d).expect("reconcile").missing, vec![rs(13)]);

    let mut empty = Reconciler::new(FakeTable::default(), false);
    let e = empty.reconcile(&d).expect_err("no service");
    assert_eq!(e.to_string(), "service TCP 198.18.0.10:80 does not exist");
}
