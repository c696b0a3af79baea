//! The probe tasks: one per real server, on the probe threads (see
//! [`super::shards`]), spread over its interval, each reporting its
//! results to the loop (see [`super::reports`]).

use std::sync::Arc;

use futures_util::future::{abortable, AbortHandle};
use ipvs::{DestinationKey, ServiceKey};
use rustc_hash::FxHashMap;
use tokio::sync::{watch, Semaphore};

use super::admission::Admission;
use super::bell::Bell;
use super::hurries::{Hurries, ServiceHurry};
use super::places::{group_of, groups, interleaved, Place};
use super::reports::Report;
use super::shards::Shards;
use crate::config::{Config, RealServer};
use task::ProbeTask;

mod task;

/// The probe tasks, one per real server of the config, in groups on the
/// probe threads in turn (see [`super::places`]).
///
/// A reload keeps the task of a real server that stays in the config and
/// gives it its new settings: its probes keep their place in the
/// interval (see [`Place`]: an interval after the last if the interval
/// is the same, else at its share of the new interval, within an
/// interval of the reload) and its health its count of passes and
/// failures, so a reload neither starts every probe at once nor bunches
/// them. When its checks are the same
/// ([`RealServer::probes_as`]) it keeps its probers, TLS sessions
/// included, and a probe in flight goes on; when they changed, the probe
/// in flight is cut and made again at once with the new ones: its result
/// would be of the old check. Only the real servers new to the config
/// start as at start-up.
///
/// A full TLS handshake is the costly kind of probe (a chain verified,
/// the server's signature checked, a key exchange). Started all together
/// (at start-up, or for hundreds of servers at once), they share the CPU
/// until none finishes within its timeout, so no session is ever made to
/// resume. So at most `full_handshakes` run at once (over every thread),
/// and a probe waits for its turn *before* its timeout starts: it is
/// late, but it finishes, and the next ones resume its session.
#[derive(Debug)]
pub(super) struct ProbeTasks {
    shared: Shared,
    /// Looked up for every probe result ([`ProbeTasks::current`]).
    running: FxHashMap<(ServiceKey, DestinationKey), Running>,
    /// The id the next task gets: a report names the task that made it,
    /// and one of a task since stopped is not taken in.
    next_id: u64,
}

/// What every probe task is given.
#[derive(Debug, Clone)]
struct Shared {
    full_handshakes: Arc<Semaphore>,
    /// Turns of the `exec` checks' programs (`--checker.max-programs`,
    /// fewer while they wait for a CPU: see [`super::admission`]).
    programs: Arc<Admission>,
}

#[derive(Debug)]
struct Running {
    id: u64,
    settings: watch::Sender<Settings>,
    /// Rung with new settings (and by the service's hurries).
    bell: Arc<Bell>,
    task: AbortHandle,
}

/// A probe task's real server as configured, and its service's hurries
/// (see [`super::hurries`]): both given again on a reload.
#[derive(Debug, Clone)]
struct Settings {
    rs: RealServer,
    hurry: Arc<ServiceHurry>,
    /// The count of its service's failure hurries (see
    /// [`ServiceHurry::refusing`]), which rings the task's bell.
    refusing: watch::Receiver<u64>,
}

impl ProbeTasks {
    pub fn new(full_handshakes: &Arc<Semaphore>, programs: &Arc<Admission>) -> Self {
        ProbeTasks {
            shared: Shared {
                full_handshakes: full_handshakes.clone(),
                programs: programs.clone(),
            },
            running: FxHashMap::default(),
            next_id: 0,
        }
    }

    /// Probes the real servers of `config`: the tasks of those that stay
    /// get their new settings, those gone are stopped, the new ones start
    /// spread over their interval.
    pub fn follow(&mut self, config: &Config, shards: &Shards, hurries: &Hurries) {
        let services = &config.services;
        let sizes: Vec<usize> = services.iter().map(|s| s.real_servers.len()).collect();
        let all: Vec<(ServiceKey, &RealServer)> = interleaved(&sizes)
            .into_iter()
            .map(|(s, j)| (services[s].key, &services[s].real_servers[j]))
            .collect();
        let mut gone = std::mem::take(&mut self.running);
        // The new tasks of each thread, spawned there together (below).
        let mut new = Vec::new();
        new.resize_with(shards.len(), Vec::new);
        let n = all.len().max(1);
        let slots = groups(n, shards.len());
        let base = tokio::time::Instant::now();
        for (i, (service, rs)) in all.into_iter().enumerate() {
            let key = (service, rs.key);
            let hurry = hurries.of(&service);
            let running = gone.remove(&key);
            let bell = running
                .as_ref()
                .map_or_else(|| Arc::new(Bell::default()), |r| r.bell.clone());
            let settings = Settings {
                rs: rs.clone(),
                refusing: hurry.refusing(&bell),
                hurry,
            };
            if let Some(running) = running {
                // Ignored if the task ended: it ends only when the loop
                // is gone.
                let _ = running.settings.send(settings);
                running.bell.ring();
                self.running.insert(key, running);
                continue;
            }
            // Spread the probes over the interval so they do not all
            // start together, in groups that start together: one wake-up
            // of a thread then serves a group (its timers, and the
            // answers that come back at about the same time) instead of
            // one probe.
            let (slot, thread) = group_of(i, n, slots, shards.len());
            let place = Place {
                base,
                slot: slot as u32,
                slots: slots as u32,
            };
            let shard = shards.get(thread);
            let (tx, rx) = watch::channel(settings);
            let id = self.next_id;
            self.next_id += 1;
            let task = ProbeTask {
                service,
                id,
                bell: bell.clone(),
                shared: self.shared.clone(),
                admission: shard.admission.clone(),
                lag: shard.lag.clone(),
                outbox: shard.outbox.clone(),
            };
            let (run, task) = abortable(task.run(place, rx));
            new[thread.min(shards.len() - 1)].push(run);
            self.running.insert(
                key,
                Running {
                    id,
                    settings: tx,
                    bell,
                    task,
                },
            );
        }
        for running in gone.into_values() {
            running.task.abort();
        }
        for (i, tasks) in new.into_iter().enumerate() {
            shards.get(i).spawn_together(tasks);
        }
    }

    /// Whether `report` comes from the task now probing its real server.
    pub fn current(&self, report: &Report) -> bool {
        self.running
            .get(&(report.service, report.destination))
            .is_some_and(|r| r.id == report.task)
    }

    /// Stops every task.
    pub fn stop(&mut self) {
        for (_, running) in self.running.drain() {
            running.task.abort();
        }
    }
}

impl Drop for ProbeTasks {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sleeps until `at`; never returns for `None` (the branch is disabled
/// then anyway). For the loop's branches as for the probe tasks'.
pub(super) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
