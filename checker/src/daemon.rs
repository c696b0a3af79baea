//! The daemon: one probe task per real server, spread over its interval,
//! so many in flight at once ([`admission`]); one loop that turns results
//! into health, health into weights (through the [`Reconciler`]), reloads
//! the config on SIGHUP and stops on SIGTERM or SIGINT.
//!
//! A flip does not reconcile its service at once: the service is marked,
//! and reconciled [`FLIP_COALESCE`] later together with every other flip
//! that arrived meanwhile, so a rack failure costs a few dumps of the
//! service instead of one per real server.
//!
//! The loop also reconciles every service once a second, so a weight
//! changed out of band is put back within a second (and, in managed mode,
//! a deleted service or real server is made again), and every 100 ms the
//! services with a real server in its slow start, so the ramp's steps are
//! applied on time.
//!
//! At start and on each reload it checks `expire_quiescent_template` for
//! the persistent services (see [`quiescent`]).
//!
//! Health, weights and counters live in the [`Shared`] state, which the
//! loop alone writes and the web endpoint reads.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use ipvs::{DestinationKey, ServiceKey};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use self::admission::Admission;
use crate::config::{self, Config, Mode, RealServer};
use crate::health::Health;
use crate::prober::{self, Prober, Target};
use crate::reconcile::quiescent::{self, Quiescent};
use crate::reconcile::{Desired, ManagedOutcome, ManagedTable, Outcome, Reconciler};
use crate::state::Shared;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file, read again on SIGHUP.
    pub config_file: PathBuf,
    /// Probe and log, but change no weight.
    pub dry_run: bool,
    /// Probes in flight at once, at most (see [`admission`]).
    pub max_concurrency: usize,
    /// HTTPS probes making a full TLS handshake at once, at most (see
    /// [`spawn_probes`]).
    pub max_full_handshakes: usize,
    /// `net.ipv4.vs.expire_quiescent_template` (see [`quiescent::SYSCTL_PATH`]).
    pub quiescent_sysctl: PathBuf,
}

/// How often every service is compared with the table.
const RESYNC: Duration = Duration::from_secs(1);

/// How often services in a slow start are reconciled.
const RAMP_TICK: Duration = Duration::from_millis(100);

/// How long after a flip its service is reconciled: flips arriving
/// meanwhile join it. Probes are spread over their interval, so the flips
/// of a rack failure arrive one by one over a second; reconciling each at
/// once would cost a dump of the whole service per flip (500 dumps of 500
/// entries a second), this costs at most 50. Small against the detection
/// time's slack (interval x fall + 100 ms).
const FLIP_COALESCE: Duration = Duration::from_millis(20);

/// The most groups a check interval's probes are spread over (see
/// [`spawn_probes`]): 50 ms apart at an interval of 1 s.
const SLOTS: usize = 20;

/// The fewest probes a group has, where there are enough: each group
/// costs the runtime wake-ups of its own (its timers, the answers coming
/// back), which on a virtual machine cost more than a probe's parsing.
/// Measured in the lab VM with `examples/probe-cost.rs`, 100 HTTP real
/// servers: 20 groups of 5, 1.61 ms of CPU per probe and 0.58 wake-ups;
/// 5 groups of 20, 1.26 ms and 0.27; at 500 real servers (20 groups of
/// 25) 0.08 wake-ups per probe.
const GROUP: usize = 25;

/// How many groups `n` probes of one interval start in: one per
/// [`GROUP`] probes, at least 1, at most [`SLOTS`].
fn groups(n: usize) -> usize {
    (n / GROUP).clamp(1, SLOTS)
}

/// Probe results queued for the loop, at most; also the most it takes in
/// one turn.
const REPORTS: usize = 1024;

/// One probe result.
#[derive(Debug)]
struct Report {
    generation: u64,
    service: ServiceKey,
    destination: DestinationKey,
    result: Result<prober::Success, prober::ProbeError>,
    phases: prober::Phases,
}

/// The async runtime the daemon runs on (`main`'s, and the probe-cost
/// example's, so that it measures what runs): one thread for the probes,
/// the loop and the web endpoint. A probe is a few system calls and a
/// little parsing, so one thread keeps up with hundreds a second, and a
/// multi-threaded runtime's cross-thread wake-ups (a futex call or two per
/// probe, costly on a virtual machine) bought nothing but CPU time. The
/// netlink calls of a reconciliation block this thread for their round
/// trips with the kernel (a dump of 500 entries is a few milliseconds),
/// which delays probes that long at most.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs until SIGTERM or SIGINT, keeping `state` (made with
/// [`Shared::new`] from `config`) up to date.
pub async fn run<T: ManagedTable>(
    options: Options,
    config: Config,
    table: T,
    state: Shared,
) -> anyhow::Result<()> {
    let reconciler = match &config.state_file {
        Some(file) => Reconciler::managed(table, options.dry_run, file)?,
        None => Reconciler::new(table, options.dry_run),
    };
    let mut daemon = Daemon::new(config, reconciler, state);
    check_quiescent(&options, &daemon.config, &mut daemon.reconciler);
    let limits = Limits {
        probes: Admission::new(options.max_concurrency, daemon.state.clone()),
        full_handshakes: Arc::new(Semaphore::new(options.max_full_handshakes.max(1))),
    };
    let (tx, mut rx) = mpsc::channel::<Report>(REPORTS);
    let mut generation = 0;
    let mut recoveries = Recoveries::new(&daemon.config);
    let mut probes = spawn_probes(&daemon.config, generation, &tx, &limits, &recoveries);
    daemon.state.lock().reset(&daemon.config);
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ramp = tokio::time::interval(RAMP_TICK);
    ramp.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether a slow start is in progress: the ramp ticks only then, so
    // an idle checker is not woken ten times a second for nothing.
    let mut ramping = false;
    // When the services with a flip are reconciled; `None`: none pending.
    let mut flush_at: Option<tokio::time::Instant> = None;
    info!(
        services = daemon.config.services.len(),
        dry_run = options.dry_run,
        mode = %daemon.config.mode,
        "started"
    );
    loop {
        tokio::select! {
            Some(report) = rx.recv() => {
                // What is already queued belongs to this turn too: a rack
                // failure's flips are reconciled together.
                let mut next = Some(report);
                let mut taken = 0;
                while let Some(report) = next.take() {
                    if report.generation == generation
                        && daemon.observe(&report) == Some(Recovery)
                    {
                        recoveries.recovered(&report.service, tokio::time::Instant::now());
                    } // else from before a reload, or no recovery
                    taken += 1;
                    if taken < REPORTS {
                        next = rx.try_recv().ok();
                    }
                }
                if daemon.has_pending() && flush_at.is_none() {
                    flush_at = Some(tokio::time::Instant::now() + FLIP_COALESCE);
                }
            }
            _ = sleep_until(flush_at), if flush_at.is_some() => {
                flush_at = None;
                daemon.flush();
                // A recovery just applied may have begun a slow start.
                if !ramping && daemon.ramping(std::time::Instant::now()) {
                    ramping = true;
                    ramp.reset();
                }
            }
            _ = resync.tick() => daemon.resync(),
            _ = ramp.tick(), if ramping => ramping = daemon.ramp(std::time::Instant::now()),
            _ = hangup.recv() => {
                match config::load(&options.config_file).map_err(anyhow::Error::from).and_then(|new| {
                    let left = daemon.reconciler.set_state_file(new.state_file.as_deref())?;
                    Ok((new, left))
                }) {
                    Ok((new, left)) => {
                        if let Some(left) = left {
                            warn!(
                                state_file = %left.state_file.display(),
                                services = %left.services(),
                                real_servers = %left.real_servers(),
                                "left managed mode: the services and real servers it created stay in the table and in the state file (weights mode deletes nothing); a reload back to managed mode with this state_file owns them again, or delete them with ipvsadm"
                            );
                        }
                        probes.abort_all();
                        generation += 1;
                        daemon.reload(new);
                        recoveries = Recoveries::new(&daemon.config);
                        probes = spawn_probes(&daemon.config, generation, &tx, &limits, &recoveries);
                        ramping = daemon.ramping(std::time::Instant::now());
                        info!(services = daemon.config.services.len(), mode = %daemon.config.mode, "configuration reloaded");
                        check_quiescent(&options, &daemon.config, &mut daemon.reconciler);
                    }
                    Err(e) => {
                        daemon.state.lock().reloaded(false, SystemTime::now());
                        error!("reload failed, the previous configuration stays: {e}");
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    probes.abort_all();
    info!("stopped");
    Ok(())
}

/// Sleeps until `at`; never returns for `None` (the branch is disabled
/// then anyway).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The loop's state: the config, the reconciler, and the services whose
/// health flipped since their last reconciliation.
#[derive(Debug)]
struct Daemon<T> {
    config: Config,
    reconciler: Reconciler<T>,
    state: Shared,
    /// What a dry run or managed mode announced already.
    announced: HashSet<String>,
    /// Services with a flip not reconciled yet.
    pending: HashSet<ServiceKey>,
}

impl<T: ManagedTable> Daemon<T> {
    fn new(config: Config, reconciler: Reconciler<T>, state: Shared) -> Self {
        sync_owned(&reconciler, &state);
        Daemon {
            config,
            reconciler,
            state,
            announced: HashSet::new(),
            pending: HashSet::new(),
        }
    }

    /// Records a probe result; a flip marks its service for the next
    /// [`Daemon::flush`]. Says whether the real server recovered (down
    /// before, up now).
    fn observe(&mut self, report: &Report) -> Option<Recovery> {
        let (before, flip) = {
            let mut state = self.state.lock();
            let before = state
                .backend(&report.service, &report.destination)
                .map(|b| b.health.health());
            let flip = state.observe(
                &report.service,
                &report.destination,
                &report.result,
                &report.phases,
                SystemTime::now(),
            );
            (before, flip)
        };
        if let Err(e) = &report.result {
            tracing::debug!(service = %report.service, real_server = %report.destination, reason = e.reason(), "probe failed: {e}");
        }
        let now = flip?;
        match &report.result {
            Err(e) => {
                warn!(service = %report.service, real_server = %report.destination, health = now.as_str(), reason = e.reason(), "real server is {}: {e}", now.as_str())
            }
            Ok(_) => {
                info!(service = %report.service, real_server = %report.destination, health = now.as_str(), "real server is {}", now.as_str())
            }
        }
        self.pending.insert(report.service);
        (before == Some(Health::Down) && now == Health::Up).then_some(Recovery)
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Reconciles each service with a flip since its last reconciliation,
    /// once however many flips it had.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        for i in 0..self.config.services.len() {
            if self.pending.contains(&self.config.services[i].key) {
                self.apply(i);
            }
        }
        self.pending.clear();
    }

    /// Every service, and in managed mode what left the config.
    fn resync(&mut self) {
        if self.config.mode == Mode::Managed {
            let outcome = self.reconciler.remove_unconfigured(&self.config);
            if !outcome.actions.is_empty() {
                sync_owned(&self.reconciler, &self.state);
            }
            report_managed(
                &outcome,
                &self.state,
                self.reconciler.dry_run(),
                &mut self.announced,
            );
        }
        for i in 0..self.config.services.len() {
            self.apply(i);
        }
    }

    /// Reconciles the services with a real server in its slow start at
    /// `now`; whether there were any (the ramp goes on).
    fn ramp(&mut self, now: std::time::Instant) -> bool {
        let mut any = false;
        for i in 0..self.config.services.len() {
            if self.state.lock().ramping(&self.config.services[i], now) {
                self.apply(i);
                any = true;
            }
        }
        any
    }

    /// Whether a real server is in its slow start at `now`.
    fn ramping(&self, now: std::time::Instant) -> bool {
        let state = self.state.lock();
        self.config.services.iter().any(|s| state.ramping(s, now))
    }

    /// Follows a new configuration.
    fn reload(&mut self, config: Config) {
        self.config = config;
        self.pending.clear();
        sync_owned(&self.reconciler, &self.state);
        let mut state = self.state.lock();
        state.reset(&self.config);
        state.reloaded(true, SystemTime::now());
    }

    /// Reconciles the `i`-th service and logs what happened: in managed
    /// mode the service and its real servers first, then the weights, from
    /// one dump of the service. Netlink calls block the runtime's thread
    /// for their round trips (see [`runtime`]).
    fn apply(&mut self, i: usize) {
        let service = &self.config.services[i];
        self.pending.remove(&service.key);
        let (reconciler, state) = (&mut self.reconciler, &self.state);
        let (want, guard_was) = {
            let state = state.lock();
            let was = state.service(&service.key).is_some_and(|s| s.guard_active);
            (state.desired(service), was)
        };
        if want.guard_active != guard_was {
            log_guard(service, &want);
        }
        // The lock is not held over the netlink calls.
        let outcome = if self.config.mode == Mode::Managed {
            let (managed, current) = reconciler.ensure(service, &want);
            report_managed(&managed, state, reconciler.dry_run(), &mut self.announced);
            if !managed.actions.is_empty() {
                sync_owned(reconciler, state);
            }
            current.map(|current| reconciler.reconcile_from(&want, current))
        } else {
            reconciler.reconcile(&want)
        };
        state
            .lock()
            .record(&want, outcome.as_ref().ok(), reconciler.dry_run());
        match outcome {
            Ok(outcome) => log_outcome(service, &want, &outcome, reconciler.dry_run()),
            Err(e) => warn!(service = %service.key, "cannot read the service: {e}"),
        }
    }
}

/// Shows what managed mode owns now in the state (`/status`), if that
/// changed.
fn sync_owned<T: ManagedTable>(reconciler: &Reconciler<T>, state: &Shared) {
    let owned = reconciler.owned();
    let mut state = state.lock();
    if state.owned != *owned {
        state.owned = owned.clone();
    }
}

/// Warns (or sets the sysctl, as configured) when persistent services
/// would keep their clients on quiesced real servers.
fn check_quiescent<T: ManagedTable>(
    options: &Options,
    config: &Config,
    reconciler: &mut Reconciler<T>,
) {
    // Managed mode makes the services as configured; in weights mode the
    // table says which are persistent.
    let persistent: Vec<ipvs::ServiceKey> = config
        .services
        .iter()
        .filter(|s| match config.mode {
            Mode::Managed => s.is_persistent(),
            Mode::Weights => matches!(reconciler.table_mut().service(&s.key), Ok(Some(c))
                if c.flags.contains(ipvs::ServiceFlags::PERSISTENT)),
        })
        .map(|s| s.key)
        .collect();
    let set = config.set_expire_quiescent_template && !options.dry_run;
    match quiescent::check(&options.quiescent_sysctl, &persistent, set) {
        Ok(Quiescent::Off(services)) => warn!(
            services = %quiescent::names(&services),
            "net.ipv4.vs.expire_quiescent_template is 0: clients of these persistent services stay on a real server at weight 0 until their templates expire; set it to 1 (or set_expire_quiescent_template: true)"
        ),
        Ok(Quiescent::SetOn(services)) => info!(
            services = %quiescent::names(&services),
            "net.ipv4.vs.expire_quiescent_template set to 1 for the persistent services"
        ),
        Ok(Quiescent::AlreadyOn | Quiescent::NoPersistentService) => {}
        Err(e) => warn!("persistent services: {e}"),
    }
}

/// Logs and counts a managed pass; a dry run announces each change once.
fn report_managed(
    outcome: &ManagedOutcome,
    state: &Shared,
    dry_run: bool,
    announced: &mut HashSet<String>,
) {
    if !dry_run {
        state
            .lock()
            .record_managed(&outcome.actions, outcome.errors.len());
    }
    for action in &outcome.actions {
        let text = action.to_string();
        if dry_run && !announced.insert(text.clone()) {
            continue;
        }
        info!(action = action.name(), dry_run, "{text}");
    }
    for service in &outcome.kept {
        let text = format!("kept {service}");
        if announced.insert(text) {
            warn!(service = %service, "service left the config but holds real servers this checker did not add: only its own were deleted, the service stays");
        }
    }
    for e in &outcome.errors {
        error!("managed mode: {e}");
    }
}

/// Logs a change of the quorum guard.
fn log_guard(service: &config::VirtualService, want: &Desired) {
    let quorum = service.quorum.map_or(0, |q| q.min_up);
    match (want.guard_active, want.sorry) {
        (true, Some((sorry, _))) => {
            warn!(service = %service.key, min_up = quorum, sorry_server = %sorry.key, "quorum guard active: fewer real servers up than the quorum, switching to the sorry server")
        }
        (true, None) => {
            warn!(service = %service.key, min_up = quorum, "quorum guard active: fewer real servers up than the quorum, failing open (no failed real server is set to 0)")
        }
        (false, Some((sorry, _))) => {
            info!(service = %service.key, min_up = quorum, sorry_server = %sorry.key, "quorum guard released: the quorum is back, the sorry server is taken out")
        }
        (false, None) => {
            info!(service = %service.key, min_up = quorum, "quorum guard released: the quorum is back")
        }
    }
}

/// Logs the weights one reconciliation set, and what it could not.
fn log_outcome(service: &config::VirtualService, want: &Desired, outcome: &Outcome, dry_run: bool) {
    for c in &outcome.changes {
        if c.out_of_band {
            warn!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, "weight was changed out of band; set back");
        } else if want.sorry.is_some_and(|(s, _)| s.key == c.destination) {
            warn!(service = %c.service, sorry_server = %c.destination, from = c.from, to = c.to, guard_active = want.guard_active, "quorum guard: {}", if want.guard_active { "too few real servers up, the sorry server takes the traffic" } else { "quorum is back, the sorry server is taken out" });
        } else if want.guard_active && want.sorry.is_none() {
            warn!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, "quorum guard: too few real servers up, keeping the failed ones at their weight");
        } else {
            info!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, dry_run, "weight set");
        }
    }
    for d in &outcome.missing {
        warn!(service = %service.key, real_server = %d, "real server is not in the IPVS table");
    }
    for (d, e) in &outcome.errors {
        error!(service = %service.key, real_server = %d, "cannot set weight: {e}");
    }
}

/// What the probe tasks share: how many probes (see [`admission`]), and
/// how many full TLS handshakes, may run at once.
#[derive(Debug)]
struct Limits {
    probes: Arc<Admission>,
    full_handshakes: Arc<Semaphore>,
}

/// A real server came back from down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recovery;

/// Per service, the signal that one of its real servers recovered, to
/// the probe tasks of the others that cannot connect: they probe at once
/// instead of at their next tick. Real servers fail together (a rack, a
/// switch, a deploy) and come back together; the first one seen back
/// brings the rest back within a probe's time, not within an interval
/// (keepalived and ldirectord wait each one's next check). A signal is
/// sent at most once per interval of the service, so that while servers
/// come back one by one the failing ones are probed at most twice as
/// often.
#[derive(Debug)]
struct Recoveries {
    services: HashMap<ServiceKey, Signal>,
}

#[derive(Debug)]
struct Signal {
    notify: Arc<Notify>,
    /// The shortest interval of the service's real servers.
    every: Duration,
    last: Option<tokio::time::Instant>,
    /// Whether the service is small enough to be hurried (see [`HURRY`]).
    hurried: bool,
}

/// The most real servers of a service whose probes a recovery hurries:
/// 100 connections opened together to servers just back were fine in the
/// lab (100 real servers all restored 0.81 s after nginx was started
/// instead of 1.49 s, keepalived 3.31 s), 500 were not, nor 100 of the 500
/// at once (restored 2.1 to 3.5 s after, against 1.4 s keeping to the
/// ticks: connections made together wait on each other, and some time
/// out). A larger service keeps to its ticks, which bring it back within
/// an interval.
const HURRY: usize = 100;

impl Recoveries {
    fn new(config: &Config) -> Self {
        let services = config
            .services
            .iter()
            .map(|s| {
                let every = s
                    .real_servers
                    .iter()
                    .map(|rs| rs.timing.interval)
                    .min()
                    .unwrap_or(Duration::from_secs(1));
                let signal = Signal {
                    notify: Arc::new(Notify::new()),
                    every,
                    last: None,
                    hurried: s.real_servers.len() <= HURRY,
                };
                (s.key, signal)
            })
            .collect();
        Recoveries { services }
    }

    /// The signal of `service`, which its probe tasks wait on.
    fn signal(&self, service: &ServiceKey) -> Arc<Notify> {
        match self.services.get(service) {
            Some(signal) => signal.notify.clone(),
            None => Arc::new(Notify::new()),
        }
    }

    /// A real server of `service` recovered at `now`: wakes the failing
    /// ones, unless they were woken less than an interval ago.
    fn recovered(&mut self, service: &ServiceKey, now: tokio::time::Instant) {
        let Some(signal) = self.services.get_mut(service) else {
            return;
        };
        if !signal.hurried || signal.last.is_some_and(|last| now < last + signal.every) {
            return;
        }
        signal.last = Some(now);
        // Only the tasks waiting now are woken; nothing is stored for
        // later (a task that is probing already needs no hurry).
        signal.notify.notify_waiters();
    }
}

/// One task per real server.
///
/// A full TLS handshake is the costly kind of probe (a chain verified,
/// the server's signature checked, a key exchange). Started all together
/// (at start-up, or for hundreds of servers at once), they share the CPU
/// until none finishes within its timeout, so no session is ever made to
/// resume. So at most `full_handshakes` run at once, and a probe waits for
/// its turn *before* its timeout starts: it is late, but it finishes, and
/// the next ones resume its session.
fn spawn_probes(
    config: &Config,
    generation: u64,
    tx: &mpsc::Sender<Report>,
    limits: &Limits,
    recoveries: &Recoveries,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let all: Vec<(ServiceKey, &RealServer)> = config
        .services
        .iter()
        .flat_map(|s| s.real_servers.iter().map(move |rs| (s.key, rs)))
        .collect();
    let n = all.len().max(1);
    let slots = groups(n);
    let base = tokio::time::Instant::now();
    for (i, (service, rs)) in all.into_iter().enumerate() {
        // Spread the probes over the interval so they do not all start
        // together, in groups that start together: one wake-up of the
        // runtime then serves a group (its timers, and the answers that
        // come back at about the same time) instead of one probe.
        let slot = (i * slots / n) as u32;
        let offset = rs.timing.interval / slots as u32 * slot;
        let rs = rs.clone();
        let tx = tx.clone();
        let admission = limits.probes.clone();
        let full_handshakes = limits.full_handshakes.clone();
        let recovered = recoveries.signal(&service);
        set.spawn(async move {
            let mut ticks = tokio::time::interval_at(base + offset, rs.timing.interval);
            // A probe that started late (waiting for a permit) skips to
            // its group's next tick, so the groups stay together.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut prober = Prober::new(
                rs.check.clone(),
                Target {
                    addr: rs.target,
                    source: rs.source,
                },
            );
            // Whether the last probe could not connect (refused,
            // unreachable): then another real server's recovery is a
            // reason to probe again at once. Only those: such a probe
            // costs little and ends at once, where a timeout may be the
            // checker's own overload, which probing again would feed.
            let mut refused = false;
            // When the last probe ended.
            let mut ended: Option<tokio::time::Instant> = None;
            loop {
                let due = tokio::select! {
                    due = ticks.tick() => Some(due),
                    _ = recovered.notified(), if refused => None,
                };
                let now = tokio::time::Instant::now();
                // How late a tick fires says how busy the runtime is, if
                // the task was waiting for it (a tick already due when the
                // last probe ended is that probe's lateness).
                if let (Some(due), Some(ended)) = (due, ended) {
                    if ended <= due {
                        admission.started(due, now, rs.timing.timeout);
                    }
                }
                // The full-handshake turn first: waiting for it does not
                // hold one of the probes' slots, which other checks need.
                let _full = if prober.full_handshake_due(now.into_std()) {
                    let Ok(permit) = full_handshakes.acquire().await else {
                        return;
                    };
                    Some(permit)
                } else {
                    None
                };
                let Some(_slot) = admission.slot().await else {
                    return;
                };
                let outcome = prober.probe(rs.timing.timeout).await;
                refused = matches!(outcome.result, Err(prober::ProbeError::Connect(_)));
                tracing::trace!(real_server = %rs.key, took = ?outcome.phases.total(), ok = outcome.result.is_ok(), "probe");
                let report = Report {
                    generation,
                    service,
                    destination: rs.key,
                    result: outcome.result,
                    phases: outcome.phases,
                };
                if tx.send(report).await.is_err() {
                    return;
                }
                ended = Some(tokio::time::Instant::now());
            }
        });
    }
    set
}

mod admission;
#[cfg(test)]
mod tests;
