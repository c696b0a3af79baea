//! When the floor checks each real server: in groups spread over the
//! interval as ipvs-checker spreads its probes, by the poll loop and on
//! tokio alike.

use std::ops::Range;
use std::time::{Duration, Instant};

/// Real servers a group holds (ipvs-checker's `places::GROUP`).
const GROUP: usize = 100;
/// The most groups an interval is spread over.
const GROUPS_MAX: usize = 20;
/// A check's timeout.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);

/// When each group of real servers is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    n: usize,
    groups: usize,
    interval: Duration,
}

impl Schedule {
    pub(crate) fn new(n: usize, interval: Duration) -> Self {
        Schedule {
            n,
            groups: (n / GROUP).clamp(1, GROUPS_MAX),
            interval,
        }
    }

    /// How long after the start the `turn`-th group starts: group g of
    /// interval k at (k + g / groups).
    pub(crate) fn at(&self, turn: u64) -> Duration {
        self.interval.mul_f64(turn as f64 / self.groups as f64)
    }

    /// Whether a group that started this much after its time was late.
    pub(crate) fn late(&self, after: Duration) -> bool {
        after > self.interval / 10
    }

    /// The turns due by `now` from `*turn` on, for a schedule begun at
    /// `start` (`*turn` moved past them), and how many of them are late.
    pub(crate) fn due(&self, start: Instant, now: Instant, turn: &mut u64) -> (Range<u64>, u64) {
        let first = *turn;
        let mut late = 0;
        while start + self.at(*turn) <= now {
            late += u64::from(self.late(now - (start + self.at(*turn))));
            *turn += 1;
        }
        (first..*turn, late)
    }

    /// The turn of the first interval whose group holds `server`.
    pub(crate) fn turn_of(&self, server: usize) -> u64 {
        (0..self.groups)
            .find(|&g| server < (g + 1) * self.n / self.groups)
            .unwrap_or(0) as u64
    }

    /// The real servers (their indices) of the `turn`-th group.
    pub(crate) fn members(&self, turn: u64) -> Range<usize> {
        let g = (turn % self.groups as u64) as usize;
        g * self.n / self.groups..(g + 1) * self.n / self.groups
    }
}
