//! How many probes are in flight at once on one probe thread (see
//! [`super::shards`]): at most its share of `--checker.max-concurrency`,
//! and fewer while the thread is too short of CPU for its probes to
//! finish within their timeouts.
//!
//! The probes of a thread share it, so each step of a probe (the connect,
//! each TLS flight, the answer) waits for every other probe that is ready
//! to take its own step. While the CPU keeps up that wait is nothing. When
//! it does not (hundreds of HTTPS probes a second on a slow core), the
//! waits of a probe's steps add up, with hundreds in flight, past its
//! timeout. Such a timeout is not held against the server (see
//! [`super::lag`]), but neither is it a probe: fewer in flight make each
//! probe quick again, and the others wait for their turn before their
//! timeout starts: late, not failed. lab/bench/README.md has the runs
//! that showed it.
//!
//! A saturated CPU shows as a late heartbeat (see [`super::lag`]): each
//! probe, as it starts, reads how far behind its thread was over the last
//! [`super::lag::RECENT`]. Late as [`super::lag::is_late`] says (more
//! than a tenth of the probe's timeout) cuts the limit to three quarters,
//! at most once per [`CUT_EVERY`], but only while the lateness costs
//! something: a probe of the thread failed by the checker's own fault,
//! or passed after more than half its timeout while the thread was late,
//! within the last two timeouts ([`Admission::harmed`]). A thread late by
//! less than its probes can bear (a VM whose other processes take the
//! CPU in turns, the thread a few hundred ms behind against timeouts of
//! seconds) loses nothing to it, where a cut would make every probe wait
//! for a slot: with fewer slots than the probes arriving need, the wait
//! grows and failures are seen late. While probes suffer, each start on
//! time (within a fortieth) adds a step towards one more slot, the
//! limit's worth of them one slot; once none has for two timeouts, the
//! limit goes back towards the maximum by a quarter at a time, at most
//! once per [`CUT_EVERY`] (from [`MIN`] to 128 in about three seconds). (A probe's own tick, read instead, misses a saturated
//! thread: once probes take longer than their interval, every tick is
//! already due when the last probe ends, and none is a sample.) A fixed
//! low limit would not do: probes waiting on servers that do not answer
//! hold their slots for their whole timeout without using the CPU, and
//! with few slots they would hold up every other probe.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::lag::is_late;
use crate::state::Shared;

/// The fewest probes in flight the limit is cut to.
pub const MIN: usize = 8;

/// The least time between two cuts: a cut shows once the probes in flight
/// have drained, and cutting at every late start would take the limit to
/// [`MIN`] within one such drain.
pub const CUT_EVERY: Duration = Duration::from_millis(250);

/// The least time between two warnings that the limit was cut.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The probes' slots: a semaphore whose permits follow [`Limit`].
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: Mutex<Limit>,
    /// Where the limit is shown (`ipvs_checker_probe_concurrency_limit`).
    state: Shared,
    /// Which probe thread's limit this is.
    shard: usize,
}

/// A probe's slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    admission: Arc<Admission>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        // A cut that found too few slots free takes this one.
        let mut limit = self.admission.lock();
        if limit.owed > 0 {
            limit.owed -= 1;
            permit.forget();
        }
    }
}

impl Admission {
    /// At most `max` probes in flight (at least 1) on probe thread
    /// `shard`, the limit shown in `state`.
    pub fn new(max: usize, state: Shared, shard: usize) -> Arc<Self> {
        let max = max.max(1);
        state.lock().set_probe_concurrency_limit(shard, max);
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(max)),
            limit: Mutex::new(Limit::new(max)),
            state,
            shard,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Limit> {
        // Every update leaves the limit consistent.
        self.limit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a slot; `None` once the semaphore is closed (never here).
    pub async fn slot(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        Some(Slot {
            permit: Some(permit),
            admission: self.clone(),
        })
    }

    /// A probe of this thread ended at `now` the worse for the thread's
    /// lateness: failed by the checker's own fault, or passed after more
    /// than half its timeout while the thread was late.
    pub fn harmed(&self, now: Instant) {
        self.lock().harmed(now);
    }

    /// A probe with `timeout` starts at `now`, its thread `late` behind
    /// (see [`super::lag::Lag::recent`]).
    pub fn started(&self, late: Duration, timeout: Duration, now: Instant) {
        let mut limit = self.lock();
        let before = limit.limit;
        match limit.started(late, timeout, now) {
            Change::None => return,
            Change::Cut(n) => {
                let free = self.slots.forget_permits(n);
                limit.owed += n - free;
            }
            Change::Grown(n) => {
                // Slots a cut still owes are forgiven first.
                let forgiven = n.min(limit.owed);
                limit.owed -= forgiven;
                self.slots.add_permits(n - forgiven);
            }
        }
        let (now_limit, max) = (limit.limit, limit.max);
        debug!(limit = now_limit, max, late = ?late, "probes in flight at once");
        if before == max && now_limit < max && limit.warned.is_none_or(|at| now >= at + WARN_EVERY)
        {
            limit.warned = Some(now);
            limit.short = true;
            warn!(
                limit = now_limit,
                max,
                late = ?late,
                "probes start late: the checker is short of CPU; fewer probes in flight at once, so that each finishes within its timeout (the others wait for their turn)"
            );
        } else if now_limit == max && limit.short {
            limit.short = false;
            info!(
                limit = max,
                "probes start on time again: as many in flight as allowed"
            );
        }
        drop(limit);
        self.state
            .lock()
            .set_probe_concurrency_limit(self.shard, now_limit);
    }
}

/// What a start did to the limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// Cut by this many slots.
    Cut(usize),
    /// Grown by this many slots.
    Grown(usize),
}

/// The limit's arithmetic, apart from the semaphore.
#[derive(Debug)]
pub struct Limit {
    limit: usize,
    max: usize,
    /// Slots a cut took that were in use: the next ones given back go.
    owed: usize,
    /// Starts on time since the limit last grew or was cut.
    on_time: usize,
    last_cut: Option<Instant>,
    /// When the limit last grew by a quarter.
    last_grown: Option<Instant>,
    /// When the limit's cut was last logged.
    warned: Option<Instant>,
    /// Whether the limit's return to the maximum is to be logged.
    short: bool,
    /// When a probe last ended the worse for the thread's lateness.
    harmed: Option<Instant>,
}

impl Limit {
    pub fn new(max: usize) -> Self {
        Limit {
            limit: max,
            max,
            owed: 0,
            on_time: 0,
            last_cut: None,
            last_grown: None,
            warned: None,
            short: false,
            harmed: None,
        }
    }

    /// A probe ended the worse for the thread's lateness at `now`.
    pub fn harmed(&mut self, now: Instant) {
        self.harmed = Some(now);
    }

    /// A probe with `timeout` started `late` after its tick, at `now`.
    pub fn started(&mut self, late: Duration, timeout: Duration, now: Instant) -> Change {
        // Whether a probe was the worse for the lateness lately.
        let costly = self.harmed.is_some_and(|at| now <= at + timeout * 2);
        if !costly {
            // Nothing suffers from the lateness, if any: back towards the
            // maximum by a quarter at a time, at most once per CUT_EVERY
            // (a cut then shows in a second or two, not in minutes).
            if self.limit >= self.max || self.last_grown.is_some_and(|at| now < at + CUT_EVERY) {
                return Change::None;
            }
            let grown = (self.limit + self.limit / 4)
                .max(self.limit + 1)
                .min(self.max);
            let by = grown - self.limit;
            self.limit = grown;
            self.on_time = 0;
            self.last_grown = Some(now);
            return Change::Grown(by);
        }
        if is_late(late, timeout) {
            let floor = MIN.min(self.max);
            if self.limit <= floor || self.last_cut.is_some_and(|at| now < at + CUT_EVERY) {
                return Change::None;
            }
            let cut = (self.limit * 3 / 4).max(floor);
            let by = self.limit - cut;
            self.limit = cut;
            self.on_time = 0;
            self.last_cut = Some(now);
            return Change::Cut(by);
        }
        // While probes suffer, a step towards one more slot for each start
        // on time.
        if late > timeout / 40 || self.limit >= self.max {
            return Change::None;
        }
        self.on_time += 1;
        if self.on_time < self.limit {
            return Change::None;
        }
        self.on_time = 0;
        self.limit += 1;
        Change::Grown(1)
    }

    /// The probes allowed in flight now.
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);
    const LATE: Duration = Duration::from_millis(101);
    const ON_TIME: Duration = Duration::from_millis(25);

    #[test]
    fn late_starts_cut_the_limit_to_three_quarters_at_most_once_per_cut_every_down_to_min() {
        let t0 = Instant::now();
        let mut limit = Limit::new(256);
        limit.harmed(t0);
        assert_eq!(limit.started(LATE, TIMEOUT, t0), Change::Cut(64));
        assert_eq!(limit.limit(), 192);
        let soon = t0 + CUT_EVERY - Duration::from_millis(1);
        assert_eq!(limit.started(LATE, TIMEOUT, soon), Change::None);
        assert_eq!(
            limit.started(LATE, TIMEOUT, t0 + CUT_EVERY),
            Change::Cut(48)
        );
        assert_eq!(limit.limit(), 144);
        // A tenth of the timeout late is not late yet.
        let tenth = TIMEOUT / 10;
        assert_eq!(
            limit.started(tenth, TIMEOUT, t0 + CUT_EVERY * 2),
            Change::None
        );
        let mut at = t0 + CUT_EVERY;
        for _ in 0..20 {
            at += CUT_EVERY;
            limit.harmed(at);
            limit.started(LATE, TIMEOUT, at);
        }
        assert_eq!(limit.limit(), MIN);
        at += CUT_EVERY;
        assert_eq!(limit.started(LATE, TIMEOUT, at), Change::None);
        // A maximum below MIN is the floor itself.
        let mut small = Limit::new(4);
        small.harmed(t0);
        assert_eq!(small.started(LATE, TIMEOUT, t0), Change::None);
        assert_eq!(small.limit(), 4);
    }

    #[test]
    fn late_starts_cut_only_within_two_timeouts_of_a_probe_the_worse_for_it() {
        let t0 = Instant::now();
        let mut limit = Limit::new(64);
        // Late, but no probe suffered from it: the probes bear the delay.
        for i in 0..8 {
            assert_eq!(
                limit.started(LATE, TIMEOUT, t0 + CUT_EVERY * i),
                Change::None
            );
        }
        assert_eq!(limit.limit(), 64);
        let harmed = t0 + CUT_EVERY * 8;
        limit.harmed(harmed);
        assert_eq!(limit.started(LATE, TIMEOUT, harmed), Change::Cut(16));
        let last = harmed + TIMEOUT * 2;
        assert_eq!(limit.started(LATE, TIMEOUT, last), Change::Cut(12));
        // The memory is the starting probe's timeouts: a 5 s probe's
        // start still sees it.
        let after = last + CUT_EVERY;
        assert_eq!(limit.started(LATE * 5, TIMEOUT * 5, after), Change::Cut(9));
        // A 1 s probe's, two timeouts after the last probe the worse for
        // it, does not: back to the maximum by a quarter at a time, at
        // most once per CUT_EVERY, however late the starts.
        assert_eq!(limit.started(LATE, TIMEOUT, after), Change::Grown(6));
        assert_eq!(limit.started(LATE, TIMEOUT, after), Change::None);
        let calm = after;
        let mut at = calm;
        let mut steps = vec![limit.limit()];
        while limit.limit() < 64 {
            at += CUT_EVERY;
            assert!(matches!(limit.started(LATE, TIMEOUT, at), Change::Grown(_)));
            steps.push(limit.limit());
        }
        assert_eq!(steps, vec![33, 41, 51, 63, 64]);
    }

    #[test]
    fn starts_on_time_grow_the_limit_one_slot_per_limits_worth_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut limit = Limit::new(16);
        limit.harmed(t0);
        assert_eq!(limit.started(LATE, TIMEOUT, t0), Change::Cut(4));
        for _ in 0..11 {
            assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::None);
        }
        // Neither late nor on time: no step either way.
        assert_eq!(limit.started(ON_TIME * 2, TIMEOUT, t0), Change::None);
        assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::Grown(1));
        assert_eq!(limit.limit(), 13);
        let mut grown = 0;
        for _ in 0..100 {
            if limit.started(Duration::ZERO, TIMEOUT, t0) == Change::Grown(1) {
                grown += 1;
            }
        }
        assert_eq!(
            (grown, limit.limit()),
            (3, 16),
            "13 + 14 + 15 starts, then the maximum"
        );
        // A cut forgets the starts counted towards growing.
        let mut limit = Limit::new(16);
        limit.harmed(t0);
        limit.started(LATE, TIMEOUT, t0);
        for _ in 0..11 {
            limit.started(ON_TIME, TIMEOUT, t0);
        }
        limit.started(LATE, TIMEOUT, t0 + CUT_EVERY);
        assert_eq!(limit.limit(), 9);
        for _ in 0..8 {
            assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::None);
        }
        assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::Grown(1));
    }

    #[tokio::test]
    async fn a_cut_takes_free_slots_at_once_and_busy_ones_as_they_come_back() {
        let config = crate::config::parse(
            "services:\n  - address: 198.18.0.10:80\n    check: {type: tcp}\n    real_servers:\n      - address: 198.18.1.11:80\n",
            std::path::Path::new("test.yaml"),
            std::path::Path::new("."),
        )
        .expect("config");
        let state = Shared::new(&config);
        let admission = Admission::new(16, state.clone(), 0);
        assert_eq!(state.lock().probe_concurrency_limit(), Some(16));
        let mut busy = Vec::new();
        for _ in 0..14 {
            busy.push(admission.slot().await.expect("slot"));
        }
        // 16 -> 12: the 2 free slots go now, 2 of the busy ones when
        // given back.
        let t0 = Instant::now();
        admission.harmed(t0);
        admission.started(LATE, TIMEOUT, t0);
        assert_eq!(state.lock().probe_concurrency_limit(), Some(12));
        assert_eq!(admission.slots.available_permits(), 0);
        busy.truncate(11);
        assert_eq!(admission.slots.available_permits(), 1);
        // Growing first cancels what is owed; none is owed now.
        for _ in 0..12 {
            admission.started(Duration::ZERO, TIMEOUT, t0);
        }
        assert_eq!(state.lock().probe_concurrency_limit(), Some(13));
        assert_eq!(admission.slots.available_permits(), 2);
        busy.clear();
        assert_eq!(admission.slots.available_permits(), 13);
        // A cut while owing: the next slots given back are kept.
        let mut busy = Vec::new();
        for _ in 0..13 {
            busy.push(admission.slot().await.expect("slot"));
        }
        admission.started(LATE, TIMEOUT, t0 + CUT_EVERY);
        assert_eq!(state.lock().probe_concurrency_limit(), Some(9));
        for _ in 0..9 {
            admission.started(Duration::ZERO, TIMEOUT, t0);
        }
        assert_eq!(state.lock().probe_concurrency_limit(), Some(10));
        busy.clear();
        assert_eq!(admission.slots.available_permits(), 10);
    }
}
