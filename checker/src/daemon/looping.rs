//! The loop's own state besides the [`Daemon`]: the probes, where they
//! report, what is due, and what each of its turns does with them
//! (results, the flush of flips, a reload), and the sources of its
//! events besides the probes (signals, admin orders).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};
use tracing::{error, info, warn};

use super::admission::Admission;
use super::hurries::{Hurries, Recovery};
use super::log::check_quiescent;
use super::probes::ProbeTasks;
use super::reports::{self, Report, Reports};
use super::shards::{self, Shards};
use super::{Daemon, Options, FLIP_COALESCE};
use crate::admin::Command;
use crate::config::{self, Config};
use crate::drain::Drains;
use crate::reconcile::ManagedTable;
use crate::state::Hurry;
use crate::state::Shared;

/// The loop's own state besides the [`Daemon`]: the probes, where they
/// report, and what is due.
pub(super) struct Loop {
    pub(super) options: Options,
    pub(super) reports: Reports,
    pub(super) hurries: Hurries,
    pub(super) probes: ProbeTasks,
    pub(super) shards: Shards,
    /// Whether a slow start is in progress: the ramp ticks only then, so
    /// an idle checker is not woken ten times a second for nothing.
    pub(super) ramping: bool,
    /// When the services with a flip are reconciled; `None`: none pending.
    pub(super) flush_at: Option<tokio::time::Instant>,
}

impl Loop {
    /// The loop of `config` with its probe threads started (none
    /// probing yet), and where their results come.
    pub(super) fn start(
        options: Options,
        config: &Config,
        state: &Shared,
    ) -> anyhow::Result<(Self, mpsc::Receiver<Vec<Report>>)> {
        let (tx, rx) = mpsc::channel(reports::QUEUE);
        let reports = Reports::new(tx);
        let shards = Shards::start(
            shards::count(options.probe_threads),
            options.max_concurrency,
            state,
            &reports,
        )
        .context("cannot start the probe threads")?;
        let probes = ProbeTasks::new(
            &Arc::new(Semaphore::new(options.max_full_handshakes.max(1))),
            &Admission::programs(options.max_programs, state.clone()),
        );
        let looping = Loop {
            reports,
            hurries: Hurries::new(config),
            probes,
            shards,
            ramping: false,
            flush_at: None,
            options,
        };
        Ok((looping, rx))
    }

    /// Probes the real servers of `config` (see [`ProbeTasks::follow`]).
    pub(super) fn follow_probes(&mut self, config: &Config) {
        self.probes.follow(config, &self.shards, &self.hurries);
    }

    /// Probe results: recorded, flips marked for the next flush, failing
    /// siblings of a recovered real server hurried.
    pub(super) fn on_reports<T: ManagedTable>(
        &mut self,
        daemon: &mut Daemon<T>,
        reports: impl Iterator<Item = Report>,
    ) {
        for report in reports {
            // A result of a real server since gone from the config, or
            // of a task stopped before a reload, is not taken in.
            if !self.probes.current(&report) {
                continue;
            }
            if report.hurried {
                daemon
                    .state
                    .lock()
                    .observe_hurry(&report.service, Hurry::Failing);
            }
            if daemon.observe(&report) == Some(Recovery)
                && self
                    .hurries
                    .recovered(&report.service, tokio::time::Instant::now())
            {
                daemon
                    .state
                    .lock()
                    .observe_hurry(&report.service, Hurry::Recovered);
            }
        }
        let dropped = self.reports.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            warn!(
                dropped,
                queue = reports::QUEUE,
                "probe results dropped: the loop was held up (by the kernel or the disk) while the queue filled; the next probes report again"
            );
        }
        if daemon.has_pending() && self.flush_at.is_none() {
            self.flush_at = Some(tokio::time::Instant::now() + FLIP_COALESCE);
        }
    }

    /// The services with a flip reconciled; whether a slow start began
    /// (the ramp ticks from now).
    pub(super) fn on_flush<T: ManagedTable>(&mut self, daemon: &mut Daemon<T>) -> bool {
        self.flush_at = None;
        daemon.flush();
        // A recovery just applied may have begun a slow start.
        if !self.ramping && daemon.ramping(std::time::Instant::now()) {
            self.ramping = true;
            return true;
        }
        false
    }

    /// SIGHUP: the config read again; on success the probes follow it. Whether a slow start is in progress (the ramp ticks from now).
    pub(super) fn on_reload<T: ManagedTable>(&mut self, daemon: &mut Daemon<T>) -> bool {
        let loaded = config::load(&self.options.config_file)
            .map_err(anyhow::Error::from)
            .and_then(|new| {
                let drains = if new.drain_file == daemon.config.drain_file {
                    None
                } else {
                    Some(Drains::load(&new.drain_file)?)
                };
                let left = daemon
                    .reconciler
                    .set_state_file(new.state_file.as_deref())?;
                Ok((new, left, drains))
            });
        let (new, left, drains) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                daemon.state.lock().reloaded(false, SystemTime::now());
                error!("reload failed, the previous configuration stays: {e}");
                return false;
            }
        };
        if let Some(left) = left {
            warn!(
                state_file = %left.state_file.display(),
                services = %left.services(),
                real_servers = %left.real_servers(),
                "left managed mode: the services and real servers it created stay in the table and in the state file (weights mode deletes nothing); a reload back to managed mode with this state_file owns them again, or delete them with ipvsadm"
            );
        }
        if let Some(drains) = drains {
            daemon.state.lock().set_drains(drains);
        }
        daemon.reconciler.set_out_of_band(new.out_of_band);
        daemon.reload(new);
        self.hurries = Hurries::new(&daemon.config);
        self.follow_probes(&daemon.config);
        self.ramping = daemon.ramping(std::time::Instant::now());
        info!(services = daemon.config.services.len(), mode = %daemon.config.mode, "configuration reloaded");
        check_quiescent(
            &self.options.quiescent_sysctl,
            self.options.dry_run,
            &daemon.config,
            &mut daemon.reconciler,
        );
        self.ramping
    }
}

/// The next admin order; never, once there are none to come.
pub(super) async fn next_order(orders: &mut Option<mpsc::Receiver<Command>>) -> Command {
    if let Some(rx) = orders {
        if let Some(command) = rx.recv().await {
            return command;
        }
        // Every sender is gone (the web endpoint stopped).
        *orders = None;
    }
    std::future::pending().await
}

/// The signals the loop follows.
pub(super) struct Signals {
    pub(super) hangup: Signal,
    pub(super) terminate: Signal,
    pub(super) interrupt: Signal,
}

impl Signals {
    pub(super) fn new() -> anyhow::Result<Self> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }
}
