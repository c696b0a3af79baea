//! Where each probe task sits: its place in its interval, and its probe
//! thread. The probes of an interval start in groups spread over it, each
//! group whole on one thread.

use std::time::Duration;

/// The most groups a check interval's probes are spread over per probe
/// thread (see [`groups`]): 50 ms apart at an interval of 1 s on one
/// thread.
const SLOTS: usize = 20;

/// The fewest probes a group has, where there are enough: each group
/// costs the thread wake-ups of its own (its timers, the answers coming
/// back), which on a virtual machine cost more than a probe's parsing
/// (lab/bench/README.md, probe-cost by group size). Groups of 100 cost
/// less CPU a probe than groups of 25 and found a failing rack as soon
/// (lab/bench/README.md, "larger groups of probes").
pub(super) const GROUP: usize = 100;

/// How many groups `n` probes of one interval start in, on `threads`
/// probe threads: one per [`GROUP`] probes, at least 1, at most
/// [`SLOTS`] per thread.
pub(super) fn groups(n: usize, threads: usize) -> usize {
    (n / GROUP).clamp(1, SLOTS * threads.max(1))
}

/// The real servers of services of `sizes` (each service's count), as
/// (service, real server) indices in the order they take their places in
/// the interval: each service's spread evenly over the whole order, the
/// `j`-th of `m` at `(2j + 1) / 2m` of it, in turn with the others'. One
/// service after another put each service's probes in a few groups
/// together: a failing rack was found only when its groups' time came, up
/// to an interval later, and in an overload's queue its probes sat
/// together, near its head or seconds from it (lab/bench/README.md,
/// "each service spread over the interval").
pub(super) fn interleaved(sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut order: Vec<(usize, usize)> = sizes
        .iter()
        .enumerate()
        .flat_map(|(s, &m)| (0..m).map(move |j| (s, j)))
        .collect();
    let at = |j: usize| 2 * j as u128 + 1;
    // (2j + 1) / 2m against (2k + 1) / 2m', cross-multiplied.
    order.sort_by(|&(s, j), &(t, k)| {
        (at(j) * sizes[t] as u128)
            .cmp(&(at(k) * sizes[s] as u128))
            .then(s.cmp(&t))
    });
    order
}

/// The group of the `i`-th of `n` probes, of `slots` (see [`groups`]),
/// and its probe thread, of `threads`: the groups in turn, each whole on
/// one thread. A group's probes start together, and their answers come
/// back together: on one thread they cost it one wake-up, where a group
/// shared by every thread woke each of them, for more CPU per probe
/// (lab/bench/README.md, "each group on one probe thread").
pub(super) fn group_of(i: usize, n: usize, slots: usize, threads: usize) -> (usize, usize) {
    let slot = i * slots / n.max(1);
    (slot, slot % threads.max(1))
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

/// How a probe task waits for its next probe.
pub(super) fn ticks(first: tokio::time::Instant, every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval_at(first, every);
    // A probe that started late (waiting for a permit) skips to its
    // group's next tick, so the groups stay together.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks
}
