//! The daemon: one probe task per real server, spread over its interval
//! and limited by a semaphore; one loop that turns results into health,
//! health into weights (through the [`Reconciler`]), reloads the config on
//! SIGHUP and stops on SIGTERM or SIGINT.
//!
//! The loop also reconciles every service once a second, so a weight
//! changed out of band is put back within a second.
//!
//! Health, weights and counters live in the [`Shared`] state, which the
//! loop alone writes and the web endpoint reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use ipvs::{DestinationKey, ServiceKey};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::{self, Config, RealServer};
use crate::prober::{self, Prober, Target};
use crate::reconcile::{Reconciler, Table};
use crate::state::Shared;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file, read again on SIGHUP.
    pub config_file: PathBuf,
    /// Probe and log, but change no weight.
    pub dry_run: bool,
    /// Probes in flight at once, at most.
    pub max_concurrency: usize,
}

/// How often every service is compared with the table.
const RESYNC: Duration = Duration::from_secs(1);

/// One probe result.
#[derive(Debug)]
struct Report {
    generation: u64,
    service: ServiceKey,
    destination: DestinationKey,
    result: Result<prober::Success, prober::ProbeError>,
    phases: prober::Phases,
}

/// Runs until SIGTERM or SIGINT, keeping `state` (made with
/// [`Shared::new`] from `config`) up to date.
pub async fn run<T: Table>(
    options: Options,
    config: Config,
    table: T,
    state: Shared,
) -> anyhow::Result<()> {
    let mut config = config;
    let mut reconciler = Reconciler::new(table, options.dry_run);
    let semaphore = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
    let (tx, mut rx) = mpsc::channel::<Report>(1024);
    let mut generation = 0;
    let mut probes = spawn_probes(&config, generation, &tx, &semaphore);
    state.lock().reset(&config);
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(
        services = config.services.len(),
        dry_run = options.dry_run,
        "started"
    );
    loop {
        tokio::select! {
            Some(report) = rx.recv() => {
                if report.generation != generation {
                    continue; // from before a reload
                }
                let flip = state.lock().observe(
                    &report.service,
                    &report.destination,
                    &report.result,
                    &report.phases,
                    SystemTime::now(),
                );
                if let Err(e) = &report.result {
                    tracing::debug!(service = %report.service, real_server = %report.destination, reason = e.reason(), "probe failed: {e}");
                }
                if let Some(now) = flip {
                    match &report.result {
                        Err(e) => warn!(service = %report.service, real_server = %report.destination, health = now.as_str(), reason = e.reason(), "real server is {}: {e}", now.as_str()),
                        Ok(_) => info!(service = %report.service, real_server = %report.destination, health = now.as_str(), "real server is {}", now.as_str()),
                    }
                    if let Some(service) = config.services.iter().find(|s| s.key == report.service) {
                        apply(&mut reconciler, service, &state);
                    }
                }
            }
            _ = resync.tick() => {
                for service in &config.services {
                    apply(&mut reconciler, service, &state);
                }
            }
            _ = hangup.recv() => {
                match config::load(&options.config_file) {
                    Ok(new) => {
                        probes.abort_all();
                        generation += 1;
                        config = new;
                        {
                            let mut state = state.lock();
                            state.reset(&config);
                            state.reloaded(true, SystemTime::now());
                        }
                        probes = spawn_probes(&config, generation, &tx, &semaphore);
                        info!(services = config.services.len(), "configuration reloaded");
                    }
                    Err(e) => {
                        state.lock().reloaded(false, SystemTime::now());
                        error!("reload failed, the previous configuration stays: {e}");
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    probes.abort_all();
    info!("stopped");
    Ok(())
}

/// Reconciles one service and logs what happened. Netlink calls block for
/// one round trip with the kernel; `block_in_place` keeps them off the
/// other tasks' way.
fn apply<T: Table>(
    reconciler: &mut Reconciler<T>,
    service: &config::VirtualService,
    state: &Shared,
) {
    let want = state.lock().desired(service);
    // The lock is not held over the netlink calls.
    let outcome = tokio::task::block_in_place(|| reconciler.reconcile(&want));
    state
        .lock()
        .record(&want, outcome.as_ref().ok(), reconciler.dry_run());
    match outcome {
        Ok(outcome) => {
            for c in &outcome.changes {
                if c.out_of_band {
                    warn!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, "weight was changed out of band; set back");
                } else if want.guard_active {
                    warn!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, "quorum guard: too few real servers up, keeping the failed ones at their weight");
                } else {
                    info!(service = %c.service, real_server = %c.destination, from = c.from, to = c.to, dry_run = reconciler.dry_run(), "weight set");
                }
            }
            for d in &outcome.missing {
                warn!(service = %service.key, real_server = %d, "real server is not in the IPVS table");
            }
            for (d, e) in &outcome.errors {
                error!(service = %service.key, real_server = %d, "cannot set weight: {e}");
            }
        }
        Err(e) => warn!(service = %service.key, "cannot read the service: {e}"),
    }
}

/// One task per real server.
fn spawn_probes(
    config: &Config,
    generation: u64,
    tx: &mpsc::Sender<Report>,
    semaphore: &Arc<Semaphore>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let all: Vec<(ServiceKey, &RealServer)> = config
        .services
        .iter()
        .flat_map(|s| s.real_servers.iter().map(move |rs| (s.key, rs)))
        .collect();
    let n = all.len().max(1) as u32;
    for (i, (service, rs)) in all.into_iter().enumerate() {
        // Spread the first probes evenly over the interval so they do not
        // all start together, and the later ones keep that spacing.
        let offset = rs.timing.interval / n * i as u32;
        let rs = rs.clone();
        let tx = tx.clone();
        let semaphore = semaphore.clone();
        set.spawn(async move {
            let start = tokio::time::Instant::now() + offset;
            let mut ticks = tokio::time::interval_at(start, rs.timing.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut prober = Prober::new(
                rs.check.clone(),
                Target {
                    addr: rs.target,
                    source: rs.source,
                },
            );
            loop {
                ticks.tick().await;
                let Ok(_permit) = semaphore.acquire().await else {
                    return;
                };
                let outcome = prober.probe(rs.timing.timeout).await;
                tracing::trace!(real_server = %rs.key, took = ?outcome.phases.total(), ok = outcome.result.is_ok(), "probe");
                let report = Report {
                    generation,
                    service,
                    destination: rs.key,
                    result: outcome.result,
                    phases: outcome.phases,
                };
                if tx.send(report).await.is_err() {
                    return;
                }
            }
        });
    }
    set
}
