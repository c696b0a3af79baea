//! A probe's result taken in by the loop: recorded in the state, logged,
//! told to the hooks on a flip, and its service marked for the next
//! flush when the table must change.

use std::time::SystemTime;

use tracing::{info, warn};

use super::hurries::Recovery;
use super::reports::{CheckerFault, Report};
use super::Daemon;
use crate::health::Health;
use crate::notify::EventKind;
use crate::reconcile::ManagedTable;

impl<T: ManagedTable> Daemon<T> {
    /// Records a probe result; a flip marks its service for the next
    /// [`Daemon::flush`], unless the table has the weight it calls for
    /// ([`Daemon::settled`]). Says whether the real server recovered (down
    /// before, up now). A failure of the checker's own (a timeout while it
    /// was late, a socket it could not make) is counted
    /// and changes nothing else.
    pub(super) fn observe(&mut self, report: &Report) -> Option<Recovery> {
        match report.checker_fault {
            Some(CheckerFault::Late(lag)) => {
                self.state
                    .lock()
                    .observe_late(&report.service, &report.destination);
                tracing::debug!(service = %report.service, real_server = %report.destination, ?lag, "probe timed out while the checker was late: not counted as a failure");
                self.late.note(lag, tokio::time::Instant::now());
                return None;
            }
            Some(CheckerFault::Exhausted(errno)) => {
                self.state
                    .lock()
                    .observe_exhausted(&report.service, &report.destination);
                tracing::debug!(service = %report.service, real_server = %report.destination, errno, "probe could not make its socket: not counted as a failure");
                self.exhausted.note(errno, tokio::time::Instant::now());
                return None;
            }
            None => {}
        }
        let observed = self.state.lock().observe(
            &report.service,
            &report.destination,
            &report.result,
            &report.phases,
            &report.each,
            SystemTime::now(),
        );
        let (before, flip, weight_moved) = match observed {
            Some(o) => (Some(o.was), o.flip, o.weight_moved),
            None => (None, None, false),
        };
        // A flip, or a program setting another weight (`dynamic_weight`),
        // reconciles its service unless the table already has the weight
        // it calls for: started beside a table of thousands of real
        // servers, the first results, arriving over an interval, would
        // each have its service read whole again (every
        // [`FLIP_COALESCE`]), the table many times a second.
        if (flip.is_some() || weight_moved) && !self.settled(report) {
            self.pending.insert(report.service);
        }
        if let Err(e) = &report.result {
            tracing::debug!(service = %report.service, real_server = %report.destination, reason = e.reason(), "probe failed: {e}");
        }
        let now = flip?;
        // The time its phases took (its waits for its thread while in
        // flight included) beside the time since it began: the rest is
        // its way to this loop.
        let since_probe_start = report.began.elapsed();
        let probe_took = report.phases.total();
        match &report.result {
            Err(e) => {
                warn!(service = %report.service, real_server = %report.destination, health = now.as_str(), reason = e.reason(), ?since_probe_start, ?probe_took, "real server is {}: {e}", now.as_str())
            }
            Ok(_) => {
                info!(service = %report.service, real_server = %report.destination, health = now.as_str(), ?since_probe_start, ?probe_took, "real server is {}", now.as_str())
            }
        }
        let (kind, reason) = match &report.result {
            Err(e) if now == Health::Down => (EventKind::RealServerDown, Some(e.to_string())),
            _ if now == Health::Down => (EventKind::RealServerDown, None),
            _ => (EventKind::RealServerUp, None),
        };
        self.notify(kind, Some(report.service), Some(report.destination), reason);
        (before == Some(Health::Down) && now == Health::Up).then_some(Recovery)
    }

    /// Whether the table has the weight `report`'s real server should have
    /// now (see [`crate::state::State::settled`]).
    fn settled(&self, report: &Report) -> bool {
        let Some(service) = self
            .config
            .services
            .iter()
            .find(|s| s.key == report.service)
        else {
            return false;
        };
        self.state
            .lock()
            .settled(service, &report.destination, std::time::Instant::now())
    }
}
