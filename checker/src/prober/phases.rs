//! The phases of a probe (connect, TLS, response), timed apart.

use std::time::{Duration, Instant};

/// The parts of a probe timed apart, as the `phase` label of
/// `ipvs_checker_probe_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// From the first SYN to the connection being established.
    Connect,
    /// The TLS handshake (HTTPS only).
    Tls,
    /// From the request sent to the last byte of the answer read.
    Response,
}

impl Phase {
    /// Every phase, in the order a probe goes through them.
    pub const ALL: [Phase; 3] = [Phase::Connect, Phase::Tls, Phase::Response];

    /// The label value: `connect`, `tls`, `response`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Response => "response",
        }
    }
}

/// How long each phase of one probe took. A probe cut off by its timeout
/// has the phase it was in timed up to the timeout, and none after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phases {
    durations: [Option<Duration>; 3],
    current: Option<(Phase, Instant)>,
}

impl Phases {
    /// No phase begun yet.
    pub fn new() -> Self {
        Phases {
            durations: [None; 3],
            current: None,
        }
    }

    /// These phases with these durations, as a probe would report them.
    pub fn with(mut self, phase: Phase, took: Duration) -> Self {
        self.durations[phase as usize] = Some(took);
        self
    }

    /// Ends the phase in progress, if any, and starts `phase`; when, for
    /// a caller that needs the time too (one clock read, not two).
    pub(crate) fn begin(&mut self, phase: Phase) -> Instant {
        let now = Instant::now();
        self.end_at(now);
        self.current = Some((phase, now));
        now
    }

    /// Starts `phase` at `at` (the phase before it ended then).
    pub(crate) fn begin_at(&mut self, phase: Phase, at: Instant) {
        self.end_at(at);
        self.current = Some((phase, at));
    }

    /// Ends the phase in progress, if any (the clock is read only then).
    pub(crate) fn end(&mut self) {
        if self.current.is_some() {
            self.end_at(Instant::now());
        }
    }

    /// Ends the phase in progress, if any, at `now`.
    pub(crate) fn end_at(&mut self, now: Instant) {
        if let Some((phase, began)) = self.current.take() {
            self.durations[phase as usize] = Some(now.saturating_duration_since(began));
        }
    }

    /// How long `phase` took, if the probe went through it.
    pub fn get(&self, phase: Phase) -> Option<Duration> {
        self.durations[phase as usize]
    }

    /// The phases the probe went through, with their durations.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, Duration)> + '_ {
        Phase::ALL
            .into_iter()
            .filter_map(|p| self.get(p).map(|d| (p, d)))
    }

    /// Keeps, for each phase, the longer of its duration here and in
    /// `other` (several checks run together: the real server made the
    /// probe wait the longest of them).
    pub(crate) fn longest(&mut self, other: &Phases) {
        for (mine, theirs) in self.durations.iter_mut().zip(other.durations) {
            *mine = (*mine).max(theirs);
        }
    }

    /// The whole probe: the sum of its phases.
    pub fn total(&self) -> Duration {
        self.iter().map(|(_, d)| d).sum()
    }
}

impl Default for Phases {
    fn default() -> Self {
        Self::new()
    }
}
