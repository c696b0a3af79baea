//! The probes' results, on their way to the loop: what a probe found, and
//! whether a failure is the server's or the checker's own.
//!
//! A probe that timed out is judged by its socket first (see
//! [`prober::watch`]): the server's when the server had its whole timeout
//! and did not answer, however late the thread was. Where the socket
//! cannot tell (no socket: `exec`, `icmp`), a timeout while its thread was
//! late (see [`super::lag`]) is the checker's. The checker's timeouts are
//! reported as such: the loop counts them and leaves the real server's
//! health as it was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipvs::{DestinationKey, ServiceKey};
use tokio::sync::mpsc;

use super::lag::{is_late, Lag};
use crate::prober;

/// Probe results queued for the loop, at most: half a minute of 500
/// probes a second. A loop held up longer than that by the kernel or the
/// disk loses the oldest news of no real server: each probe's next
/// result is queued again once there is room.
pub(super) const QUEUE: usize = 16_384;

/// Where the probe tasks send their results, and count those the full
/// queue had no room for.
#[derive(Debug, Clone)]
pub(super) struct Reports {
    pub tx: mpsc::Sender<Report>,
    pub dropped: Arc<AtomicU64>,
}

impl Reports {
    /// Queues `report` without waiting; whether the loop is still there.
    pub(super) fn send(&self, report: Report) -> bool {
        match self.tx.try_send(report) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// One probe result.
#[derive(Debug)]
pub(super) struct Report {
    /// The probe task that made it (see [`super::probes::ProbeTasks::current`]).
    pub task: u64,
    pub service: ServiceKey,
    pub destination: DestinationKey,
    pub result: Result<prober::Success, prober::ProbeError>,
    pub phases: prober::Phases,
    /// Each check's failure reason (`None`: passed), in config order.
    pub each: Vec<Option<&'static str>>,
    /// Why the failure is the checker's own, not the server's, if it is.
    pub checker_fault: Option<CheckerFault>,
    /// This failure hurried the service's other real servers (see
    /// [`super::hurries`]).
    pub hurried: bool,
}

/// A probe failure of the checker's own making: neither a pass nor a
/// failure of the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckerFault {
    /// It timed out while its thread was this far behind.
    Late(Duration),
    /// Its socket could not be made for want of the checker's own
    /// resources: this errno (EMFILE, ENFILE, ENOBUFS, ENOMEM). A server
    /// cannot cause these; a server that refuses or is unreachable gets
    /// other errors.
    Exhausted(i32),
}

/// The errnos of a connect that say the checker, not the server, ran out
/// of something.
const EXHAUSTED: [i32; 4] = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];

/// The most the probe's thread was behind over the probe's `windows`.
fn worst_lag(lag: &Lag, windows: &[(tokio::time::Instant, tokio::time::Instant)]) -> Duration {
    windows
        .iter()
        .map(|(since, until)| lag.worst(*since, *until))
        .fold(Duration::ZERO, Duration::max)
}

impl Report {
    /// The report of `outcome`, a probe that ran over `windows` (its
    /// connection made ahead, then the rest of it): a timeout is the
    /// checker's when its socket says so, or, where the socket cannot
    /// tell, when its thread was late meanwhile.
    pub(super) fn new(
        task: u64,
        service: ServiceKey,
        destination: DestinationKey,
        set: prober::set::SetOutcome,
        lag: &Lag,
        windows: &[(tokio::time::Instant, tokio::time::Instant)],
        timeout: Duration,
    ) -> Self {
        let prober::set::SetOutcome { outcome, each } = set;
        let worst = || worst_lag(lag, windows);
        let checker_fault = match outcome.result.as_ref().map_err(|e| e.cause()) {
            Err(prober::ProbeError::Timeout(_)) => match outcome.timed_out_on {
                Some(prober::Side::Server) => None,
                Some(prober::Side::Checker) => Some(CheckerFault::Late(worst())),
                None => {
                    let worst = worst();
                    is_late(worst, timeout).then_some(CheckerFault::Late(worst))
                }
            },
            Err(prober::ProbeError::Connect(e)) => e
                .raw_os_error()
                .filter(|errno| EXHAUSTED.contains(errno))
                .map(CheckerFault::Exhausted),
            _ => None,
        };
        Report {
            task,
            service,
            destination,
            result: outcome.result,
            phases: outcome.phases,
            each,
            checker_fault,
            hurried: false,
        }
    }

    /// Whether the server refused the connection or was unreachable.
    pub(super) fn refused(&self) -> bool {
        matches!(
            self.result.as_ref().map_err(|e| e.cause()),
            Err(prober::ProbeError::Connect(_))
        ) && self.checker_fault.is_none()
    }

    /// Whether the probe failed on the server's word: refused, reset, a
    /// wrong answer; not a timeout, which may be the checker's own
    /// overload, nor the checker's own fault.
    pub(super) fn failed_by_server(&self) -> bool {
        matches!(
            self.result.as_ref().map_err(|e| e.cause()),
            Err(e) if !matches!(e, prober::ProbeError::Timeout(_))
        ) && self.checker_fault.is_none()
    }
}
