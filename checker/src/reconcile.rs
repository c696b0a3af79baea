//! From health to weights, and from weights to netlink calls.
//!
//! [`desired`] is pure: a real server that is up gets its configured
//! weight, one that is down gets 0, one not known yet is left alone, and
//! the quorum guard fails open. [`Reconciler`] compares that with the
//! table and changes only what differs, through the [`Table`] trait: a
//! fake in the tests, [`ipvs::Ipvs`] in production. Since it reads the
//! table every time, a weight changed out of band (`ipvsadm -e`) is put
//! back and reported as such.

use std::collections::HashMap;

use ipvs::{DestinationKey, ServiceKey};

use crate::config::VirtualService;
use crate::health::Health;

/// The part of IPVS the reconciler uses.
pub trait Table {
    /// The destinations of a service and their weights, like `ipvsadm -Ln
    /// -t VIP:PORT`.
    fn weights(&mut self, service: &ServiceKey) -> Result<Vec<(DestinationKey, u32)>, ipvs::Error>;
    /// Sets one weight, like `ipvsadm -e -t VIP:PORT -r RIP:PORT -w N`;
    /// returns the previous one.
    fn set_weight(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        weight: u32,
    ) -> Result<u32, ipvs::Error>;
}

impl Table for ipvs::Ipvs {
    fn weights(&mut self, service: &ServiceKey) -> Result<Vec<(DestinationKey, u32)>, ipvs::Error> {
        Ok(self
            .destinations(service)?
            .into_iter()
            .map(|d| (d.key, d.config.weight))
            .collect())
    }

    fn set_weight(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        weight: u32,
    ) -> Result<u32, ipvs::Error> {
        ipvs::Ipvs::set_weight(self, service, destination, weight)
    }
}

/// The weights a service's real servers should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The service.
    pub service: ServiceKey,
    /// Each configured real server and its weight; `None` while its health
    /// is unknown (it is left as it is).
    pub weights: Vec<(DestinationKey, Option<u32>)>,
    /// The quorum guard holds down real servers at their weight.
    pub guard_active: bool,
}

/// What a service's real servers should weigh, given their health.
pub fn desired(service: &VirtualService, health: impl Fn(&DestinationKey) -> Health) -> Desired {
    let states: Vec<Health> = service
        .real_servers
        .iter()
        .map(|rs| health(&rs.key))
        .collect();
    let up = states.iter().filter(|h| **h == Health::Up).count();
    let any_down = states.contains(&Health::Down);
    // Fail open: with fewer healthy real servers than the quorum, zeroing
    // the others would leave too few (or none) to serve, so none is zeroed.
    let guard_active = any_down
        && service
            .quorum
            .is_some_and(|q| (up as u64) < u64::from(q.min_up));
    let weights = service
        .real_servers
        .iter()
        .zip(states)
        .map(|(rs, h)| {
            let weight = match h {
                Health::Unknown => None,
                Health::Up => Some(rs.weight),
                Health::Down if guard_active => Some(rs.weight),
                Health::Down => Some(0),
            };
            (rs.key, weight)
        })
        .collect();
    Desired {
        service: service.key,
        weights,
        guard_active,
    }
}

/// One weight the reconciler changed (or, in dry-run, would change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The service.
    pub service: ServiceKey,
    /// The real server.
    pub destination: DestinationKey,
    /// The weight in the table before.
    pub from: u32,
    /// The weight set.
    pub to: u32,
    /// The weight in the table was not the one this checker last set:
    /// someone changed it out of band.
    pub out_of_band: bool,
}

/// What one reconciliation of a service did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Weights changed.
    pub changes: Vec<Change>,
    /// Configured real servers that are not in the table (weights mode
    /// only changes what is there).
    pub missing: Vec<DestinationKey>,
    /// Weights that could not be set, and why.
    pub errors: Vec<(DestinationKey, String)>,
    /// The weight each configured real server found in the table has
    /// after this pass (in a dry run, the weight it had).
    pub weights: Vec<(DestinationKey, u32)>,
}

/// Keeps the table's weights at the desired ones.
#[derive(Debug)]
pub struct Reconciler<T> {
    table: T,
    dry_run: bool,
    /// The weight last set (or, in dry-run, announced) per real server.
    last: HashMap<(ServiceKey, DestinationKey), u32>,
}

impl<T: Table> Reconciler<T> {
    /// A reconciler over `table`; with `dry_run` it reads but never writes.
    pub fn new(table: T, dry_run: bool) -> Self {
        Reconciler {
            table,
            dry_run,
            last: HashMap::new(),
        }
    }

    /// Whether this is a dry run.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The table, for tests.
    pub fn table(&self) -> &T {
        &self.table
    }

    /// Brings one service's weights to `desired`. A missing service is an
    /// error; everything else is reported in the outcome.
    pub fn reconcile(&mut self, desired: &Desired) -> Result<Outcome, ipvs::Error> {
        let current: HashMap<DestinationKey, u32> =
            self.table.weights(&desired.service)?.into_iter().collect();
        let mut outcome = Outcome::default();
        for (destination, want) in &desired.weights {
            let have = current.get(destination).copied();
            if let Some(have) = have {
                outcome.weights.push((*destination, have));
            }
            let Some(want) = *want else { continue };
            let Some(have) = have else {
                outcome.missing.push(*destination);
                continue;
            };
            let key = (desired.service, *destination);
            let last = self.last.get(&key).copied();
            if self.dry_run {
                // The table does not change in a dry run: announce each
                // intended change once, not on every pass.
                if have != want && last != Some(want) {
                    outcome.changes.push(Change {
                        service: desired.service,
                        destination: *destination,
                        from: have,
                        to: want,
                        out_of_band: false,
                    });
                }
                self.last.insert(key, want);
                continue;
            }
            if have == want {
                self.last.insert(key, want);
                continue;
            }
            match self.table.set_weight(&desired.service, destination, want) {
                Ok(_) => {
                    if let Some(last) = outcome.weights.last_mut() {
                        last.1 = want;
                    }
                    outcome.changes.push(Change {
                        service: desired.service,
                        destination: *destination,
                        from: have,
                        to: want,
                        out_of_band: last.is_some_and(|l| l != have),
                    });
                    self.last.insert(key, want);
                }
                Err(e) => outcome.errors.push((*destination, e.to_string())),
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
