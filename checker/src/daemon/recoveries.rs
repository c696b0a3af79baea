//! Recoveries hurry the probes of a real server's siblings that could not
//! connect (see [`Recoveries`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ipvs::ServiceKey;
use tokio::sync::Notify;

use crate::config::Config;

/// A real server came back from down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovery;

/// Per service, the signal that one of its real servers recovered, to
/// the probe tasks of the others that cannot connect: they probe at once
/// instead of at their next tick. Real servers fail together (a rack, a
/// switch, a deploy) and come back together; the first one seen back
/// brings the rest back within a probe's time, not within an interval
/// (keepalived and ldirectord wait each one's next check). A signal is
/// sent at most once per interval of the service, so that while servers
/// come back one by one the failing ones are probed at most twice as
/// often.
#[derive(Debug)]
pub(super) struct Recoveries {
    services: HashMap<ServiceKey, Signal>,
}

#[derive(Debug)]
struct Signal {
    notify: Arc<Notify>,
    /// The shortest interval of the service's real servers.
    every: Duration,
    last: Option<tokio::time::Instant>,
    /// Whether the service is small enough to be hurried (see [`HURRY`]).
    hurried: bool,
}

/// The most real servers of a service whose probes a recovery hurries.
/// Connections opened together to servers just back wait on each other:
/// in the lab a hundred at once restored a rack sooner than its ticks
/// would, five hundred (or a hundred of five hundred) later, some timing
/// out (lab/bench/README.md, the recovery runs). A larger service keeps
/// to its ticks, which bring it back within an interval.
pub(super) const HURRY: usize = 100;

impl Recoveries {
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
                let signal = Signal {
                    notify: Arc::new(Notify::new()),
                    every,
                    last: None,
                    hurried: s.real_servers.len() <= HURRY,
                };
                (s.key, signal)
            })
            .collect();
        Recoveries { services }
    }

    /// The signal of `service`, which its probe tasks wait on.
    pub fn signal(&self, service: &ServiceKey) -> Arc<Notify> {
        match self.services.get(service) {
            Some(signal) => signal.notify.clone(),
            None => Arc::new(Notify::new()),
        }
    }

    /// A real server of `service` recovered at `now`: wakes the failing
    /// ones, unless they were woken less than an interval ago.
    pub fn recovered(&mut self, service: &ServiceKey, now: tokio::time::Instant) {
        let Some(signal) = self.services.get_mut(service) else {
            return;
        };
        if !signal.hurried || signal.last.is_some_and(|last| now < last + signal.every) {
            return;
        }
        signal.last = Some(now);
        // Only the tasks waiting now are woken; nothing is stored for
        // later (a task that is probing already needs no hurry).
        signal.notify.notify_waiters();
    }
}
