//! The health of one real server from its probe results: consecutive
//! `rise` successes make it up, `fall` failures down. Pure, and it reports
//! only flips (as pingora's `Health::observe_health`), so callers act on a
//! change once.

/// What the checker knows of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Not enough results yet: its weight is left as it is.
    Unknown,
    /// Healthy: it gets its configured weight.
    Up,
    /// Failing: it gets weight 0 (unless the quorum guard holds it).
    Down,
}

impl Health {
    /// `unknown`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The rise/fall state machine of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    rise: u32,
    fall: u32,
    health: Health,
    successes: u32,
    failures: u32,
}

impl HealthState {
    /// A real server with no results yet; `rise` and `fall` are at least 1
    /// (the config makes sure).
    pub fn new(rise: u32, fall: u32) -> Self {
        HealthState {
            rise: rise.max(1),
            fall: fall.max(1),
            health: Health::Unknown,
            successes: 0,
            failures: 0,
        }
    }

    /// The current health.
    pub fn health(&self) -> Health {
        self.health
    }

    /// New thresholds (after a reload), keeping the health and the streak.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// Records one probe result; returns the new health if it changed.
    pub fn observe(&mut self, success: bool) -> Option<Health> {
        if success {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.health != Health::Up && self.successes >= self.rise {
                self.health = Health::Up;
                return Some(Health::Up);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.health != Health::Down && self.failures >= self.fall {
                self.health = Health::Down;
                return Some(Health::Down);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(state: &mut HealthState, results: &str) -> Vec<Option<Health>> {
        results.chars().map(|c| state.observe(c == '+')).collect()
    }

    #[test]
    fn starts_unknown_and_needs_rise_or_fall_in_a_row() {
        let mut s = HealthState::new(2, 3);
        assert_eq!(s.health(), Health::Unknown);
        assert_eq!(feed(&mut s, "+-+"), vec![None, None, None]);
        assert_eq!(s.health(), Health::Unknown);
        assert_eq!(feed(&mut s, "+"), vec![Some(Health::Up)]);
        let mut s = HealthState::new(2, 3);
        assert_eq!(feed(&mut s, "---"), vec![None, None, Some(Health::Down)]);
    }

    #[test]
    fn reports_only_flips() {
        let mut s = HealthState::new(2, 2);
        let flips = feed(&mut s, "++++--+--++-+");
        use Health::*;
        assert_eq!(
            flips,
            vec![
                None,
                Some(Up),
                None,
                None,
                None,
                Some(Down),
                None,
                None,
                None,
                None,
                Some(Up),
                None,
                None
            ]
        );
    }

    #[test]
    fn one_result_flips_with_thresholds_of_one() {
        let mut s = HealthState::new(1, 1);
        assert_eq!(
            feed(&mut s, "-+-"),
            vec![Some(Health::Down), Some(Health::Up), Some(Health::Down)]
        );
    }
}
