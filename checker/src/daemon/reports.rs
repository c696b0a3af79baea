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
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::mpsc;

use super::lag::{is_late, Lag};
use crate::prober;

/// Batches of probe results queued for the loop, at most: half a minute
/// of a probe thread's batches at its most frequent (a heartbeat's beat,
/// see [`Outbox`]), for a few probe threads. A loop held up longer than
/// that by the kernel or the disk loses news of no real server: each
/// probe's next result is queued again once there is room.
pub(super) const QUEUE: usize = 4096;

/// Where the probe threads send their results, and count those the full
/// queue had no room for.
#[derive(Debug, Clone)]
pub(super) struct Reports {
    pub tx: mpsc::Sender<Vec<Report>>,
    pub dropped: Arc<AtomicU64>,
}

impl Reports {
    /// Sending to `tx`, none dropped yet.
    pub(super) fn new(tx: mpsc::Sender<Vec<Report>>) -> Self {
        Reports {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues `batch` without waiting.
    fn send(&self, batch: Vec<Report>) {
        if let Err(mpsc::error::TrySendError::Full(batch)) = self.tx.try_send(batch) {
            self.dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }
}

/// A probe thread's results on their way to the loop, held until they
/// go together, in one batch: when the thread's last probe in flight
/// ends, and at each heartbeat beat while some are in flight (see
/// [`Lag::heartbeat`]). Sent one by one, the results of a group of
/// probes ending over a few milliseconds would wake the loop's thread
/// for the first and again for the rest (or for each, while it takes
/// them as they come); held, they wake it once, and none waits longer
/// than a beat.
#[derive(Debug)]
pub(super) struct Outbox {
    reports: Reports,
    held: Mutex<Vec<Report>>,
}

impl Outbox {
    /// An outbox sending to `reports`.
    pub(super) fn new(reports: Reports) -> Arc<Self> {
        Arc::new(Outbox {
            reports,
            held: Mutex::new(Vec::new()),
        })
    }

    fn held(&self) -> MutexGuard<'_, Vec<Report>> {
        self.held.lock()
    }

    /// Holds `report`, and sends what is held if `idle` (no probe left in
    /// flight on the thread); whether the loop is still there.
    pub(super) fn send(&self, report: Report, idle: bool) -> bool {
        if self.reports.tx.is_closed() {
            return false;
        }
        let mut held = self.held();
        held.push(report);
        if idle {
            self.send_held(&mut held);
        }
        true
    }

    /// Sends what is held.
    pub(super) fn flush(&self) {
        let mut held = self.held();
        if !held.is_empty() {
            self.send_held(&mut held);
        }
    }

    fn send_held(&self, held: &mut Vec<Report>) {
        // The next batch about as large as this one.
        let batch = std::mem::replace(held, Vec::with_capacity(held.len()));
        // A loop gone is seen at the next `send`.
        self.reports.send(batch);
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
    pub each: prober::set::EachCheck,
    /// Why the failure is the checker's own, not the server's, if it is.
    pub checker_fault: Option<CheckerFault>,
    /// This failure hurried the service's other real servers (see
    /// [`super::hurries`]).
    pub hurried: bool,
    /// When the probe began (its connection, if made ahead): a flip is
    /// logged with the time since, the checker's own part of the time to
    /// see a failure, whatever the place of its probe in the interval.
    pub began: tokio::time::Instant,
}

/// A probe failure of the checker's own making: neither a pass nor a
/// failure of the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckerFault {
    /// It timed out while its thread was this far behind.
    Late(Duration),
    /// Its socket could not be made for want of the checker's own
    /// resources: this errno (EMFILE, ENFILE, ENOBUFS, ENOMEM; ENOSPC, the
    /// epoll watch limit `fs.epoll.max_user_watches`, as the socket joins
    /// its probe thread's set). A server cannot cause these; a server
    /// that refuses or is unreachable gets other errors.
    Exhausted(i32),
}

/// The errnos of a connect that say the checker, not the server, ran out
/// of something.
const EXHAUSTED: [i32; 5] = [
    libc::EMFILE,
    libc::ENFILE,
    libc::ENOBUFS,
    libc::ENOMEM,
    libc::ENOSPC,
];

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
            began: windows
                .first()
                .map_or_else(tokio::time::Instant::now, |(began, _)| *began),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::lag::BEAT;
    use crate::prober::{Phases, Success};

    fn report(port: u16) -> Report {
        Report {
            task: 0,
            service: ServiceKey::Addr {
                protocol: ipvs::Protocol::Tcp,
                addr: "198.18.0.10:80".parse().expect("address"),
            },
            destination: DestinationKey::new(([198, 18, 1, 1], port).into()),
            result: Ok(Success::default()),
            phases: Phases::new(),
            each: prober::set::EachCheck::new(),
            checker_fault: None,
            hurried: false,
            began: tokio::time::Instant::now(),
        }
    }

    fn ports(batch: Vec<Report>) -> Vec<u16> {
        batch.iter().map(|r| r.destination.addr.port()).collect()
    }

    /// A thread's results wait while some of its probes are in flight,
    /// at most a heartbeat's beat, and go together when the last ends.
    #[tokio::test(start_paused = true)]
    async fn results_go_together_when_the_threads_last_probe_ends_or_at_a_beat() {
        let (tx, mut rx) = mpsc::channel(16);
        let outbox = Outbox::new(Reports::new(tx));
        let lag = Lag::new();
        let flushed = outbox.clone();
        let beats = tokio::spawn(lag.clone().heartbeat(move || flushed.flush()));
        let (one, two) = (lag.busy(), lag.busy());
        drop(one);
        assert!(outbox.send(report(1), lag.idle()));
        assert!(rx.try_recv().is_err(), "held while a probe is in flight");
        // The next beat sends it, the other probe still in flight.
        tokio::time::sleep(BEAT + BEAT / 2).await;
        assert_eq!(ports(rx.try_recv().expect("sent at a beat")), [1]);
        let three = lag.busy();
        drop(two);
        assert!(outbox.send(report(2), lag.idle()));
        assert!(outbox.send(report(3), lag.idle()));
        assert!(rx.try_recv().is_err(), "held while a probe is in flight");
        // The last ends with no result of its own (cut, or nothing
        // to report): the others go at once, no beat waited for.
        drop(three);
        tokio::task::yield_now().await;
        assert_eq!(ports(rx.try_recv().expect("sent together")), [2, 3]);
        // With none in flight, a result goes at once.
        assert!(outbox.send(report(4), lag.idle()));
        assert_eq!(ports(rx.try_recv().expect("sent at once")), [4]);
        assert!(rx.try_recv().is_err(), "one batch each time");
        beats.abort();
        // The loop gone: said at the next result.
        drop(rx);
        assert!(!outbox.send(report(5), true));
    }
}
