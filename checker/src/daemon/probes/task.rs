//! One real server's probes: at its place in every interval, with the
//! latest settings, asked at once when its siblings begin to fail (see
//! [`super::super::hurries`]), each result sent to the loop.

use std::sync::Arc;
use std::time::Duration;

use ipvs::{DestinationKey, ServiceKey};
use tokio::sync::watch;

use super::super::admission::{Admission, Slot};
use super::super::bell::Bell;
use super::super::lag::Lag;
use super::super::places::{ticks, Place};
use super::super::reports::{Outbox, Report};
use super::{sleep_until, Settings, Shared};
use crate::config::RealServer;
use crate::prober::set::ProberSet;
use crate::prober::{Outcome, Side};

/// A real server found accepting when its siblings began to fail is asked
/// again this much later (a quarter of its interval if that is shorter):
/// a rack failing over a few hundred milliseconds (a server's processes
/// stopping one by one still accept meanwhile) is then found without
/// waiting for its ticks, for at most two handshakes a hurry
/// (lab/bench/README.md, run H1).
const ASK_AGAIN: Duration = Duration::from_millis(500);

/// One real server's probes.
pub(super) struct ProbeTask {
    pub service: ServiceKey,
    pub id: u64,
    /// What wakes it for new settings and its service's failure hurries.
    pub bell: Arc<Bell>,
    pub shared: Shared,
    pub admission: Arc<Admission>,
    pub lag: Arc<Lag>,
    /// Where its results go, with its thread's others (see [`Outbox`]).
    pub outbox: Arc<Outbox>,
}

/// The turns a probe waits for.
enum Turns {
    /// Only a slot (see [`super::super::admission`]).
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

impl ProbeTask {
    /// Probes at its `place` in every interval, with the latest
    /// `settings`, until aborted or the loop is gone.
    pub async fn run(self, place: Place, mut settings: watch::Receiver<Settings>) {
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
                    true = self.bell.until_changed(&mut refusing), if !refused => {
                        Wake::Ask { then_again: true }
                    }
                    () = sleep_until(ask_again), if ask_again.is_some() && !refused => {
                        Wake::Ask { then_again: false }
                    }
                    open = self.bell.until_changed(&mut settings) => {
                        if !open {
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
                                    true = self.bell.until_changed(&mut refusing), if !refused => {}
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
                            open = self.bell.until_changed(&mut settings) => {
                                if !open {
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
    /// its siblings began to fail (see [`super::super::hurries`]), unless `first`
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
        slot: Option<Slot>,
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
