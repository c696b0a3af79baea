//! The probe tasks: one per real server, on the probe threads (see
//! [`super::shards`]), spread over its interval, each reporting its
//! results to the loop (see [`super::reports`]).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{abortable, AbortHandle};
use ipvs::{DestinationKey, ServiceKey};
use rustc_hash::FxHashMap;
use tokio::sync::{watch, Semaphore};

use super::admission::Admission;
use super::hurries::{Hurries, ServiceHurry};
use super::places::{group_of, groups, interleaved, ticks, Place};
use super::reports::{Outbox, Report};
use super::shards::Shards;
use crate::config::{Config, RealServer};
use crate::prober::set::ProberSet;
use crate::prober::{Outcome, Side};

/// A real server found accepting when its siblings began to fail is asked
/// again this much later (a quarter of its interval if that is shorter):
/// a rack failing over a few hundred milliseconds (a server's processes
/// stopping one by one still accept meanwhile) is then found without
/// waiting for its ticks, for at most two handshakes a hurry
/// (lab/bench/README.md, run H1).
const ASK_AGAIN: Duration = Duration::from_millis(500);

/// The probe tasks, one per real server of the config, in groups on the
/// probe threads in turn (see [`super::places`]).
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
    /// Looked up for every probe result ([`ProbeTasks::current`]).
    running: FxHashMap<(ServiceKey, DestinationKey), Running>,
    /// The id the next task gets: a report names the task that made it,
    /// and one of a task since stopped is not taken in.
    next_id: u64,
}

/// What every probe task is given.
#[derive(Debug, Clone)]
struct Shared {
    full_handshakes: Arc<Semaphore>,
    /// Turns of the `exec` checks' programs (`--checker.max-programs`,
    /// fewer while they wait for a CPU: see [`super::admission`]).
    programs: Arc<Admission>,
}

#[derive(Debug)]
struct Running {
    id: u64,
    settings: watch::Sender<Settings>,
    task: AbortHandle,
}

/// A probe task's real server as configured, and its service's hurries
/// (see [`super::hurries`]): both given again on a reload.
#[derive(Debug, Clone)]
struct Settings {
    rs: RealServer,
    hurry: Arc<ServiceHurry>,
    /// The count of its service's failure hurries (see
    /// [`ServiceHurry::refusing`]).
    refusing: watch::Receiver<u64>,
}

impl ProbeTasks {
    pub fn new(full_handshakes: &Arc<Semaphore>, programs: &Arc<Admission>) -> Self {
        ProbeTasks {
            shared: Shared {
                full_handshakes: full_handshakes.clone(),
                programs: programs.clone(),
            },
            running: FxHashMap::default(),
            next_id: 0,
        }
    }

    /// Probes the real servers of `config`: the tasks of those that stay
    /// get their new settings, those gone are stopped, the new ones start
    /// spread over their interval.
    pub fn follow(&mut self, config: &Config, shards: &Shards, hurries: &Hurries) {
        let services = &config.services;
        let sizes: Vec<usize> = services.iter().map(|s| s.real_servers.len()).collect();
        let all: Vec<(ServiceKey, &RealServer)> = interleaved(&sizes)
            .into_iter()
            .map(|(s, j)| (services[s].key, &services[s].real_servers[j]))
            .collect();
        let mut gone = std::mem::take(&mut self.running);
        // The new tasks of each thread, spawned there together (below).
        let mut new = Vec::new();
        new.resize_with(shards.len(), Vec::new);
        let n = all.len().max(1);
        let slots = groups(n, shards.len());
        let base = tokio::time::Instant::now();
        for (i, (service, rs)) in all.into_iter().enumerate() {
            let key = (service, rs.key);
            let hurry = hurries.of(&service);
            let settings = Settings {
                rs: rs.clone(),
                refusing: hurry.refusing(),
                hurry,
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
            let (slot, thread) = group_of(i, n, slots, shards.len());
            let place = Place {
                base,
                slot: slot as u32,
                slots: slots as u32,
            };
            let shard = shards.get(thread);
            let (tx, rx) = watch::channel(settings);
            let id = self.next_id;
            self.next_id += 1;
            let task = ProbeTask {
                service,
                id,
                shared: self.shared.clone(),
                admission: shard.admission.clone(),
                lag: shard.lag.clone(),
                outbox: shard.outbox.clone(),
            };
            let (run, task) = abortable(task.run(place, rx));
            new[thread.min(shards.len() - 1)].push(run);
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
        for (i, tasks) in new.into_iter().enumerate() {
            shards.get(i).spawn_together(tasks);
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
    /// Where its results go, with its thread's others (see [`Outbox`]).
    outbox: Arc<Outbox>,
}

/// The turns a probe waits for.
enum Turns {
    /// Only a slot (see [`super::admission`]).
    Slot,
    /// A full handshake's or a program's first, then a slot: all inside
    /// the probe's future.
    Every,
}

/// What woke a probe task.
enum Wake {
    /// Its tick, a sibling's recovery, or a probe cut by new settings.
    Probe,
    /// Siblings began to fail: ask whether it refuses, and, if it accepts
    /// and `then_again`, once more a little later (see [`ASK_AGAIN`]).
    Ask { then_again: bool },
    /// New settings.
    Settings,
}

/// What asking a real server whether it refuses found.
enum Asked<T> {
    /// It refused (or was unreachable): a failed probe, reported; whether
    /// that report was a refusal and a failure on the server's word (see
    /// [`Report::refused`], [`Report::failed_by_server`]).
    Reported((bool, bool)),
    /// The loop is gone: the report had nowhere to go.
    Gone,
    /// It connected, did not answer in time, or its checks cannot be
    /// asked: nothing to report, its probes keep to their ticks.
    NoRefusal,
    /// What it was raced with came first (its tick, its slot).
    First(T),
}

/// Sleeps until `at`; never returns for `None` (the branch is disabled
/// then anyway). For the loop's branches as for the probe tasks'.
pub(super) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl ProbeTask {
    /// Probes at its `place` in every interval, with the latest
    /// `settings`, until aborted or the loop is gone.
    async fn run(self, place: Place, mut settings: watch::Receiver<Settings>) {
        let Settings {
            mut rs,
            mut hurry,
            mut refusing,
        } = settings.borrow_and_update().clone();
        let mut prober = ProberSet::new(&rs.checks, rs.source, &self.service);
        let mut ticks = ticks(place.first(rs.timing.interval), rs.timing.interval);
        // A probe cut by new settings, to be made again at once.
        let mut again = false;
        // Whether the last probe could not connect (refused, unreachable):
        // then another real server's recovery is a reason to probe again
        // at once. Only those: such a probe costs little and ends at once,
        // where a timeout may be the checker's own overload, which probing
        // again would feed. Those that could are asked at once whether
        // they refuse too when their siblings begin to fail.
        let mut refused = false;
        // Whether the last probe failed on the server's word (see
        // [`Report::failed_by_server`]): a server beginning to is counted
        // towards its siblings' hurry.
        let mut failing = false;
        // When it asks once more (see [`ASK_AGAIN`]).
        let mut ask_again = None;
        // Its tick came as it was asked: the ask goes on while its probe
        // waits for a slot.
        let mut asking = false;
        'probes: loop {
            let wake = if std::mem::take(&mut again) {
                Wake::Probe
            } else {
                // `biased` here and below: the branches in the order
                // written, without drawing a random number at every
                // wake-up of every real server's task to pick one.
                tokio::select! {
                    biased;
                    _ = ticks.tick() => Wake::Probe,
                    _ = hurry.recovered.notified(), if refused => Wake::Probe,
                    Ok(()) = refusing.changed(), if !refused => Wake::Ask { then_again: true },
                    () = sleep_until(ask_again), if ask_again.is_some() && !refused => {
                        Wake::Ask { then_again: false }
                    }
                    changed = settings.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        Wake::Settings
                    }
                }
            };
            let probe_now = match wake {
                Wake::Probe => true,
                Wake::Settings => false,
                Wake::Ask { then_again } => {
                    ask_again = None;
                    let tick = std::pin::pin!(ticks.tick());
                    match self.ask_refuses(&mut prober, &rs, tick).await {
                        Asked::Reported(was) => {
                            (refused, failing) = was;
                            continue;
                        }
                        Asked::Gone => return,
                        Asked::NoRefusal => {
                            if then_again {
                                let after = ASK_AGAIN.min(rs.timing.interval / 4);
                                ask_again = Some(tokio::time::Instant::now() + after);
                            }
                            continue;
                        }
                        // Its probe is due anyway; while it waits for
                        // a slot (seconds, short of CPU), it is asked.
                        Asked::First(_) => {
                            asking = true;
                            true
                        }
                    }
                }
            };
            if probe_now {
                // The probe judges it: no need to ask again.
                ask_again = None;
                let now = tokio::time::Instant::now();
                let turns = self.start(&prober, rs.timing.timeout, now);
                // The usual probe waits for its slot before its future is
                // made: while the checker is short of CPU every real
                // server waits its turn at once, each holding a slot's
                // wait of a few words instead of a probe's future.
                // Siblings beginning to fail while it waits (an overload's
                // queue can be seconds long) ask it at once, without a
                // slot: a refusal is reported instead of the probe, which
                // could say no more.
                // A slot free at once, and nothing to ask: no wait.
                let free = match turns {
                    Turns::Slot if !asking => self.admission.free_slot(),
                    _ => None,
                };
                let slot = match (turns, free) {
                    (_, Some(slot)) => Some(slot),
                    (Turns::Slot, None) => {
                        let mut waiting = std::pin::pin!(self.admission.slot());
                        let slot = loop {
                            if !std::mem::take(&mut asking) {
                                tokio::select! {
                                    biased;
                                    slot = &mut waiting => break slot,
                                    Ok(()) = refusing.changed(), if !refused => {}
                                }
                            }
                            match self.ask_refuses(&mut prober, &rs, waiting.as_mut()).await {
                                Asked::Reported(was) => {
                                    (refused, failing) = was;
                                    continue 'probes;
                                }
                                Asked::Gone => return,
                                Asked::NoRefusal => {}
                                Asked::First(slot) => break slot,
                            }
                        };
                        match slot {
                            Some(slot) => Some(slot),
                            None => return,
                        }
                    }
                    (Turns::Every, None) => {
                        asking = false;
                        None
                    }
                };
                // The probe's connection, made from now, answers any
                // hurry so far; one that comes while it is in flight is
                // answered only by its failure (below).
                refusing.borrow_and_update();
                // New settings that change only the timing come into force
                // after the probe; others cut it.
                let mut retimed = false;
                let report = {
                    // In the task's own future, not boxed: an allocation
                    // of a probe's size for every probe took glibc's slow
                    // path (lab/bench/README.md, "2026-12-06, early
                    // morning"). Between probes the task holds its room
                    // unused.
                    let mut probing = std::pin::pin!(self.probe(
                        &mut prober,
                        rs.key,
                        rs.timing.timeout,
                        now,
                        slot
                    ));
                    loop {
                        tokio::select! {
                            biased;
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
                    let Some(mut report) = report else {
                        return;
                    };
                    refused = report.refused();
                    let was = std::mem::replace(&mut failing, report.failed_by_server());
                    report.hurried = failing && !was && hurry.began_failing(now);
                    if report.hurried {
                        tracing::info!(service = %self.service, "real servers began to fail: the others are asked at once whether they refuse connections");
                    }
                    // A hurry sent while it probed is answered by its
                    // failure. A pass is no answer: its connection may
                    // have been made before its server began to refuse,
                    // and the server is asked next.
                    if report.result.is_err() {
                        refusing.borrow_and_update();
                    }
                    tracing::trace!(real_server = %rs.key, took = ?report.phases.total(), ok = report.result.is_ok(), checker_fault = ?report.checker_fault, "probe");
                    // Never waits: a loop held up by the kernel or the
                    // disk does not hold up the probes.
                    if !self.outbox.send(report, self.lag.idle()) {
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
            Settings {
                rs,
                hurry,
                refusing,
            } = new;
            let next = place.next(rs.timing.interval, tokio::time::Instant::now());
            ticks = self::ticks(next, rs.timing.interval);
        }
    }

    /// Asks whether its real server refuses connections now, as some of
    /// its siblings began to fail (see [`super::hurries`]), unless `first`
    /// (its tick, or its slot) ends first; a refusal is reported.
    async fn ask_refuses<T>(
        &self,
        prober: &mut ProberSet,
        rs: &RealServer,
        first: std::pin::Pin<&mut impl std::future::Future<Output = T>>,
    ) -> Asked<T> {
        let busy = self.lag.busy();
        let began = tokio::time::Instant::now();
        let report = tokio::select! {
            biased;
            outcome = prober.refuses(rs.timing.timeout) => match outcome {
                Some(outcome) => {
                    let ended = tokio::time::Instant::now();
                    Report::new(
                        self.id,
                        self.service,
                        rs.key,
                        outcome,
                        &self.lag,
                        &[(began, ended)],
                        rs.timing.timeout,
                    )
                }
                None => return Asked::NoRefusal,
            },
            t = first => return Asked::First(t),
        };
        // Out of flight first: the last ask of a group sends the group's
        // results.
        drop(busy);
        let was = (report.refused(), report.failed_by_server());
        if self.outbox.send(report, self.lag.idle()) {
            Asked::Reported(was)
        } else {
            Asked::Gone
        }
    }

    /// A probe with `timeout` starts at `now`: how busy the thread is
    /// decides how many probes it runs at once, and the probe's checks
    /// which turns it waits for.
    fn start(&self, prober: &ProberSet, timeout: Duration, now: tokio::time::Instant) -> Turns {
        self.admission
            .started(self.lag.recent_after_warm_up(now), timeout, now);
        if prober.full_handshake_due(now.into_std()) || prober.runs_program() {
            Turns::Every
        } else {
            Turns::Slot
        }
    }

    /// A program's probe ended at `now` with `outcome`: what it waited
    /// for a CPU decides how many programs run at once. One that was cut
    /// off as the checker's timeout waited longer than its timeout.
    fn program_ended(&self, outcome: &Outcome, timeout: Duration, now: tokio::time::Instant) {
        let waited = match (outcome.program_waited, outcome.timed_out_on) {
            (Some(waited), _) => waited,
            (None, Some(Side::Checker)) => timeout,
            (None, _) => return,
        };
        self.shared.programs.started(waited, timeout, now);
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
        let _busy = self.lag.busy();
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
        let program = if slot.is_none() && prober.runs_program() {
            Some(self.shared.programs.slot().await?)
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
        if program.is_some() {
            self.program_ended(&outcome.outcome, timeout, probing.1);
        }
        // After a connection made ahead, the checker's lateness while
        // connecting counts too (the wait between is not the probe's).
        Some(match ahead {
            Some(connecting) => report(outcome, &[connecting, probing]),
            None => report(outcome, &[probing]),
        })
    }
}
