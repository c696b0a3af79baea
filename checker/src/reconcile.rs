//! From health to weights, and from weights to netlink calls.
//!
//! [`desired`] is pure: a real server that is up gets its configured
//! weight, one that is down gets 0, one not known yet is left alone, and
//! the quorum guard fails open. [`Reconciler`] compares that with the
//! table and changes only what differs, through the [`Table`] trait: a
//! fake in the tests, [`ipvs::Ipvs`] in production. Since it reads the
//! table every time, a weight changed out of band (`ipvsadm -e`) is put
//! back and reported as such, except a weight set to 0, which is taken as
//! a drain (`out_of_band: drain`, see [`crate::drain`]). A pass over a service costs one dump of it
//! (shared with managed mode's checks) and one request per weight that
//! differs, each sending back the entry just dumped with its new weight:
//! N real servers failing together cost one dump, not one per weight.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipvs::{DestinationConfig, DestinationKey, ServiceKey};
use rustc_hash::FxHashMap;

use crate::config::{OutOfBand, RealServer, SorryServer, VirtualService};
use crate::drain::By;
use crate::health::Health;

/// The part of IPVS the reconciler uses: one dump per service and pass,
/// and weights set from the entry just dumped, so a pass costs one dump
/// however many weights it changes.
pub trait Table {
    /// A service's destinations and their settings, like `ipvsadm -Ln -t
    /// VIP:PORT`.
    fn destinations(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, DestinationConfig)>, ipvs::Error>;
    /// Replaces a destination's settings, like `ipvsadm -e -t VIP:PORT -r
    /// RIP:PORT ...` (the kernel takes only whole entries).
    fn set_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<(), ipvs::Error>;
    /// How many times the table's netlink socket was replaced after an
    /// error left it unusable ([`ipvs::Ipvs::socket_reopens`]); a fake
    /// table has no socket.
    fn socket_reopens(&self) -> u64 {
        0
    }
}

impl Table for ipvs::Ipvs {
    fn destinations(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, DestinationConfig)>, ipvs::Error> {
        ipvs::Ipvs::destination_settings(self, service)
    }

    fn set_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<(), ipvs::Error> {
        ipvs::Ipvs::set_destination(self, service, destination, config)
    }

    fn socket_reopens(&self) -> u64 {
        ipvs::Ipvs::socket_reopens(self)
    }
}

/// A service's destinations as one dump found them (and as the pass that
/// made it changed them since).
pub type Current = Vec<(DestinationKey, DestinationConfig)>;

/// The weights a service's real servers should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The service.
    pub service: ServiceKey,
    /// Each configured real server and its weight; `None` while its health
    /// is unknown (it is left as it is).
    pub weights: Vec<(DestinationKey, Option<u32>)>,
    /// Fewer real servers are up than the quorum asks: the guard acts
    /// (fail open, or the sorry server).
    pub guard_active: bool,
    /// The sorry server, if configured, and the weight it should have: its
    /// own while the guard is active, else 0 (managed mode removes it).
    pub sorry: Option<(SorryServer, u32)>,
    /// The real servers drained by `out_of_band`: someone setting a
    /// non-zero weight undrains them.
    pub drained_out_of_band: Vec<DestinationKey>,
}

/// What [`desired`] needs to know of one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Its health.
    pub health: Health,
    /// When it last came back up from down, for slow start; `None` if it
    /// has not (an up after start-up is not ramped).
    pub recovered_at: Option<Instant>,
    /// Drained, and by what: weight 0 whatever its health.
    pub drained: Option<By>,
    /// The weight its `exec` check's program set by its exit status
    /// (`dynamic_weight`), in place of the configured one.
    pub program_weight: Option<u32>,
}

impl From<Health> for View {
    fn from(health: Health) -> Self {
        View {
            health,
            recovered_at: None,
            drained: None,
            program_weight: None,
        }
    }
}

/// Number of equal steps of a slow-start ramp.
pub const SLOW_START_STEPS: u32 = 10;

/// The weight `elapsed` into a slow start of `period` towards `weight`:
/// step k (1 to [`SLOW_START_STEPS`]) of the period gives k tenths of the
/// weight, rounded down but at least 1; from the end of the period, the
/// weight itself. Never more than `weight`; 0 stays 0.
pub fn ramp(weight: u32, elapsed: Duration, period: Duration) -> u32 {
    if weight == 0 || elapsed >= period || period.is_zero() {
        return weight;
    }
    let step = (elapsed.as_nanos() * u128::from(SLOW_START_STEPS) / period.as_nanos()) as u64 + 1;
    let step = step.min(u64::from(SLOW_START_STEPS));
    let w = u64::from(weight) * step / u64::from(SLOW_START_STEPS);
    (w.max(1)).min(u64::from(weight)) as u32
}

/// What a service's real servers should weigh at `now`, given each one's
/// health (and recovery time, for slow start) and drain. A drained real
/// server weighs 0, counts as not up for the quorum, and stays at 0 when
/// the guard fails open.
pub fn desired(
    service: &VirtualService,
    view: impl Fn(&DestinationKey) -> View,
    now: Instant,
) -> Desired {
    let views: Vec<View> = service
        .real_servers
        .iter()
        .map(|rs| view(&rs.key))
        .collect();
    // For the quorum a drained real server is down, whatever its health.
    let count = |h: Health| {
        views
            .iter()
            .filter(|v| v.drained.map_or(v.health, |_| Health::Down) == h)
            .count() as u64
    };
    let (up, down, unknown) = (
        count(Health::Up),
        count(Health::Down),
        count(Health::Unknown),
    );
    // Below quorum only once enough real servers are known down that the
    // unknown ones could not make it up: nothing acts on a start-up.
    let guard_active = down > 0
        && service
            .quorum
            .is_some_and(|q| up + unknown < u64::from(q.min_up));
    let sorry_server = service.quorum.and_then(|q| q.sorry_server);
    // Fail open (no sorry server): with fewer healthy real servers than
    // the quorum, zeroing the others would leave too few (or none) to
    // serve, so none is zeroed. With a sorry server, the failed ones go to
    // 0 and the sorry server takes their place.
    let hold = guard_active && sorry_server.is_none();
    let drained_out_of_band = service
        .real_servers
        .iter()
        .zip(&views)
        .filter(|(_, v)| v.drained == Some(By::OutOfBand))
        .map(|(rs, _)| rs.key)
        .collect();
    let weights = service
        .real_servers
        .iter()
        .zip(views)
        .map(|(rs, v)| (rs.key, weight(rs, &v, hold, now)))
        .collect();
    Desired {
        service: service.key,
        weights,
        guard_active,
        sorry: sorry_server.map(|s| (s, if guard_active { s.weight } else { 0 })),
        drained_out_of_band,
    }
}

/// The weight real server `rs` should have at `now`, seen as `v`, its
/// service holding its failed real servers up (`hold`: below the quorum,
/// failing open); `None` while its health is unknown (it is left as it
/// is).
pub fn weight(rs: &RealServer, v: &View, hold: bool, now: Instant) -> Option<u32> {
    if v.drained.is_some() {
        return Some(0);
    }
    let full = v.program_weight.unwrap_or(rs.weight);
    match v.health {
        Health::Unknown => None,
        Health::Up => Some(match (rs.slow_start, v.recovered_at) {
            (Some(period), Some(at)) => ramp(full, now.saturating_duration_since(at), period),
            _ => full,
        }),
        Health::Down if hold => Some(rs.weight),
        Health::Down => Some(0),
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
    /// How the table forwards to each configured real server found in it.
    pub forwards: Vec<(DestinationKey, ipvs::ForwardMethod)>,
    /// Real servers someone set to weight 0 (`out_of_band: drain`): left
    /// at 0, to be recorded as drained by `out_of_band`.
    pub drained_out_of_band: Vec<DestinationKey>,
    /// Real servers drained by `out_of_band` that someone set to a
    /// non-zero weight: to be undrained.
    pub undrained_out_of_band: Vec<DestinationKey>,
}

/// What managed mode created when a reload left it for weights mode:
/// still in the table, still recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftBehind {
    /// The state file that records them.
    pub state_file: PathBuf,
    /// The services and real servers.
    pub owned: Owned,
}

impl LeftBehind {
    /// The services, as `ipvsadm -Ln` names them, comma-separated.
    pub fn services(&self) -> String {
        let names: Vec<String> = self.owned.services.iter().map(|s| s.to_string()).collect();
        names.join(", ")
    }

    /// The real servers, as `RIP in SERVICE`, comma-separated.
    pub fn real_servers(&self) -> String {
        let names: Vec<String> = self
            .owned
            .destinations
            .iter()
            .map(|(s, d)| format!("{d} in {s}"))
            .collect();
        names.join(", ")
    }
}

/// Keeps the table's weights at the desired ones (and, in managed mode,
/// its services and real servers at the config's: see [`managed`]).
#[derive(Debug)]
pub struct Reconciler<T> {
    table: T,
    dry_run: bool,
    /// The weight last set (or, in dry-run, announced) per real server,
    /// or the one first seen while its health was unknown; looked up for
    /// every real server at every pass, so with FxHash (the
    /// keys are the config's and the kernel's, not a peer's).
    last: FxHashMap<(ServiceKey, DestinationKey), u32>,
    /// What managed mode created.
    owned: Owned,
    /// `owned` as last written to the state file.
    saved: Owned,
    /// Managed mode's state file; `None` in weights mode.
    state_file: Option<PathBuf>,
    /// What a weight changed out of band does.
    out_of_band: OutOfBand,
    /// Managed mode's real servers on their way out.
    removing: std::collections::BTreeMap<(ServiceKey, DestinationKey), Removal>,
}

impl<T: Table> Reconciler<T> {
    /// A reconciler over `table`; with `dry_run` it reads but never writes.
    pub fn new(table: T, dry_run: bool) -> Self {
        Reconciler {
            table,
            dry_run,
            last: FxHashMap::default(),
            owned: Owned::default(),
            saved: Owned::default(),
            state_file: None,
            out_of_band: OutOfBand::default(),
            removing: Default::default(),
        }
    }

    /// Follows the config's `out_of_band`.
    pub fn set_out_of_band(&mut self, out_of_band: OutOfBand) {
        self.out_of_band = out_of_band;
    }

    /// A reconciler for managed mode, which knows what it created from
    /// `state_file` (missing on the first start).
    pub fn managed(table: T, dry_run: bool, state_file: &Path) -> Result<Self, StateFileError> {
        let owned = Owned::load(state_file)?;
        Ok(Reconciler {
            saved: owned.clone(),
            owned,
            state_file: Some(state_file.to_owned()),
            ..Reconciler::new(table, dry_run)
        })
    }

    /// Whether this is a dry run.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The table, for tests.
    pub fn table(&self) -> &T {
        &self.table
    }

    /// The table, to read what the reconciler does not (service flags).
    pub fn table_mut(&mut self) -> &mut T {
        &mut self.table
    }

    /// Follows a reload: managed mode's state file (`None` for weights
    /// mode). A new file is read; the current one keeps what is known.
    ///
    /// Leaving managed mode returns what it created, if anything: weights
    /// mode deletes nothing, so those entries stay in the table (deleting
    /// them on a reload would take traffic away), and the state file stays
    /// as it is, so a reload back to managed mode with it owns them again.
    /// The caller warns, naming them, so that they are not left unseen.
    pub fn set_state_file(
        &mut self,
        state_file: Option<&Path>,
    ) -> Result<Option<LeftBehind>, StateFileError> {
        if self.state_file.as_deref() == state_file {
            return Ok(None);
        }
        let mut left = None;
        match (state_file, self.state_file.take()) {
            (Some(path), _) => {
                let owned = Owned::load(path)?;
                self.saved = owned.clone();
                self.owned = owned;
            }
            (None, Some(old)) => {
                self.saved = Owned::default();
                let owned = std::mem::take(&mut self.owned);
                if owned != Owned::default() {
                    left = Some(LeftBehind {
                        state_file: old,
                        owned,
                    });
                }
            }
            (None, None) => {}
        }
        self.state_file = state_file.map(Path::to_owned);
        Ok(left)
    }

    /// Brings one service's weights to `desired`: one dump of the
    /// service, then one request per weight that differs. A missing
    /// service is an error; everything else is reported in the outcome.
    pub fn reconcile(&mut self, desired: &Desired) -> Result<Outcome, ipvs::Error> {
        let current = self.table.destinations(&desired.service)?;
        Ok(self.reconcile_from(desired, current))
    }

    /// [`Reconciler::reconcile`] from `current`, the service's entries as
    /// just dumped (by managed mode's [`Reconciler::ensure`], which needs
    /// the same dump): each weight is set by sending its dumped entry back
    /// with the new weight, with no second read.
    pub fn reconcile_from(&mut self, desired: &Desired, current: Current) -> Outcome {
        let current: FxHashMap<DestinationKey, DestinationConfig> = current.into_iter().collect();
        let mut outcome = Outcome::default();
        let sorry = desired.sorry.map(|(s, w)| (s.key, Some(w)));
        let real_servers = desired.weights.len();
        for (i, (destination, want)) in desired.weights.iter().chain(sorry.iter()).enumerate() {
            let entry = current.get(destination).copied();
            if let Some(entry) = entry {
                outcome.weights.push((*destination, entry.weight));
                outcome.forwards.push((*destination, entry.forward));
            }
            let Some(want) = *want else {
                // Its health is not known yet, and its weight is left as
                // it is; but what this pass saw is what the checker knows
                // of it, so that a change by someone else before its
                // first result (an operator's drain while the checker
                // starts) is out of band, not a weight to set back.
                if let (Some(entry), false) = (entry, self.dry_run) {
                    self.last
                        .entry((desired.service, *destination))
                        .or_insert(entry.weight);
                }
                continue;
            };
            let Some(entry) = entry else {
                // A sorry server not in use may well be absent (managed
                // mode removes it).
                if want != 0 || desired.sorry.is_none_or(|(s, _)| s.key != *destination) {
                    outcome.missing.push(*destination);
                }
                continue;
            };
            let have = entry.weight;
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
            // Someone changed it since this checker last set it: a 0 is a
            // drain even when this pass wants 0 too (a health flip in the
            // meantime must not make it the checker's own 0, which the
            // next recovery would undo). The sorry server is not drained:
            // it is set back. (The real servers come first, the sorry
            // server last: a search of the real servers for each would
            // make every pass quadratic in a service's size.)
            let real_server =
                || i < real_servers || desired.weights.iter().any(|(d, _)| d == destination);
            if self.out_of_band == OutOfBand::Drain
                && last.is_some_and(|l| l != have)
                && real_server()
            {
                if have == 0 && !desired.drained_out_of_band.contains(destination) {
                    outcome.drained_out_of_band.push(*destination);
                    self.last.insert(key, 0);
                    continue;
                }
                if have != 0 && desired.drained_out_of_band.contains(destination) {
                    outcome.undrained_out_of_band.push(*destination);
                    self.last.insert(key, have);
                    continue;
                }
            }
            if have == want {
                self.last.insert(key, want);
                continue;
            }
            let config = entry.with_weight(want);
            match self
                .table
                .set_destination(&desired.service, destination, &config)
            {
                Ok(()) => {
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
        outcome
    }
}

pub mod managed;
pub mod memory;
pub mod owned;
pub mod quiescent;
pub mod vip_probes;

pub use managed::{Action, ManagedOutcome, ManagedTable, Removal};
pub use owned::{Owned, StateFileError};
pub use vip_probes::VipProbes;

#[cfg(test)]
mod tests;
