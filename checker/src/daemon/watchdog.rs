//! What the loop tells systemd ([`crate::systemd`]): `READY=1` after its
//! first reconciliation pass, `STOPPING=1` when it ends, and `WATCHDOG=1`
//! every half `WatchdogSec` while the daemon makes progress:
//!
//! - the loop itself runs: the ping is sent from the loop's own thread,
//!   so a loop stuck in a netlink call or a file write sends none;
//! - reconcile passes run: a resync pass ran since the last ping;
//! - probes complete: a probe result reached the loop within the longest
//!   probe interval plus its timeout (plus a ping period), and every probe
//!   thread's heartbeat ([`super::lag`]) is less than a ping period
//!   behind, so a probe runtime that hangs stops the pings too.
//!
//! Without `$NOTIFY_SOCKET` nothing is sent; without `$WATCHDOG_USEC`
//! only `READY=1` and `STOPPING=1`.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::config::Config;
use crate::systemd::Notifier;

/// Why no `WATCHDOG=1` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stalled {
    /// No reconcile pass ran since the last ping.
    NoReconcilePass,
    /// No probe result reached the loop for longer than any probe takes.
    NoProbeResult,
    /// A probe thread's heartbeat is late by more than a ping period.
    ProbeThreadStuck,
}

/// What the loop did since the last ping.
#[derive(Debug, Clone, Copy)]
pub(super) struct Progress {
    /// A resync pass ran.
    pub resynced: bool,
    /// Since the last probe result the loop took in.
    pub since_report: Duration,
    /// The longest a probe result may take to come: `None` with no real
    /// server configured.
    pub report_limit: Option<Duration>,
    /// The most any probe thread's heartbeat is behind.
    pub worst_lag: Duration,
    /// The ping period.
    pub period: Duration,
}

impl Progress {
    /// Whether the daemon made progress, or how it did not.
    pub fn check(&self) -> Result<(), Stalled> {
        if !self.resynced {
            return Err(Stalled::NoReconcilePass);
        }
        if self
            .report_limit
            .is_some_and(|limit| self.since_report > limit)
        {
            return Err(Stalled::NoProbeResult);
        }
        if self.worst_lag > self.period {
            return Err(Stalled::ProbeThreadStuck);
        }
        Ok(())
    }
}

/// The loop's side of the notify protocol.
#[derive(Debug)]
pub(super) struct Watchdog {
    notifier: Option<Notifier>,
    /// Half of `WatchdogSec`, if systemd asked for pings.
    period: Option<Duration>,
    ready: bool,
    resynced: bool,
    last_report: Instant,
    report_limit: Option<Duration>,
    /// The last reason no ping was sent, so it is logged once.
    stalled: Option<Stalled>,
}

impl Watchdog {
    /// Notifies `socket` (`$NOTIFY_SOCKET`), pinging every half of
    /// `watchdog` (`$WATCHDOG_USEC`).
    pub fn new(socket: Option<&str>, watchdog: Option<Duration>, config: &Config) -> Self {
        let notifier = socket.and_then(|name| match Notifier::new(name) {
            Ok(n) => Some(n),
            Err(e) => {
                error!("cannot notify systemd: {e}");
                None
            }
        });
        Watchdog {
            period: watchdog.filter(|_| notifier.is_some()).map(|w| w / 2),
            notifier,
            ready: false,
            resynced: false,
            last_report: Instant::now(),
            report_limit: report_limit(config, watchdog.unwrap_or_default() / 2),
            stalled: None,
        }
    }

    /// How often the loop should call [`Watchdog::tick`]; `None`: never.
    pub fn period(&self) -> Option<Duration> {
        self.period
    }

    /// A resync pass ran: the first one makes the daemon ready.
    pub fn resynced(&mut self) {
        self.resynced = true;
        if !self.ready {
            self.ready = true;
            self.send("READY=1");
        }
    }

    /// Probe results reached the loop.
    pub fn reports(&mut self, now: Instant) {
        self.last_report = now;
    }

    /// A reload: the probes follow `config` (its intervals may be longer).
    pub fn reloaded(&mut self, config: &Config, now: Instant) {
        self.last_report = now;
        self.report_limit = report_limit(config, self.period.unwrap_or_default());
    }

    /// Pings if the daemon made progress since the last tick; `lags`: each
    /// probe thread's heartbeat delay now.
    pub fn tick(&mut self, now: Instant, lags: impl Iterator<Item = Duration>) {
        let Some(period) = self.period else { return };
        let progress = Progress {
            resynced: self.resynced,
            since_report: now.saturating_duration_since(self.last_report),
            report_limit: self.report_limit,
            worst_lag: lags.max().unwrap_or_default(),
            period,
        };
        self.resynced = false;
        match progress.check() {
            Ok(()) => {
                self.stalled = None;
                self.send("WATCHDOG=1");
            }
            Err(why) => {
                if self.stalled != Some(why) {
                    warn!(reason = ?why, "no progress: systemd's watchdog is not fed");
                }
                self.stalled = Some(why);
            }
        }
    }

    /// The loop ends.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, state: &str) {
        if let Some(notifier) = &self.notifier {
            if let Err(e) = notifier.notify(state) {
                debug!("cannot send {state} to systemd: {e}");
            }
        }
    }
}

/// The longest a probe result may take to reach the loop under `config`:
/// the longest interval plus its timeout, plus `slack`; `None` with no
/// real server.
fn report_limit(config: &Config, slack: Duration) -> Option<Duration> {
    config
        .services
        .iter()
        .flat_map(|s| &s.real_servers)
        .map(|rs| rs.timing.interval + rs.timing.timeout)
        .max()
        .map(|d| d + slack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Progress {
        Progress {
            resynced: true,
            since_report: Duration::from_secs(1),
            report_limit: Some(Duration::from_secs(4)),
            worst_lag: Duration::from_millis(5),
            period: Duration::from_secs(5),
        }
    }

    /// Each progress signal alone stops the pings.
    #[test]
    fn every_stalled_signal_stops_the_watchdog() {
        assert_eq!(healthy().check(), Ok(()));
        let no_pass = Progress {
            resynced: false,
            ..healthy()
        };
        assert_eq!(no_pass.check(), Err(Stalled::NoReconcilePass));
        let no_result = Progress {
            since_report: Duration::from_secs(5),
            ..healthy()
        };
        assert_eq!(no_result.check(), Err(Stalled::NoProbeResult));
        let no_real_server = Progress {
            report_limit: None,
            ..no_result
        };
        assert_eq!(no_real_server.check(), Ok(()));
        let stuck = Progress {
            worst_lag: Duration::from_secs(6),
            ..healthy()
        };
        assert_eq!(stuck.check(), Err(Stalled::ProbeThreadStuck));
    }
}
