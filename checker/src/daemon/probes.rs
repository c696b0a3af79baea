//! The probe tasks: one per real server, on the probe threads (see
//! [`super::shards`]), spread over its interval, each reporting its
//! results to the loop.
//!
//! A probe that timed out is judged by its socket first (see
//! [`prober::watch`]): the server's when the server had its whole timeout
//! and did not answer, however late the thread was. Where the socket
//! cannot tell (no socket: `exec`, `icmp`), a timeout while its thread was
//! late (see [`super::lag`]) is the checker's. The checker's timeouts are
//! reported as such: the loop counts them and leaves the real server's
//! health as it was.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipvs::{DestinationKey, ServiceKey};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::AbortHandle;

use super::lag::{is_late, Lag};
use super::recoveries::Recoveries;
use super::shards::Shards;
use crate::config::{Config, RealServer};
use crate::prober::{self, set::ProberSet};

/// The most groups a check interval's probes are spread over (see
/// [`spawn`]): 50 ms apart at an interval of 1 s.
const SLOTS: usize = 20;

/// The fewest probes a group has, where there are enough: each group
/// costs the thread wake-ups of its own (its timers, the answers coming
/// back), which on a virtual machine cost more than a probe's parsing
/// (lab/bench/README.md, probe-cost by group size).
const GROUP: usize = 25;

/// How many groups `n` probes of one interval start in: one per
/// [`GROUP`] probes, at least 1, at most [`SLOTS`].
pub(super) fn groups(n: usize) -> usize {
    (n / GROUP).clamp(1, SLOTS)
}

/// Probe results queued for the loop, at most: half a minute of 500
/// probes a second. A loop held up longer than that by the kernel or the
/// disk loses the oldest news of no real server: each probe's next
/// result is queued again once there is room.
pub(super) const QUEUE: usize = 16_384;

/// Where the probe tasks send their results, and count those the full
/// queue had no room for.
#[derive(Debug, Clone)]
pub(super) struct Reports {
    pub tx: mpsc::Sender<Report>,
    pub dropped: Arc<AtomicU64>,
}

impl Reports {
    /// Queues `report` without waiting; whether the loop is still there.
    fn send(&self, report: Report) -> bool {
        match self.tx.try_send(report) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// One probe result.
#[derive(Debug)]
pub(super) struct Report {
    /// The probe task that made it (see [`ProbeTasks::current`]).
    pub task: u64,
    pub service: ServiceKey,
    pub destination: DestinationKey,
    pub result: Result<prober::Success, prober::ProbeError>,
    pub phases: prober::Phases,
    /// Each check's failure reason (`None`: passed), in config order.
    pub each: Vec<Option<&'static str>>,
    /// Why the failure is the checker's own, not the server's, if it is.
    pub checker_fault: Option<CheckerFault>,
}

/// A probe failure of the checker's own making: neither a pass nor a
/// failure of the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckerFault {
    /// It timed out while its thread was this far behind.
    Late(Duration),
    /// Its socket could not be made for want of the checker's own
    /// resources: this errno (EMFILE, ENFILE, ENOBUFS, ENOMEM). A server
    /// cannot cause these; a server that refuses or is unreachable gets
    /// other errors.
    Exhausted(i32),
}

/// The errnos of a connect that say the checker, not the server, ran out
/// of something.
const EXHAUSTED: [i32; 4] = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];

/// The most the probe's thread was behind over the probe's `windows`.
fn worst_lag(lag: &Lag, windows: &[(tokio::time::Instant, tokio::time::Instant)]) -> Duration {
    windows
        .iter()
        .map(|(since, until)| lag.worst(*since, *until))
        .fold(Duration::ZERO, Duration::max)
}

impl Report {
    /// The report of `outcome`, a probe that ran over `windows` (its
    /// connection made ahead, then the rest of it): a timeout is the
    /// checker's when its socket says so, or, where the socket cannot
    /// tell, when its thread was late meanwhile.
    pub(super) fn new(
        task: u64,
        service: ServiceKey,
        destination: DestinationKey,
        set: prober::set::SetOutcome,
        lag: &Lag,
        windows: &[(tokio::time::Instant, tokio::time::Instant)],
        timeout: Duration,
    ) -> Self {
        let prober::set::SetOutcome { outcome, each } = set;
        let worst = || worst_lag(lag, windows);
        let checker_fault = match outcome.result.as_ref().map_err(|e| e.cause()) {
            Err(prober::ProbeError::Timeout(_)) => match outcome.timed_out_on {
                Some(prober::Side::Server) => None,
                Some(prober::Side::Checker) => Some(CheckerFault::Late(worst())),
                None => {
                    let worst = worst();
                    is_late(worst, timeout).then_some(CheckerFault::Late(worst))
                }
            },
            Err(prober::ProbeError::Connect(e)) => e
                .raw_os_error()
                .filter(|errno| EXHAUSTED.contains(errno))
                .map(CheckerFault::Exhausted),
            _ => None,
        };
        Report {
            task,
            service,
            destination,
            result: outcome.result,
            phases: outcome.phases,
            each,
            checker_fault,
        }
    }

    /// Whether the server refused the connection or was unreachable.
    fn refused(&self) -> bool {
        matches!(
            self.result.as_ref().map_err(|e| e.cause()),
            Err(prober::ProbeError::Connect(_))
        ) && self.checker_fault.is_none()
    }
}

/// The probe tasks, one per real server of the config, on the probe
/// threads in turn.
///
/// A reload keeps the task of a real server that stays in the config and
/// gives it its new settings: its probes keep their place in the
/// interval (see [`Place`]: an interval after the last if the interval
/// is the same, else at its share of the new interval, within an
/// interval of the reload) and its health its count of passes and
/// failures, so a reload neither starts every probe at once nor bunches
/// them. When its checks are the same
/// ([`RealServer::probes_as`]) it keeps its probers, TLS sessions
/// included, and a probe in flight goes on; when they changed, the probe
/// in flight is cut and made again at once with the new ones: its result
/// would be of the old check. Only the real servers new to the config
/// start as at start-up.
///
/// A full TLS handshake is the costly kind of probe (a chain verified,
/// the server's signature checked, a key exchange). Started all together
/// (at start-up, or for hundreds of servers at once), they share the CPU
/// until none finishes within its timeout, so no session is ever made to
/// resume. So at most `full_handshakes` run at once (over every thread),
/// and a probe waits for its turn *before* its timeout starts: it is
/// late, but it finishes, and the next ones resume its session.
#[derive(Debug)]
pub(super) struct ProbeTasks {
    shared: Shared,
    running: HashMap<(ServiceKey, DestinationKey), Running>,
    /// The id the next task gets: a report names the task that made it,
    /// and one of a task since stopped is not taken in.
    next_id: u64,
}

/// What every probe task is given.
#[derive(Debug, Clone)]
struct Shared {
    reports: Reports,
    full_handshakes: Arc<Semaphore>,
    /// Turns of the `exec` checks' programs (`--checker.max-programs`).
    programs: Arc<Semaphore>,
}

#[derive(Debug)]
struct Running {
    id: u64,
    settings: watch::Sender<Settings>,
    task: AbortHandle,
}

/// A probe task's real server as configured, and the signal of its
/// service's recoveries: both given again on a reload.
#[derive(Debug, Clone)]
struct Settings {
    rs: RealServer,
    recovered: Arc<Notify>,
}

impl ProbeTasks {
    pub fn new(
        reports: &Reports,
        full_handshakes: &Arc<Semaphore>,
        programs: &Arc<Semaphore>,
    ) -> Self {
        ProbeTasks {
            shared: Shared {
                reports: reports.clone(),
                full_handshakes: full_handshakes.clone(),
                programs: programs.clone(),
            },
            running: HashMap::new(),
            next_id: 0,
        }
    }

    /// Probes the real servers of `config`: the tasks of those that stay
    /// get their new settings, those gone are stopped, the new ones start
    /// spread over their interval.
    pub fn follow(&mut self, config: &Config, shards: &Shards, recoveries: &Recoveries) {
        let all: Vec<(ServiceKey, &RealServer)> = config
            .services
            .iter()
            .flat_map(|s| s.real_servers.iter().map(move |rs| (s.key, rs)))
            .collect();
        let mut gone = std::mem::take(&mut self.running);
        let n = all.len().max(1);
        let slots = groups(n);
        let base = tokio::time::Instant::now();
        for (i, (service, rs)) in all.into_iter().enumerate() {
            let key = (service, rs.key);
            let settings = Settings {
                rs: rs.clone(),
                recovered: recoveries.signal(&service),
            };
            if let Some(running) = gone.remove(&key) {
                // Ignored if the task ended: it ends only when the loop
                // is gone.
                let _ = running.settings.send(settings);
                self.running.insert(key, running);
                continue;
            }
            // Spread the probes over the interval so they do not all
            // start together, in groups that start together: one wake-up
            // of a thread then serves a group (its timers, and the
            // answers that come back at about the same time) instead of
            // one probe.
            let place = Place {
                base,
                slot: (i * slots / n) as u32,
                slots: slots as u32,
            };
            let shard = shards.for_probe(i);
            let (tx, rx) = watch::channel(settings);
            let id = self.next_id;
            self.next_id += 1;
            let task = ProbeTask {
                service,
                id,
                shared: self.shared.clone(),
                admission: shard.admission.clone(),
                lag: shard.lag.clone(),
            };
            let task = shard.handle.spawn(task.run(place, rx)).abort_handle();
            self.running.insert(
                key,
                Running {
                    id,
                    settings: tx,
                    task,
                },
            );
        }
        for running in gone.into_values() {
            running.task.abort();
        }
    }

    /// Whether `report` comes from the task now probing its real server.
    pub fn current(&self, report: &Report) -> bool {
        self.running
            .get(&(report.service, report.destination))
            .is_some_and(|r| r.id == report.task)
    }

    /// Stops every task.
    pub fn stop(&mut self) {
        for (_, running) in self.running.drain() {
            running.task.abort();
        }
    }
}

impl Drop for ProbeTasks {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One real server's probes.
struct ProbeTask {
    service: ServiceKey,
    id: u64,
    shared: Shared,
    admission: Arc<super::admission::Admission>,
    lag: Arc<super::lag::Lag>,
}

/// The turns a probe waits for.
enum Turns {
    /// Only a slot (see [`super::admission`]).
    Slot,
    /// A full handshake's or a program's first, then a slot: all inside
    /// the probe's future.
    Every,
}

/// How a probe task waits for its next probe.
fn ticks(first: tokio::time::Instant, every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval_at(first, every);
    // A probe that started late (waiting for a permit) skips to its
    // group's next tick, so the groups stay together.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks
}

/// A real server's place among the probes of its interval: its share of
/// the interval, counted from when its task was made. The tasks made
/// together are spread over the interval by their shares, so after a
/// reload that changes the interval they are spread over the new one as
/// they were over the old: keeping each one's phase instead (an interval
/// after its last probe, folded onto the shorter interval) put the
/// probes of a 10 s interval made 6 s two groups to a tick, and the
/// groups once together stayed together at every reload after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    pub base: tokio::time::Instant,
    /// Its group, of `slots` spread over the interval.
    pub slot: u32,
    pub slots: u32,
}

impl Place {
    /// Its first probe at the interval `every`.
    pub(super) fn first(&self, every: Duration) -> tokio::time::Instant {
        self.base + every / self.slots.max(1) * self.slot
    }

    /// Its first probe at the interval `every` that is not before `now`:
    /// within an interval of `now`, and, for an interval that did not
    /// change, an interval after the last probe.
    pub(super) fn next(&self, every: Duration, now: tokio::time::Instant) -> tokio::time::Instant {
        let first = self.first(every);
        if first >= now || every.is_zero() {
            return first;
        }
        let into = (now - first).as_nanos() % every.as_nanos();
        if into == 0 {
            return now;
        }
        now + (every - Duration::from_nanos(u64::try_from(into).unwrap_or(0)))
    }
}

impl ProbeTask {
    /// Probes at its `place` in every interval, with the latest
    /// `settings`, until aborted or the loop is gone.
    async fn run(self, place: Place, mut settings: watch::Receiver<Settings>) {
        let Settings {
            mut rs,
            mut recovered,
        } = settings.borrow_and_update().clone();
        let mut prober = ProberSet::new(&rs.checks, rs.source, &self.service);
        let mut ticks = ticks(place.first(rs.timing.interval), rs.timing.interval);
        // A probe cut by new settings, to be made again at once.
        let mut again = false;
        // Whether the last probe could not connect (refused, unreachable):
        // then another real server's recovery is a reason to probe again
        // at once. Only those: such a probe costs little and ends at once,
        // where a timeout may be the checker's own overload, which probing
        // again would feed.
        let mut refused = false;
        loop {
            let probe_now = std::mem::take(&mut again)
                || tokio::select! {
                    _ = ticks.tick() => true,
                    _ = recovered.notified(), if refused => true,
                    changed = settings.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        false
                    }
                };
            if probe_now {
                let now = tokio::time::Instant::now();
                let turns = self.start(&prober, rs.timing.timeout, now);
                // The usual probe waits for its slot before its future is
                // made: while the checker is short of CPU every real
                // server waits its turn at once, each holding a slot's
                // wait of a few words instead of a probe's future.
                let slot = match turns {
                    Turns::Slot => match self.admission.slot().await {
                        Some(slot) => Some(slot),
                        None => return,
                    },
                    Turns::Every => None,
                };
                // New settings that change only the timing come into force
                // after the probe; others cut it.
                let mut retimed = false;
                let report = {
                    // Boxed: held only while the probe is in flight, not
                    // for the task's whole life, and never moved.
                    let mut probing =
                        Box::pin(self.probe(&mut prober, rs.key, rs.timing.timeout, now, slot));
                    loop {
                        tokio::select! {
                            report = &mut probing => break report,
                            changed = settings.changed() => {
                                if changed.is_err() {
                                    return;
                                }
                                if settings.borrow().rs.probes_as(&rs) {
                                    retimed = true;
                                    continue;
                                }
                                // Cut: made again at once with the new
                                // settings (below), the ticks after it
                                // where they were.
                                again = true;
                                break None;
                            }
                        }
                    }
                };
                if !again {
                    let Some(report) = report else {
                        return;
                    };
                    refused = report.refused();
                    tracing::trace!(real_server = %rs.key, took = ?report.phases.total(), ok = report.result.is_ok(), checker_fault = ?report.checker_fault, "probe");
                    // Never waits: a loop held up by the kernel or the
                    // disk does not hold up the probes.
                    if !self.shared.reports.send(report) {
                        return;
                    }
                    if !retimed {
                        continue;
                    }
                }
            }
            // New settings: the ticks at its place in the new interval;
            // the probers kept if they probe as before (their TLS
            // sessions and connections with them).
            let new = settings.borrow_and_update().clone();
            if !new.rs.probes_as(&rs) {
                prober = ProberSet::new(&new.rs.checks, new.rs.source, &self.service);
            }
            Settings { rs, recovered } = new;
            let next = place.next(rs.timing.interval, tokio::time::Instant::now());
            ticks = self::ticks(next, rs.timing.interval);
        }
    }

    /// A probe with `timeout` starts at `now`: how busy the thread is
    /// decides how many probes it runs at once, and the probe's checks
    /// which turns it waits for.
    fn start(&self, prober: &ProberSet, timeout: Duration, now: tokio::time::Instant) -> Turns {
        self.admission.started(self.lag.recent(now), timeout, now);
        if prober.full_handshake_due(now.into_std()) || prober.runs_program() {
            Turns::Every
        } else {
            Turns::Slot
        }
    }

    /// One probe started at `now` (see [`ProbeTask::start`]), its turns
    /// waited for first unless its `slot` is given; `None` once the
    /// checker stops (the turns are closed).
    async fn probe(
        &self,
        prober: &mut ProberSet,
        destination: DestinationKey,
        timeout: Duration,
        now: tokio::time::Instant,
        slot: Option<super::admission::Slot>,
    ) -> Option<Report> {
        let report = |outcome, windows: &[(tokio::time::Instant, tokio::time::Instant)]| {
            Report::new(
                self.id,
                self.service,
                destination,
                outcome,
                &self.lag,
                windows,
                timeout,
            )
        };
        // A full handshake waits for its turn, and its connection is made
        // first ([`ProberSet::connect_ahead`]). The turn before the slot:
        // waiting for it does not hold one of the probes' slots, which
        // other checks need.
        let mut ahead = None;
        let _full = if slot.is_none() && prober.full_handshake_due(now.into_std()) {
            let began = tokio::time::Instant::now();
            let ended = prober.connect_ahead(timeout).await;
            let connected = tokio::time::Instant::now();
            if let Some(outcome) = ended {
                return Some(report(outcome, &[(began, connected)]));
            }
            ahead = Some((began, connected));
            Some(self.shared.full_handshakes.acquire().await.ok()?)
        } else {
            None
        };
        // A program's turn, as a full handshake's: waited for before the
        // timeout starts, so that programs queued behind slow ones are
        // late, not failed.
        let _program = if slot.is_none() && prober.runs_program() {
            Some(self.shared.programs.acquire().await.ok()?)
        } else {
            None
        };
        let _slot = match slot {
            Some(slot) => slot,
            None => self.admission.slot().await?,
        };
        let began = tokio::time::Instant::now();
        let outcome = prober.probe(timeout).await;
        let probing = (began, tokio::time::Instant::now());
        // After a connection made ahead, the checker's lateness while
        // connecting counts too (the wait between is not the probe's).
        Some(match ahead {
            Some(connecting) => report(outcome, &[connecting, probing]),
            None => report(outcome, &[probing]),
        })
    }
}
