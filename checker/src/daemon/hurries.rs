//! Hurries: the probes of a real server's siblings run at once instead
//! of at their next tick, when the first ones of a failure or of a
//! recovery are seen (see [`Hurries`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ipvs::ServiceKey;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use super::bell::Bell;
use crate::config::Config;

/// A real server came back from down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovery;

/// Per service, the signals between its probe tasks that hurry them.
///
/// Real servers fail together (a rack, a switch, a deploy) and come back
/// together. The probes of one interval are spread over it, so without a
/// hurry the last real server of a failed rack is found up to an
/// interval after the first (keepalived and ldirectord wait each one's
/// next check too).
///
/// - **Failures.** Once [`FAILURES`] real servers of a service began to
///   fail on their own word (refused, reset, a wrong answer; not a
///   timeout, which may be the checker's own overload) within one of its
///   intervals, every other one whose last probe could connect asks at
///   once whether it refuses connections
///   ([`crate::prober::set::ProberSet::refuses`]): a connection, closed
///   with a reset as soon as it is made, not a probe. A refusal is
///   reported as the failed probe it is; a connection made, or no answer,
///   reports nothing, and the real server keeps to its ticks (one that
///   accepted is asked once more a little later, see `probes::task::ASK_AGAIN`).
///   A refusal is the server's answer, never the checker's lateness.
///   Nothing waits for a slot, not even a probe queued for one (it is
///   asked while it waits): the connections are cheap and end at once,
///   and behind an overload's queue the rack is found seconds later.
/// - **Recoveries.** When one of a service's real servers is back up, the
///   probes of those whose last probe could not connect run at once (full
///   probes: they decide that the server is back), at most once per
///   interval, in services of at most [`HURRY`] real servers.
///
/// Either hurry is sent at most once per interval of the service: while
/// its siblings flap, a real server is probed at most twice as often, or
/// asked twice an interval (two handshakes, no request).
#[derive(Debug)]
pub(super) struct Hurries {
    services: HashMap<ServiceKey, Recoveries>,
}

/// The loop's side of a service's recoveries.
#[derive(Debug)]
struct Recoveries {
    hurry: Arc<ServiceHurry>,
    last: Option<tokio::time::Instant>,
    /// Whether the service is small enough to be hurried (see [`HURRY`]).
    hurried: bool,
}

/// What the probe tasks of one service share.
#[derive(Debug)]
pub(super) struct ServiceHurry {
    /// Wakes the tasks whose last probe could not connect: one of their
    /// siblings recovered.
    pub recovered: Notify,
    /// Counts the hurries of failures: a task that saw the count change
    /// since its last probe began asks whether it refuses too. A count,
    /// not a wake-up, so that a task busy probing when it changed does not
    /// miss it (a probe that then passes may have connected before its
    /// server began to refuse), and one whose probe began since does not
    /// ask again.
    refusing: watch::Sender<u64>,
    /// The count as it was when the service's hurries were made, which
    /// every task's own copy starts from: a task made after a hurry (its
    /// siblings' first probes may end while the others are being made)
    /// still sees it.
    made: watch::Receiver<u64>,
    /// The bells of the tasks following the count (see
    /// [`ServiceHurry::refusing`]), rung with each hurry.
    bells: Mutex<Vec<Weak<Bell>>>,
    failures: Mutex<Failures>,
    /// The shortest interval of the service's real servers.
    every: Duration,
}

/// Real servers of a service that began to fail lately.
#[derive(Debug, Default)]
struct Failures {
    /// Since when they are counted, and how many.
    since: Option<tokio::time::Instant>,
    count: usize,
    /// The last hurry.
    hurried: Option<tokio::time::Instant>,
}

/// The most real servers of a service whose probes a recovery hurries.
/// Connections opened together to servers just back wait on each other:
/// in the lab a hundred at once restored a rack sooner than its ticks
/// would, five hundred (or a hundred of five hundred) later, some timing
/// out (lab/bench/README.md, the recovery runs). A larger service keeps
/// to its ticks, which bring it back within an interval.
pub(super) const HURRY: usize = 100;

/// How many real servers of a service must begin to fail within an
/// interval for the others to ask whether they refuse connections: one
/// alone is a server restarted (a deploy goes one by one), which is no
/// reason to make a connection to every other.
pub(super) const FAILURES: usize = 2;

impl Hurries {
    pub fn new(config: &Config) -> Self {
        let services = config
            .services
            .iter()
            .map(|s| {
                let every = s
                    .real_servers
                    .iter()
                    .map(|rs| rs.timing.interval)
                    .min()
                    .unwrap_or(Duration::from_secs(1));
                let recoveries = Recoveries {
                    hurry: Arc::new(ServiceHurry::new(every)),
                    last: None,
                    hurried: s.real_servers.len() <= HURRY,
                };
                (s.key, recoveries)
            })
            .collect();
        Hurries { services }
    }

    /// The signals of `service`, which its probe tasks share.
    pub fn of(&self, service: &ServiceKey) -> Arc<ServiceHurry> {
        match self.services.get(service) {
            Some(r) => r.hurry.clone(),
            None => Arc::new(ServiceHurry::new(Duration::from_secs(1))),
        }
    }

    /// A real server of `service` recovered at `now`: wakes the failing
    /// ones, unless they were woken less than an interval ago. Whether
    /// they were.
    pub fn recovered(&mut self, service: &ServiceKey, now: tokio::time::Instant) -> bool {
        let Some(r) = self.services.get_mut(service) else {
            return false;
        };
        if !r.hurried || r.last.is_some_and(|last| now < last + r.hurry.every) {
            return false;
        }
        r.last = Some(now);
        // Only the tasks waiting now are woken; nothing is stored for
        // later (a task that is probing already needs no hurry).
        r.hurry.recovered.notify_waiters();
        true
    }
}

impl ServiceHurry {
    /// The signals of a service whose shortest interval is `every`.
    fn new(every: Duration) -> Self {
        let (refusing, made) = watch::channel(0);
        ServiceHurry {
            recovered: Notify::new(),
            refusing,
            made,
            bells: Mutex::new(Vec::new()),
            failures: Mutex::new(Failures::default()),
            every,
        }
    }

    /// The count of failure hurries, for the probe task of `bell` to
    /// follow (once per task: its bell is rung with every hurry): it sees
    /// every one sent since the service's hurries were made, until it
    /// marks them seen.
    pub fn refusing(&self, bell: &Arc<Bell>) -> watch::Receiver<u64> {
        let mut bells = self.bells.lock();
        // Those of tasks ended, dropped as the list doubles.
        if bells.len() >= 64 && bells.len().is_power_of_two() {
            bells.retain(|b| b.strong_count() > 0);
        }
        bells.push(Arc::downgrade(bell));
        self.made.clone()
    }

    /// A real server of the service began to fail at `now` on its own
    /// word (its last probe did not): the others are hurried if it is the
    /// [`FAILURES`]th within an interval and none were within the last.
    /// Whether they were.
    pub fn began_failing(&self, now: tokio::time::Instant) -> bool {
        let mut failures = self.failures.lock();
        if failures.since.is_none_or(|since| now >= since + self.every) {
            failures.since = Some(now);
            failures.count = 0;
        }
        failures.count += 1;
        if failures.count < FAILURES || failures.hurried.is_some_and(|last| now < last + self.every)
        {
            return false;
        }
        failures.hurried = Some(now);
        failures.since = None;
        drop(failures);
        self.refusing.send_modify(|n| *n += 1);
        self.bells.lock().retain(|bell| match bell.upgrade() {
            Some(bell) => {
                bell.ring();
                true
            }
            None => false,
        });
        true
    }
}
