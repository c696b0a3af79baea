//! What the hooks' metrics count, and the names they count by: the kind
//! of event and the kind of hook. Apart from the hooks themselves, so
//! that the state `/metrics` reads holds the counters without depending
//! on how hooks run.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A real server's health flipped to up.
    RealServerUp,
    /// A real server's health flipped to down.
    RealServerDown,
    /// A real server was drained (admin API, out-of-band weight 0,
    /// maintenance file).
    Drained,
    /// A drain ended.
    Undrained,
    /// Fewer real servers up than the quorum: the guard acts.
    QuorumLost,
    /// The quorum is back: the guard is released.
    QuorumRegained,
    /// The sorry server takes the traffic.
    SorryServerIn,
    /// The sorry server is taken out.
    SorryServerOut,
    /// The checker started (its first reconciliation is done).
    CheckerStarted,
    /// The checker is stopping.
    CheckerStopping,
}

impl EventKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [EventKind; 10] = [
        EventKind::RealServerUp,
        EventKind::RealServerDown,
        EventKind::Drained,
        EventKind::Undrained,
        EventKind::QuorumLost,
        EventKind::QuorumRegained,
        EventKind::SorryServerIn,
        EventKind::SorryServerOut,
        EventKind::CheckerStarted,
        EventKind::CheckerStopping,
    ];

    /// The event's name, as hooks and metrics see it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RealServerUp => "real_server_up",
            EventKind::RealServerDown => "real_server_down",
            EventKind::Drained => "drained",
            EventKind::Undrained => "undrained",
            EventKind::QuorumLost => "quorum_lost",
            EventKind::QuorumRegained => "quorum_regained",
            EventKind::SorryServerIn => "sorry_server_in",
            EventKind::SorryServerOut => "sorry_server_out",
            EventKind::CheckerStarted => "checker_started",
            EventKind::CheckerStopping => "checker_stopping",
        }
    }
}

/// The two kinds of hooks, as metrics label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookKind {
    /// `exec`.
    Exec,
    /// `webhook`.
    Webhook,
}

impl HookKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Exec => "exec",
            HookKind::Webhook => "webhook",
        }
    }
}

/// How one run of a hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It succeeded (exit code 0, a 2xx answer).
    Succeeded,
    /// It failed (another exit code, a signal, an error, a non-2xx answer
    /// after the last retry).
    Failed,
    /// It ran past its timeout (an exec hook is killed then).
    TimedOut,
}

/// The hooks' counters, by kind of hook and event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Runs started.
    pub run: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Runs past their timeout.
    pub timed_out: u64,
    /// Runs never started: the queue was full.
    pub dropped: u64,
}

/// The hooks' counters, shared by the hooks' thread and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats(Mutex<BTreeMap<(HookKind, EventKind), Counts>>);

impl Stats {
    pub(super) fn add(&self, kind: HookKind, event: EventKind, f: impl FnOnce(&mut Counts)) {
        let mut counts = self.0.lock();
        f(counts.entry((kind, event)).or_default());
    }

    /// Every counter so far.
    pub fn snapshot(&self) -> BTreeMap<(HookKind, EventKind), Counts> {
        self.0.lock().clone()
    }
}
