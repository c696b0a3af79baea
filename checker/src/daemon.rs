//! The daemon: one probe task per real server ([`probes`]) on the probe
//! threads ([`shards`]: one per core but one by default, each limiting
//! its probes in flight ([`admission`]) and measuring its own lateness
//! ([`lag`])),
//! spread over its interval in groups ([`places`]), hurried when its
//! siblings fail or come back ([`hurries`]); one loop, on a thread of its
//! own, that turns results ([`reports`]) into health, health into weights
//! (through the [`Reconciler`]), reloads on SIGHUP, stops on SIGTERM/INT.
//!
//! The loop's netlink calls and state-file writes block its own thread
//! only: the probes go on on theirs, and the web endpoint (on the caller's
//! runtime) reads the [`Shared`] state, whose lock is never held over a
//! call. A probe that timed out while its thread was late is not held
//! against its real server (see [`lag`]): counted, logged at most once a
//! minute, and the health stays as it was.
//!
//! A flip does not reconcile its service at once: the service is marked,
//! and reconciled [`FLIP_COALESCE`] later together with every other flip
//! that arrived meanwhile, so a rack failure costs a few dumps of the
//! service instead of one per real server.
//!
//! The loop also reconciles every service once a second (less often
//! when a pass takes much CPU: [`resync_after`]), so a weight changed out
//! of band is put back at the next pass (and, in managed mode, a deleted
//! service or real server is made again), and every 100 ms the
//! services with a real server in its slow start, so the ramp's steps are
//! applied on time. At start and on each reload it checks
//! `expire_quiescent_template` for the persistent services (see
//! [`crate::reconcile::quiescent`]).
//!
//! It owns the drains ([`crate::drain`]): it applies the admin API's
//! orders ([`crate::admin`]), takes an out-of-band weight 0 as a drain,
//! reads `maintenance_dir` and expires drains at each pass, and writes
//! the drain file before the state shows a change. It tells systemd
//! how it is doing ([`watchdog`]), and the notify hooks of each event
//! ([`events`], [`crate::notify`]), without waiting for them.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use ipvs::ServiceKey;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use self::ipvs_absence::IpvsAbsence;
use self::log::{
    check_quiescent, log_guard, log_outcome, report_managed, ExhaustedProbes, LateProbes,
};
use self::looping::{next_order, Loop, Signals};
use self::probes::sleep_until;
use self::watchdog::Watchdog;
use crate::admin::{self, Admin, Command, Order, Refusal};
use crate::config::{Config, Mode};
use crate::drain::{maintenance, By, Drain, Drains};
use crate::notify::{EventKind, Notifier};
use crate::reconcile::{ManagedTable, Reconciler};
use crate::state::Shared;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file, read again on SIGHUP.
    pub config_file: PathBuf,
    /// Probe and log, but change no weight.
    pub dry_run: bool,
    /// Probes in flight at once, at most, over every probe thread (see
    /// [`admission`]).
    pub max_concurrency: usize,
    /// HTTPS probes making a full TLS handshake at once, at most (see
    /// [`probes`]).
    pub max_full_handshakes: usize,
    /// `exec` checks' programs running at once, at most (see [`probes`]).
    pub max_programs: usize,
    /// Probe threads; 0: one per core but one, at least one (see
    /// [`shards::count`]).
    pub probe_threads: usize,
    /// `net.ipv4.vs.expire_quiescent_template` (see [`crate::reconcile::quiescent::SYSCTL_PATH`]).
    pub quiescent_sysctl: PathBuf,
    /// systemd's notify socket (`$NOTIFY_SOCKET`), if any.
    pub notify_socket: Option<String>,
    /// systemd's watchdog timeout (`$WATCHDOG_USEC`), if any.
    pub watchdog: Option<Duration>,
}

/// How often every service is compared with the table, unless a pass
/// takes more than [`RESYNC_SHARE`] of that in CPU (see [`resync_after`]).
const RESYNC: Duration = Duration::from_secs(1);

/// The passes take at most one part in this many of a core: a pass that
/// took more CPU is followed by a longer wait, so that a large table on a
/// slow machine does not take the CPU the probes need
/// (lab/bench/README.md, "2026-12-07, late night").
const RESYNC_SHARE: u32 = 20;

/// The longest wait between passes, whatever they take: an out-of-band
/// change (a weight set by someone else, a maintenance file, IPVS loaded
/// again) is still followed within it.
const RESYNC_MOST: Duration = Duration::from_secs(5);

/// The wait before the next pass, after one that took `took` of CPU: a
/// second, or `took` x [`RESYNC_SHARE`] if longer, up to [`RESYNC_MOST`]
/// and half the watchdog's `ping` period (see [`watchdog`]: a pass must
/// run between pings).
fn resync_after(took: Duration, ping: Option<Duration>) -> Duration {
    let most = ping.map_or(RESYNC_MOST, |ping| RESYNC_MOST.min(ping / 2));
    took.saturating_mul(RESYNC_SHARE).min(most).max(RESYNC)
}

/// The CPU time the calling thread has used (its netlink calls' time in
/// the kernel included). A pass is paced by its CPU, not by the wall time
/// it took: other threads running meanwhile (the probes at start-up, the
/// machine's other work) stretch the wall time of a pass that costs
/// little, and put off the next one for no saving. Zero if the clock
/// cannot be read: the next pass then comes after a second.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, nothing else.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    let (Ok(secs), Ok(nanos)) = (u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) else {
        return Duration::ZERO;
    };
    Duration::new(secs, nanos)
}

/// How often services in a slow start are reconciled.
const RAMP_TICK: Duration = Duration::from_millis(100);

/// How long after a flip its service is reconciled: flips arriving
/// meanwhile join it, as those of a failed rack do (over an interval, or
/// within a hurry's milliseconds), for a dump of the service per 20 ms
/// at most instead of one per flip. Small against the detection time's
/// slack (interval x fall + 100 ms).
const FLIP_COALESCE: Duration = Duration::from_millis(20);

/// How often, at most, the loop takes the probes' results while they
/// keep coming. A probe thread sends its results in batches (see
/// [`reports::Outbox`]), each waking the loop's thread once (an eventfd
/// write, a context switch); batches coming closer together than this
/// are taken this long after the last, so the loop wakes at most a
/// hundred times a second for them, and a flip's reconciliation waits
/// at most this much longer. Batches further apart are taken as they
/// come: a timer to listen again after each would wake the loop once
/// more for nothing.
const REPORTS_EVERY: Duration = Duration::from_millis(10);

/// The most batches of results the loop takes in one turn.
const REPORTS: usize = 256;

/// How long a stopping checker waits for the hooks queued or running.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Admin API orders waiting for the loop, at most.
const ADMIN_QUEUE: usize = 16;

/// A single-threaded async runtime, as the loop and the web endpoint run
/// on (the probes have threads of their own, see [`shards`]).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The loop running on its own thread (see [`spawn`]).
#[derive(Debug)]
pub struct Running {
    done: oneshot::Receiver<anyhow::Result<()>>,
    thread: std::thread::JoinHandle<()>,
    admin: mpsc::Sender<Command>,
}

impl Running {
    /// The admin API's way to the loop.
    pub fn admin(&self) -> Admin {
        Admin::new(self.admin.clone())
    }

    /// Waits for the loop to end (a signal, `stop`, or an error).
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = match self.done.await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!(
                "the daemon's loop ended without a word (it panicked)"
            )),
        };
        // It has sent its word: what is left of it is the thread's end.
        let _ = self.thread.join();
        result
    }
}

/// Starts [`run`] on a thread of its own, with a runtime of its own, so
/// its netlink calls and file writes block nothing but itself.
pub fn spawn<T, S>(
    options: Options,
    config: Config,
    table: T,
    state: Shared,
    stop: S,
) -> std::io::Result<Running>
where
    T: ManagedTable + Send + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    let runtime = runtime()?;
    let (tell, done) = oneshot::channel();
    let (admin, orders) = mpsc::channel(ADMIN_QUEUE);
    let thread = std::thread::Builder::new()
        .name("loop".into())
        .spawn(move || {
            let result =
                runtime.block_on(run_with(options, config, table, state, stop, Some(orders)));
            let _ = tell.send(result);
        })?;
    Ok(Running {
        done,
        thread,
        admin,
    })
}

/// Runs until SIGTERM, SIGINT or `stop`, keeping `state` (made with
/// [`Shared::new`] from `config`) up to date. Its netlink calls block the
/// thread it runs on: [`spawn`] gives it one of its own.
pub async fn run<T: ManagedTable>(
    options: Options,
    config: Config,
    table: T,
    state: Shared,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with(options, config, table, state, stop, None).await
}

/// [`run`], taking the admin API's orders from `orders`.
async fn run_with<T: ManagedTable>(
    options: Options,
    config: Config,
    table: T,
    state: Shared,
    stop: impl Future<Output = ()>,
    mut orders: Option<mpsc::Receiver<Command>>,
) -> anyhow::Result<()> {
    let mut watchdog = Watchdog::new(options.notify_socket.as_deref(), options.watchdog, &config);
    let mut daemon = Daemon::start(config, table, options.dry_run, state)?;
    check_quiescent(
        &options.quiescent_sysctl,
        options.dry_run,
        &daemon.config,
        &mut daemon.reconciler,
    );
    daemon.start_vip_probes()?;
    let (mut looping, mut rx) = Loop::start(options, &daemon.config, &daemon.state)?;
    looping.follow_probes(&daemon.config);
    daemon.state.lock().reset(&daemon.config);
    let mut signals = Signals::new()?;
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ramp = tokio::time::interval(RAMP_TICK);
    ramp.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // (Never ticks without a watchdog: the branch is off then.)
    let ping_every = watchdog.period().unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(
        services = daemon.config.services.len(),
        probe_threads = looping.shards.len(),
        dry_run = looping.options.dry_run,
        mode = %daemon.config.mode,
        "started"
    );
    daemon.notify(EventKind::CheckerStarted, None, None, None);
    tokio::pin!(stop);
    let mut batch = Vec::with_capacity(REPORTS);
    // When the loop listens for results again; `None`: it listens now.
    let mut reports_at = None;
    // When it last took results.
    let mut taken_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, REPORTS), if reports_at.is_none() => {
                if n == 0 {
                    break; // never: the loop holds a sender
                }
                let now = tokio::time::Instant::now();
                watchdog.reports(now);
                looping.on_reports(&mut daemon, batch.drain(..).flatten());
                if taken_at.is_some_and(|at| now.saturating_duration_since(at) < REPORTS_EVERY) {
                    reports_at = Some(now + REPORTS_EVERY);
                }
                taken_at = Some(now);
            }
            _ = sleep_until(reports_at), if reports_at.is_some() => reports_at = None,
            _ = sleep_until(looping.flush_at), if looping.flush_at.is_some() => {
                if looping.on_flush(&mut daemon) {
                    ramp.reset();
                }
            }
            _ = resync.tick() => {
                let began = thread_cpu_time();
                daemon.resync();
                let took = thread_cpu_time().saturating_sub(began);
                let wait = resync_after(took, watchdog.period());
                resync.reset_after(wait);
                {
                    let mut state = daemon.state.lock();
                    // The first tick is at once: from then on the table is
                    // what the config and the health known so far say.
                    state.reconciled = true;
                    state.table_passes.passed(took, wait);
                }
                watchdog.resynced();
            }
            _ = ping.tick(), if watchdog.period().is_some() => {
                let now = tokio::time::Instant::now();
                watchdog.tick(now, looping.shards.lags(now));
            }
            command = next_order(&mut orders) => {
                let answer = daemon.order(command.order);
                let _ = command.reply.send(answer);
            }
            _ = ramp.tick(), if looping.ramping => {
                looping.ramping = daemon.ramp(std::time::Instant::now());
            }
            _ = signals.hangup.recv() => {
                if looping.on_reload(&mut daemon) {
                    ramp.reset();
                }
                watchdog.reloaded(&daemon.config, tokio::time::Instant::now());
            }
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
            _ = &mut stop => break,
        }
    }
    looping.probes.stop();
    daemon.remove_vip_probes();
    watchdog.stopping();
    daemon.notify(EventKind::CheckerStopping, None, None, None);
    daemon.notifier.finish(STOP_GRACE);
    info!("stopped");
    Ok(())
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
    /// Probes that timed out while the checker was late.
    late: LateProbes,
    /// Probes that could not make their socket.
    exhausted: ExhaustedProbes,
    /// Whether IPVS is gone (the ip_vs module unloaded).
    ipvs: IpvsAbsence,
    /// Where events go to the hooks.
    notifier: Notifier,
    /// The probe services of `probe_through_vip` made so far.
    vip_probes: crate::reconcile::VipProbes,
}

impl<T: ManagedTable> Daemon<T> {
    /// The daemon over `table` as it starts: managed mode's state file
    /// and the drain file read.
    fn start(config: Config, table: T, dry_run: bool, state: Shared) -> anyhow::Result<Self> {
        let mut reconciler = match &config.state_file {
            Some(file) => Reconciler::managed(table, dry_run, file)?,
            None => Reconciler::new(table, dry_run),
        };
        reconciler.set_out_of_band(config.out_of_band);
        // Starting without the drains would put drained servers back.
        let drains = Drains::load(&config.drain_file).context("cannot read the drains")?;
        state.lock().set_drains(drains);
        Ok(Daemon::new(config, reconciler, state))
    }

    fn new(config: Config, reconciler: Reconciler<T>, state: Shared) -> Self {
        sync_owned(&reconciler, &state);
        let notifier = Notifier::start(config.max_running_hooks, state.lock().hooks.clone());
        Daemon {
            config,
            reconciler,
            state,
            announced: HashSet::new(),
            pending: HashSet::new(),
            late: LateProbes::default(),
            exhausted: ExhaustedProbes::default(),
            ipvs: IpvsAbsence::default(),
            notifier,
            vip_probes: Default::default(),
        }
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

    /// Every service, and in managed mode what left the config; drains
    /// expired and maintenance files read first.
    fn resync(&mut self) {
        self.follow_drains();
        if self.ipvs.waiting(std::time::Instant::now()) {
            return;
        }
        self.sync_vip_probes();
        if self.config.mode == Mode::Managed {
            let outcome = self
                .reconciler
                .remove_unconfigured(&self.config, std::time::Instant::now());
            if !outcome.actions.is_empty() {
                sync_owned(&self.reconciler, &self.state);
            }
            {
                // With their connection counts, which change every pass.
                let mut state = self.state.lock();
                if state.removing != *self.reconciler.removing() {
                    state.removing = self.reconciler.removing().clone();
                }
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
        self.follow_vip_probes();
        self.pending.clear();
        sync_owned(&self.reconciler, &self.state);
        {
            let mut state = self.state.lock();
            state.reset(&self.config);
            state.reloaded(true, SystemTime::now());
        }
        self.prune_drains();
    }

    /// Reconciles the `i`-th service and logs what happened: in managed
    /// mode the service and its real servers first, then the weights, from
    /// one dump of the service. Netlink calls block the loop's thread for
    /// their round trips, and nothing else (see [`spawn`]).
    fn apply(&mut self, i: usize) {
        // While IPVS is gone, only a pass due for a try goes on (the
        // next pass reconciles every service once it is back).
        if self.ipvs.waiting(std::time::Instant::now()) {
            return;
        }
        let service = &self.config.services[i];
        self.pending.remove(&service.key);
        let (reconciler, state) = (&mut self.reconciler, &self.state);
        let (want, guard_was) = {
            let state = state.lock();
            let was = state.service(&service.key).is_some_and(|s| s.guard_active);
            (state.desired(service), was)
        };
        let guard_flipped = want.guard_active != guard_was;
        let sorry_was = if guard_flipped {
            log_guard(service, &want);
            state
                .lock()
                .service(&service.key)
                .and_then(|s| s.sorry_weight)
        } else {
            None
        };
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
        {
            let mut state = state.lock();
            state.record(&want, outcome.as_ref().ok(), reconciler.dry_run());
            state.netlink_socket_reopens = reconciler.table().socket_reopens();
        }
        match outcome {
            Err(ipvs::Error::Unavailable) => self.ipvs.failed(std::time::Instant::now()),
            Ok(outcome) => {
                self.ipvs.back();
                log_outcome(service, &want, &outcome, reconciler.dry_run());
                let key = service.key;
                self.compare_vip_forwards(i, &outcome);
                // A drain taken from the table: the pass again to show it (no weight changes).
                if self.follow_out_of_band(key, &outcome) {
                    self.apply(i);
                }
            }
            Err(e) => warn!(service = %service.key, "cannot read the service: {e}"),
        }
        if guard_flipped {
            self.notify_guard(i, &want, sorry_was);
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

mod admission;
mod bell;
mod drains;
mod events;
mod hurries;
mod ipvs_absence;
mod lag;
mod log;
mod looping;
mod observe;
mod places;
mod probes;
mod reports;
mod shards;
#[cfg(test)]
mod tests;
mod vip_probes;
mod watchdog;
