//! How many probes are in flight at once on one probe thread (see
//! [`super::shards`]): at most its share of `--checker.max-concurrency`,
//! and fewer while the thread is short of CPU.
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
//! [`super::lag::RECENT`], its first probes' slowness left out (see
//! [`super::lag::Lag::recent_after_warm_up`]). Late as
//! [`super::lag::is_late`] says (more than a tenth of the probe's
//! timeout) cuts the limit to three quarters, at most once per
//! [`CUT_EVERY`]; each start on time (within a fortieth) adds a step
//! towards one more, the limit's worth of them one more slot. (A probe's
//! own tick, read instead, misses a saturated thread: once probes take
//! longer than their interval, every tick is already due when the last
//! probe ends, and none is a sample.) A fixed low limit would not do:
//! probes waiting on servers that do not answer hold their slots for
//! their whole timeout without using the CPU, and with few slots they
//! would hold up every other probe.
//!
//! The `exec` checks' programs have a limit of the same kind over the
//! whole checker (`--checker.max-programs`), cut and grown by the same
//! arithmetic on what each program waited for a CPU (see
//! `crate::prober::cpu_wait`), read as it ends, down to the number of
//! CPUs, with fractions of their own ([`PROGRAMS`]): programs that each
//! need the CPU for a while, started together on too few CPUs, all take
//! their whole timeout and are killed, their CPU spent for no check;
//! fewer at once each finish, and the others wait for their turn before
//! their timeout starts.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::prober::watch::LATE_PART;
use crate::state::Shared;

/// The fewest probes in flight the limit is cut to.
pub const MIN: usize = 8;

/// The least time between two cuts: a cut shows once the probes in flight
/// have drained, and cutting at every late start would take the limit to
/// [`MIN`] within one such drain.
pub const CUT_EVERY: Duration = Duration::from_millis(250);

/// The least time between two warnings that the limit was cut.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The cores this process may use, at least one.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The probes' slots: a semaphore whose permits follow [`Limit`].
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: Mutex<Limit>,
    /// Where the limit is shown (`ipvs_checker_probe_concurrency_limit`,
    /// `ipvs_checker_program_concurrency_limit`).
    state: Shared,
    admits: Admits,
}

/// What an [`Admission`] admits.
#[derive(Debug, Clone, Copy)]
enum Admits {
    /// The probes of one probe thread.
    Probes { shard: usize },
    /// The `exec` checks' programs, over the whole checker.
    Programs,
}

impl Admits {
    fn show(self, state: &Shared, limit: usize) {
        match self {
            Admits::Probes { shard } => state.lock().limits.set_probes(shard, limit),
            Admits::Programs => state.lock().limits.set_programs(limit),
        }
    }
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
        let limit = Limit::new(max.max(1), MIN);
        Self::of(limit, state, Admits::Probes { shard })
    }

    /// At most `max` programs running at once (at least 1), over the whole
    /// checker, cut down to the CPUs this process may use.
    pub fn programs(max: usize, state: Shared) -> Arc<Self> {
        let limit = Limit::new(max.max(1), cores()).judged(PROGRAMS);
        Self::of(limit, state, Admits::Programs)
    }

    fn of(limit: Limit, state: Shared, admits: Admits) -> Arc<Self> {
        admits.show(&state, limit.max);
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(limit.max)),
            limit: Mutex::new(limit),
            state,
            admits,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Limit> {
        self.limit.lock()
    }

    /// A slot, if one is free now (and no probe waits for one).
    pub fn free_slot(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        Some(Slot {
            permit: Some(permit),
            admission: self.clone(),
        })
    }

    /// Waits for a slot; `None` once the semaphore is closed (never here).
    pub async fn slot(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        Some(Slot {
            permit: Some(permit),
            admission: self.clone(),
        })
    }

    /// A probe with `timeout` starts at `now`, its thread `late` behind
    /// (see [`super::lag::Lag::recent`]); or a program with `timeout`
    /// ended at `now`, having waited `late` for a CPU.
    pub fn started(&self, late: Duration, timeout: Duration, now: Instant) {
        let mut limit = self.lock();
        let before = limit.limit;
        match limit.started(late, timeout, now) {
            Change::None => return,
            Change::Cut(n) => {
                let free = self.slots.forget_permits(n);
                limit.owed += n - free;
            }
            Change::Grown => {
                if limit.owed > 0 {
                    limit.owed -= 1;
                } else {
                    self.slots.add_permits(1);
                }
            }
        }
        let (now_limit, max) = (limit.limit, limit.max);
        debug!(limit = now_limit, max, late = ?late, admits = ?self.admits, "at once");
        if before == max && now_limit < max && limit.warned.is_none_or(|at| now >= at + WARN_EVERY)
        {
            limit.warned = Some(now);
            limit.short = true;
            match self.admits {
                Admits::Probes { .. } => warn!(
                    limit = now_limit,
                    max,
                    late = ?late,
                    "probes start late: the checker is short of CPU; fewer probes in flight at once, so that each finishes within its timeout (the others wait for their turn)"
                ),
                Admits::Programs => warn!(
                    limit = now_limit,
                    max,
                    waited = ?late,
                    "check programs wait for a CPU: the machine is short of CPU; fewer programs run at once, so that each finishes within its timeout (the others wait for their turn)"
                ),
            }
        } else if now_limit == max && limit.short {
            limit.short = false;
            match self.admits {
                Admits::Probes { .. } => info!(
                    limit = max,
                    "probes start on time again: as many in flight as allowed"
                ),
                Admits::Programs => info!(
                    limit = max,
                    "check programs get a CPU at once again: as many run at once as allowed"
                ),
            }
        }
        drop(limit);
        self.admits.show(&self.state, now_limit);
    }
}

/// Late and on time, as fractions of the timeout: more than `late`
/// cuts, at most `on_time` counts towards growing.
#[derive(Debug, Clone, Copy)]
pub struct Fractions {
    late: u32,
    on_time: u32,
}

/// A probe's: late as [`super::lag::is_late`] says, more than a tenth of
/// its timeout (its steps' waits add up); on time within a fortieth.
const PROBES: Fractions = Fractions {
    late: LATE_PART,
    on_time: 40,
};

/// A program's: what it waited for a CPU is its whole delay, and a
/// quarter of its timeout leaves it three quarters to finish; the limit
/// grows only while programs wait under a tenth. Cut at a tenth, as
/// probes are, the limit ran too few at once to keep the lab's CPUs busy,
/// and fewer checks were made (lab/bench/README.md).
const PROGRAMS: Fractions = Fractions {
    late: 4,
    on_time: 10,
};

/// What a start did to the limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// Cut by this many slots.
    Cut(usize),
    /// One slot more.
    Grown,
}

/// The limit's arithmetic, apart from the semaphore.
#[derive(Debug)]
pub struct Limit {
    limit: usize,
    max: usize,
    /// The fewest it is cut to (but a smaller `max`).
    floor: usize,
    fractions: Fractions,
    /// Slots a cut took that were in use: the next ones given back go.
    owed: usize,
    /// Starts on time since the limit last grew or was cut.
    on_time: usize,
    last_cut: Option<Instant>,
    /// When the limit's cut was last logged.
    warned: Option<Instant>,
    /// Whether the limit's return to the maximum is to be logged.
    short: bool,
}

impl Limit {
    pub fn new(max: usize, floor: usize) -> Self {
        Limit {
            limit: max,
            max,
            floor,
            fractions: PROBES,
            owed: 0,
            on_time: 0,
            last_cut: None,
            warned: None,
            short: false,
        }
    }

    /// This limit, judging lateness by `fractions` of the timeout.
    pub fn judged(self, fractions: Fractions) -> Self {
        Limit { fractions, ..self }
    }

    /// A probe with `timeout` started `late` after its tick, at `now`.
    pub fn started(&mut self, late: Duration, timeout: Duration, now: Instant) -> Change {
        if late > timeout / self.fractions.late {
            let floor = self.floor.min(self.max);
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
        if late > timeout / self.fractions.on_time || self.limit >= self.max {
            return Change::None;
        }
        self.on_time += 1;
        if self.on_time < self.limit {
            return Change::None;
        }
        self.on_time = 0;
        self.limit += 1;
        Change::Grown
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
        let mut limit = Limit::new(256, MIN);
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
            limit.started(LATE, TIMEOUT, at);
        }
        assert_eq!(limit.limit(), MIN);
        at += CUT_EVERY;
        assert_eq!(limit.started(LATE, TIMEOUT, at), Change::None);
        // A maximum below MIN is the floor itself.
        let mut small = Limit::new(4, MIN);
        assert_eq!(small.started(LATE, TIMEOUT, t0), Change::None);
        assert_eq!(small.limit(), 4);
    }

    #[test]
    fn a_floor_above_the_maximum_is_the_maximum_and_below_it_stops_the_cuts() {
        let t0 = Instant::now();
        let mut programs = Limit::new(32, 2);
        let mut at = t0;
        let mut limits = Vec::new();
        for _ in 0..10 {
            programs.started(LATE, TIMEOUT, at);
            limits.push(programs.limit());
            at += CUT_EVERY;
        }
        assert_eq!(limits, [24, 18, 13, 9, 6, 4, 3, 2, 2, 2]);
        let mut one = Limit::new(1, 2);
        assert_eq!(one.started(LATE, TIMEOUT, t0), Change::None);
        assert_eq!(one.limit(), 1);
    }

    #[test]
    fn a_program_is_late_past_a_quarter_of_its_timeout_and_on_time_within_a_tenth() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut programs = Limit::new(8, 2).judged(PROGRAMS);
        assert_eq!(programs.started(ms(250), TIMEOUT, t0), Change::None);
        assert_eq!(programs.started(ms(251), TIMEOUT, t0), Change::Cut(2));
        // Between a tenth and a quarter: no step either way.
        for _ in 0..10 {
            assert_eq!(programs.started(ms(101), TIMEOUT, t0), Change::None);
        }
        for _ in 0..5 {
            assert_eq!(programs.started(ms(100), TIMEOUT, t0), Change::None);
        }
        assert_eq!(programs.started(ms(100), TIMEOUT, t0), Change::Grown);
        assert_eq!(programs.limit(), 7);
    }

    #[test]
    fn starts_on_time_grow_the_limit_one_slot_per_limits_worth_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut limit = Limit::new(16, MIN);
        assert_eq!(limit.started(LATE, TIMEOUT, t0), Change::Cut(4));
        for _ in 0..11 {
            assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::None);
        }
        // Neither late nor on time: no step either way.
        assert_eq!(limit.started(ON_TIME * 2, TIMEOUT, t0), Change::None);
        assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::Grown);
        assert_eq!(limit.limit(), 13);
        let mut grown = 0;
        for _ in 0..100 {
            if limit.started(Duration::ZERO, TIMEOUT, t0) == Change::Grown {
                grown += 1;
            }
        }
        assert_eq!(
            (grown, limit.limit()),
            (3, 16),
            "13 + 14 + 15 starts, then the maximum"
        );
        // A cut forgets the starts counted towards growing.
        let mut limit = Limit::new(16, MIN);
        limit.started(LATE, TIMEOUT, t0);
        for _ in 0..11 {
            limit.started(ON_TIME, TIMEOUT, t0);
        }
        limit.started(LATE, TIMEOUT, t0 + CUT_EVERY);
        assert_eq!(limit.limit(), 9);
        for _ in 0..8 {
            assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::None);
        }
        assert_eq!(limit.started(ON_TIME, TIMEOUT, t0), Change::Grown);
    }

    fn one_server() -> Shared {
        let config = crate::config::parse(
            "services:\n  - address: 198.18.0.10:80\n    check: {type: tcp}\n    real_servers:\n      - address: 198.18.1.11:80\n",
            std::path::Path::new("test.yaml"),
            std::path::Path::new("."),
        )
        .expect("config");
        Shared::new(&config)
    }

    /// A free slot is taken without a wait, never one a waiting probe is
    /// owed.
    #[tokio::test]
    async fn a_free_slot_is_taken_at_once_but_not_ahead_of_a_probe_waiting() {
        let admission = Admission::new(1, one_server(), 0);
        let held = admission.free_slot().expect("free");
        assert!(admission.free_slot().is_none(), "the one slot is held");
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.slot().await.is_some() }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert!(admission.free_slot().is_none(), "owed to the one waiting");
        assert!(waiting.await.expect("task"), "the waiting probe had it");
        assert!(admission.free_slot().is_some(), "given back");
    }

    #[tokio::test]
    async fn a_cut_takes_free_slots_at_once_and_busy_ones_as_they_come_back() {
        let state = one_server();
        let admission = Admission::new(16, state.clone(), 0);
        assert_eq!(state.lock().limits.probes(), Some(16));
        let mut busy = Vec::new();
        for _ in 0..14 {
            busy.push(admission.slot().await.expect("slot"));
        }
        // 16 -> 12: the 2 free slots go now, 2 of the busy ones when
        // given back.
        let t0 = Instant::now();
        admission.started(LATE, TIMEOUT, t0);
        assert_eq!(state.lock().limits.probes(), Some(12));
        assert_eq!(admission.slots.available_permits(), 0);
        busy.truncate(11);
        assert_eq!(admission.slots.available_permits(), 1);
        // Growing first cancels what is owed; none is owed now.
        for _ in 0..12 {
            admission.started(Duration::ZERO, TIMEOUT, t0);
        }
        assert_eq!(state.lock().limits.probes(), Some(13));
        assert_eq!(admission.slots.available_permits(), 2);
        busy.clear();
        assert_eq!(admission.slots.available_permits(), 13);
        // A cut while owing: the next slots given back are kept.
        let mut busy = Vec::new();
        for _ in 0..13 {
            busy.push(admission.slot().await.expect("slot"));
        }
        admission.started(LATE, TIMEOUT, t0 + CUT_EVERY);
        assert_eq!(state.lock().limits.probes(), Some(9));
        for _ in 0..9 {
            admission.started(Duration::ZERO, TIMEOUT, t0);
        }
        assert_eq!(state.lock().limits.probes(), Some(10));
        busy.clear();
        assert_eq!(admission.slots.available_permits(), 10);
    }
}
