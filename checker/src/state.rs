//! What the daemon knows, in one place: each real server's health state
//! machine, last probe, last error, weights (configured, desired, seen in
//! the table) and counters; each service's quorum guard; the netlink error
//! and reload counters.
//!
//! The daemon is the only writer: it records probe results
//! ([`State::observe`]) and reconciliations ([`State::record`]) here, and
//! decides weights from the health kept here. The web side
//! ([`crate::metrics`], [`crate::web`]) only reads it, under the same
//! lock, so `/metrics`, `/status` and the weights set never disagree.
//! Critical sections are short: no netlink call or I/O is made under the
//! lock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ipvs::{DestinationKey, ServiceKey};
use ipvs_common::exposition::Histogram;
use parking_lot::{Mutex, MutexGuard};
use rustc_hash::FxHashMap;

use crate::config::{Config, Mode, Quorum};
use crate::drain::{Drain, Drains};
use crate::health::{Health, HealthState};
use crate::prober::{Phases, ProbeError, Success};
use crate::reconcile::{Action, Desired, Outcome, Owned, Removal};

mod limits;
mod weights;

pub use limits::Limits;

/// Buckets of `ipvs_checker_probe_duration_seconds`: 1 ms to 10 s, which
/// covers a loopback answer as well as the longest timeout in practice.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The daemon's state behind a lock, shared with the web endpoint.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<State>>);

impl Shared {
    /// A state for `config`, as the daemon starts with it.
    pub fn new(config: &Config) -> Self {
        let mut state = State::default();
        state.reset(config);
        Shared(Arc::new(Mutex::new(state)))
    }

    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock()
    }

    /// A copy of the state as it is now, for a reader that takes long
    /// over it (a scrape writing the metrics of thousands of real
    /// servers): the lock is held while it is copied, not while the copy
    /// is read, so that scrapes do not hold up the loop's updates.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }
}

/// Everything `/metrics` and `/status` show.
#[derive(Debug, Clone)]
pub struct State {
    /// The configured services, in file order; private, since `index`
    /// keeps positions into it ([`State::services`] reads it).
    services: Vec<ServiceState>,
    /// Where each (service, real server) is in `services`: looked up for
    /// every probe result and every real server at every pass, so with
    /// FxHash (the keys come from the config, not from a peer).
    index: FxHashMap<(ServiceKey, DestinationKey), (usize, usize)>,
    /// Failed reads of a service's destinations from IPVS.
    pub netlink_read_errors: u64,
    /// Failed weight changes.
    pub netlink_set_errors: u64,
    /// Times the netlink socket was replaced after an error left it
    /// unusable.
    pub netlink_socket_reopens: u64,
    /// Whether the last configuration (re)load succeeded.
    pub reload_successful: bool,
    /// When a configuration was last loaded successfully.
    pub reload_success_time: SystemTime,
    /// Managed mode's changes by kind ([`Action::name`]).
    pub managed_actions: BTreeMap<&'static str, u64>,
    /// Managed mode's failed requests (create, update, delete, state file).
    pub managed_errors: u64,
    /// The configured mode.
    pub mode: Mode,
    /// Managed mode's state file.
    pub state_file: Option<PathBuf>,
    /// What managed mode created (as of its last pass; empty in weights
    /// mode).
    pub owned: Owned,
    /// Managed mode's real servers that left the config, at weight 0
    /// until their connections end (as of its last pass).
    pub removing: BTreeMap<(ServiceKey, DestinationKey), Removal>,
    /// How many probes and programs may run at once now.
    pub limits: Limits,
    /// The drains of the drain file, as last written there.
    drains: Drains,
    /// The drains by a file in `maintenance_dir`, as last read.
    maintenance: BTreeMap<(ServiceKey, DestinationKey), Drain>,
    /// Whether the loop has reconciled every configured service once:
    /// `/-/ready` answers 200 from then on.
    pub reconciled: bool,
    /// The notify hooks' counters, which their own thread updates.
    pub hooks: Arc<crate::notify::counts::Stats>,
    /// The loop's passes over the table.
    pub table_passes: TablePasses,
}

/// The loop's passes comparing every service with the table: how many,
/// their CPU, and the wait before the next (a second, longer after a
/// pass that took much CPU).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TablePasses {
    /// Passes made.
    pub count: u64,
    /// The CPU time they took on the loop's thread.
    pub cpu: Duration,
    /// The wait the last one set before the next.
    pub wait: Duration,
}

impl TablePasses {
    /// Counts a pass that took `cpu` and set `wait`.
    pub fn passed(&mut self, cpu: Duration, wait: Duration) {
        self.count += 1;
        self.cpu = self.cpu.saturating_add(cpu);
        self.wait = wait;
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            services: Vec::new(),
            index: FxHashMap::default(),
            netlink_read_errors: 0,
            netlink_set_errors: 0,
            netlink_socket_reopens: 0,
            reload_successful: true,
            reload_success_time: SystemTime::now(),
            managed_actions: BTreeMap::new(),
            managed_errors: 0,
            mode: Mode::Weights,
            state_file: None,
            owned: Owned::default(),
            removing: BTreeMap::new(),
            limits: Limits::default(),
            drains: Drains::default(),
            maintenance: BTreeMap::new(),
            reconciled: false,
            hooks: Arc::default(),
            table_passes: TablePasses::default(),
        }
    }
}

/// One virtual service.
#[derive(Debug, Clone)]
pub struct ServiceState {
    /// Which IPVS service.
    pub key: ServiceKey,
    /// Its quorum guard, if configured.
    pub quorum: Option<Quorum>,
    /// Fewer real servers are up than the quorum asks, so the guard acts:
    /// it holds failed real servers at their weight, or puts the sorry
    /// server in (as of the last reconciliation).
    pub guard_active: bool,
    /// The sorry server's weight in the table at the last reconciliation
    /// (`None`: not configured, or not in the table).
    pub sorry_weight: Option<u32>,
    /// Its real servers, in file order.
    pub backends: Vec<Backend>,
    /// Times its real servers were hurried (see [`Hurry`]), by kind:
    /// counted since the checker started, kept over reloads.
    pub hurries: HurryCounts,
}

/// What one probe result changed (see [`State::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The new health, if it flipped.
    pub flip: Option<Health>,
    /// The health before.
    pub was: Health,
    /// Whether an `exec` check's program set another weight
    /// (`dynamic_weight`).
    pub weight_moved: bool,
}

/// Why the probes of a service's real servers ran ahead of their ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hurry {
    /// Real servers began to fail: the others were asked at once whether
    /// they refuse connections.
    Failing,
    /// One came back: the failed ones were probed at once.
    Recovered,
}

/// A service's hurries, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HurryCounts {
    pub failing: u64,
    pub recovered: u64,
}

/// One real server of a service.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Which IPVS destination.
    pub key: DestinationKey,
    /// The rise/fall state machine: the health the weights follow.
    pub health: HealthState,
    /// When the health last changed (or the server was first configured).
    pub health_since: SystemTime,
    /// When it last came back up from down: its slow start begins there.
    pub recovered_at: Option<Instant>,
    /// The weight it gets while healthy.
    pub configured_weight: u32,
    /// The weight the checker wants; `None` while the health is unknown.
    pub desired_weight: Option<u32>,
    /// The weight in the table after the last reconciliation (as it read
    /// it, with the change it made); `None` before one, or when the table
    /// could not be read or has no such destination.
    pub current_weight: Option<u32>,
    /// The last probe's result, if there was one.
    pub last_probe: Option<bool>,
    /// The last failed probe, if any (kept after recovery).
    pub last_error: Option<LastError>,
    /// The leaf certificate's not-after (Unix seconds) from the last
    /// successful HTTPS probe.
    pub cert_not_after: Option<i64>,
    /// Health flips counted (unknown -> up or down included).
    pub transitions: u64,
    /// Probes that timed out while the checker itself was late (see
    /// `daemon::lag`): neither a pass nor a failure.
    pub late_probes: u64,
    /// Probes that could not make their socket for want of the checker's
    /// own resources (EMFILE, ENFILE, ENOBUFS, ENOMEM, ENOSPC): neither a
    /// pass nor a failure.
    pub exhausted_probes: u64,
    /// Weights set because the health changed.
    pub changes_health: u64,
    /// Weights set back because the quorum guard holds the server.
    pub changes_quorum_guard: u64,
    /// Weights set back after someone changed them out of band.
    pub changes_out_of_band: u64,
    /// Durations of the probes' phases, by [`Phase`](crate::prober::Phase) (connect, tls,
    /// response); a phase no probe went through yet has none.
    pub durations: [Option<Histogram>; 3],
    /// The weight its `exec` check's program last set by its exit status
    /// (`dynamic_weight`), in place of the configured one.
    pub program_weight: Option<u32>,
    /// The type of each of its checks, in config order.
    pub check_kinds: Vec<&'static str>,
    /// Each check's failure reason in the last probe (`None`: passed);
    /// empty before the first.
    pub check_failures: Vec<Option<&'static str>>,
}

/// Why a real server's probe last failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// The short reason ([`ProbeError::reason`]).
    pub reason: &'static str,
    /// The whole message.
    pub message: String,
    /// The first failure of the current run of failures with this reason.
    pub since: SystemTime,
    /// The latest failure.
    pub last: SystemTime,
}

impl Backend {
    fn new(key: DestinationKey, rise: u32, fall: u32, weight: u32, now: SystemTime) -> Self {
        Backend {
            key,
            health: HealthState::new(rise, fall),
            health_since: now,
            recovered_at: None,
            configured_weight: weight,
            desired_weight: None,
            current_weight: None,
            last_probe: None,
            last_error: None,
            cert_not_after: None,
            transitions: 0,
            late_probes: 0,
            exhausted_probes: 0,
            changes_health: 0,
            changes_quorum_guard: 0,
            changes_out_of_band: 0,
            durations: [None, None, None],
            program_weight: None,
            check_kinds: Vec::new(),
            check_failures: Vec::new(),
        }
    }
}

impl State {
    /// Follows a new configuration: real servers that stay keep their
    /// health, history and counters (with the new thresholds and weight),
    /// new ones start unknown, removed ones are dropped.
    pub fn reset(&mut self, config: &Config) {
        let now = SystemTime::now();
        self.mode = config.mode;
        self.state_file = config.state_file.clone();
        let mut old: FxHashMap<(ServiceKey, DestinationKey), Backend> = FxHashMap::default();
        let mut old_guard = FxHashMap::default();
        for service in self.services.drain(..) {
            old_guard.insert(
                service.key,
                (service.guard_active, service.sorry_weight, service.hurries),
            );
            for backend in service.backends {
                old.insert((service.key, backend.key), backend);
            }
        }
        self.index.clear();
        for (i, service) in config.services.iter().enumerate() {
            let mut backends = Vec::with_capacity(service.real_servers.len());
            for (j, rs) in service.real_servers.iter().enumerate() {
                let (rise, fall) = (rs.timing.rise, rs.timing.fall);
                let mut backend = old
                    .remove(&(service.key, rs.key))
                    .unwrap_or_else(|| Backend::new(rs.key, rise, fall, rs.weight, now));
                backend.health.set_thresholds(rise, fall);
                backend.configured_weight = rs.weight;
                let kinds: Vec<_> = rs.checks.iter().map(|c| c.check.kind.name()).collect();
                if kinds != backend.check_kinds {
                    // Other checks: the last results were of the old ones.
                    backend.check_failures.clear();
                    backend.check_kinds = kinds;
                }
                let dynamic = rs.checks.iter().any(|c| {
                    matches!(&c.check.kind, crate::config::CheckKind::Exec(e) if e.dynamic_weight)
                });
                if !dynamic {
                    backend.program_weight = None;
                }
                backends.push(backend);
                self.index.insert((service.key, rs.key), (i, j));
            }
            let (guard_active, sorry_weight, hurries) = old_guard
                .get(&service.key)
                .copied()
                .unwrap_or((false, None, HurryCounts::default()));
            self.services.push(ServiceState {
                key: service.key,
                quorum: service.quorum,
                guard_active,
                sorry_weight: sorry_weight
                    .filter(|_| service.quorum.and_then(|q| q.sorry_server).is_some()),
                backends,
                hurries,
            });
        }
    }

    /// The configured services, in file order.
    pub fn services(&self) -> &[ServiceState] {
        &self.services
    }

    /// The configured service `key`, if any.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceState> {
        self.services.iter().find(|s| s.key == *key)
    }

    /// The real server `destination` of `service`, if configured.
    pub fn backend(&self, service: &ServiceKey, destination: &DestinationKey) -> Option<&Backend> {
        let (i, j) = *self.index.get(&(*service, *destination))?;
        Some(&self.services[i].backends[j])
    }

    fn backend_mut(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
    ) -> Option<&mut Backend> {
        let (i, j) = *self.index.get(&(*service, *destination))?;
        Some(&mut self.services[i].backends[j])
    }

    /// Records one probe result: its phases' durations and each check's
    /// result (`each`, `None`: passed, in config order); what it changed,
    /// `None` for a real server no longer configured. One lookup for all
    /// of it: this runs for every probe.
    pub fn observe(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        result: &Result<Success, ProbeError>,
        phases: &Phases,
        each: &[Option<&'static str>],
        now: SystemTime,
    ) -> Option<Observed> {
        let backend = self.backend_mut(service, destination)?;
        for (phase, took) in phases.iter() {
            backend.durations[phase as usize]
                .get_or_insert_with(|| Histogram::new(&DURATION_BUCKETS))
                .observe(took.as_secs_f64());
        }
        if each.len() == backend.check_kinds.len() {
            backend.check_failures.clear();
            backend.check_failures.extend_from_slice(each);
        }
        let was_failing = backend.last_probe == Some(false);
        backend.last_probe = Some(result.is_ok());
        let weight_before = backend.program_weight;
        match result {
            Ok(success) => {
                if success.cert_not_after.is_some() {
                    backend.cert_not_after = success.cert_not_after;
                }
                if success.weight.is_some() {
                    backend.program_weight = success.weight;
                }
            }
            Err(e) => {
                let since = match &backend.last_error {
                    // The same failure going on: it started back then.
                    Some(last) if was_failing && last.reason == e.reason() => last.since,
                    _ => now,
                };
                backend.last_error = Some(LastError {
                    reason: e.reason(),
                    message: e.to_string(),
                    since,
                    last: now,
                });
            }
        }
        let was = backend.health.health();
        let flip = backend.health.observe(result.is_ok());
        if let Some(health) = flip {
            backend.transitions += 1;
            backend.health_since = now;
            backend.recovered_at = (was == Health::Down && health == Health::Up).then(Instant::now);
        }
        Some(Observed {
            flip,
            was,
            weight_moved: backend.program_weight != weight_before,
        })
    }

    /// Counts a hurry of `service`'s real servers.
    pub fn observe_hurry(&mut self, service: &ServiceKey, hurry: Hurry) {
        if let Some(s) = self.services.iter_mut().find(|s| s.key == *service) {
            match hurry {
                Hurry::Failing => s.hurries.failing += 1,
                Hurry::Recovered => s.hurries.recovered += 1,
            }
        }
    }

    /// Records a probe that timed out while the checker itself was late:
    /// counted, and nothing else (not its health, not its last result,
    /// not its phases' durations, which are the checker's as much as the
    /// server's).
    pub fn observe_late(&mut self, service: &ServiceKey, destination: &DestinationKey) {
        if let Some(backend) = self.backend_mut(service, destination) {
            backend.late_probes += 1;
        }
    }

    /// Records a probe that could not make its socket for want of the
    /// checker's own resources: neither a pass nor a failure.
    pub fn observe_exhausted(&mut self, service: &ServiceKey, destination: &DestinationKey) {
        if let Some(backend) = self.backend_mut(service, destination) {
            backend.exhausted_probes += 1;
        }
    }

    /// The drain of `destination` in `service`, if drained: the drain
    /// file's (the admin API's or `out_of_band`'s) first, then a
    /// maintenance file's.
    pub fn drain(&self, service: &ServiceKey, destination: &DestinationKey) -> Option<&Drain> {
        self.drains
            .get(service, destination)
            .or_else(|| self.maintenance.get(&(*service, *destination)))
    }

    /// The drains of the drain file.
    pub fn drains(&self) -> &Drains {
        &self.drains
    }

    /// Follows the drain file, as just written.
    pub fn set_drains(&mut self, drains: Drains) {
        self.drains = drains;
    }

    /// The drains by maintenance file, by service and real server.
    pub fn maintenance(&self) -> &BTreeMap<(ServiceKey, DestinationKey), Drain> {
        &self.maintenance
    }

    /// Follows `maintenance_dir`, as just read.
    pub fn set_maintenance(&mut self, drains: BTreeMap<(ServiceKey, DestinationKey), Drain>) {
        self.maintenance = drains;
    }

    /// Records a managed pass: its changes and failures.
    pub fn record_managed(&mut self, actions: &[Action], errors: usize) {
        for action in actions {
            *self.managed_actions.entry(action.name()).or_default() += 1;
        }
        self.managed_errors += errors as u64;
    }

    /// Records a reconciliation of `want.service`: `outcome` if the table
    /// could be read, else `None`. In a dry run nothing is counted as
    /// changed, since nothing was.
    pub fn record(&mut self, want: &Desired, outcome: Option<&Outcome>, dry_run: bool) {
        let Some(service) = self.services.iter_mut().find(|s| s.key == want.service) else {
            return;
        };
        // Looked up by key: a service may have hundreds of real servers,
        // and this runs on every pass.
        let seen: FxHashMap<DestinationKey, u32> = outcome
            .map(|o| o.weights.iter().copied().collect())
            .unwrap_or_default();
        let desired: FxHashMap<DestinationKey, Option<u32>> =
            want.weights.iter().copied().collect();
        service.guard_active = want.guard_active;
        service.sorry_weight = want
            .sorry
            .and_then(|(sorry, _)| seen.get(&sorry.key).copied());
        for backend in &mut service.backends {
            backend.desired_weight = desired.get(&backend.key).copied().flatten();
            backend.current_weight = seen.get(&backend.key).copied();
        }
        let Some(outcome) = outcome else {
            self.netlink_read_errors += 1;
            return;
        };
        self.netlink_set_errors += outcome.errors.len() as u64;
        if dry_run {
            return;
        }
        for change in &outcome.changes {
            let Some(&(i, j)) = self.index.get(&(change.service, change.destination)) else {
                continue;
            };
            let backend = &mut self.services[i].backends[j];
            if change.out_of_band {
                backend.changes_out_of_band += 1;
            } else if want.guard_active && want.sorry.is_none() {
                backend.changes_quorum_guard += 1;
            } else {
                backend.changes_health += 1;
            }
        }
    }

    /// Records a configuration reload that succeeded or failed.
    pub fn reloaded(&mut self, ok: bool, now: SystemTime) {
        self.reload_successful = ok;
        if ok {
            self.reload_success_time = now;
        }
    }
}

#[cfg(test)]
mod tests;
