//! Notify hooks: what the checker tells a program ([`exec`]) or a URL
//! ([`webhook`]) on each [`Event`] (a real server up or down, drained or
//! undrained, a quorum lost or regained, a sorry server in or out, the
//! checker started or stopping).
//!
//! The loop hands events to [`Notifier::emit`], which never waits: the
//! event goes into a bounded queue, or, when the queue is full, is dropped
//! and counted. The hooks run on a thread of their own with a runtime of
//! their own, at most `max_running_hooks` at once, so a slow or failing
//! hook delays neither a probe nor a weight change.
//!
//! The webhook's JSON document (one per event; `version` changes only if
//! a field changes meaning or goes away):
//!
//! ```json
//! {"version": 1, "event": "real_server_down", "service": "TCP 198.18.0.10:80",
//!  "real_server": "198.18.1.11:80", "old_weight": 1, "new_weight": 0,
//!  "reason": "connection refused", "time": "2026-12-02T10:00:00Z"}
//! ```
//!
//! `service`, `real_server`, `old_weight`, `new_weight` and `reason` are
//! `null` when an event has none (checker_started has no service); an exec
//! hook gets the same as environment variables, empty when `null`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipvs::{DestinationKey, ServiceKey};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::warn;

pub use self::counts::{Counts, Ending, EventKind, HookKind, Stats};
use crate::config::{ExecHook, Hooks, Webhook};

pub mod counts;
mod exec;
mod webhook;

#[cfg(test)]
mod tests;

/// Events waiting for a hook, at most; more are dropped and counted.
pub const QUEUE: usize = 256;

/// One event, as every hook receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The service, unless the event is the checker's own.
    pub service: Option<ServiceKey>,
    /// The real server (or the sorry server), if the event is about one.
    pub real_server: Option<DestinationKey>,
    /// Its weight in the table when the event happened, if known.
    pub old_weight: Option<u32>,
    /// The weight the checker gives it now, if it sets one.
    pub new_weight: Option<u32>,
    /// Why, in words (a probe's error, a drain's reason), if known.
    pub reason: Option<String>,
    /// When.
    pub time: SystemTime,
}

impl Event {
    /// An event of `kind` now, with nothing else known yet.
    pub fn new(kind: EventKind) -> Self {
        Event {
            kind,
            service: None,
            real_server: None,
            old_weight: None,
            new_weight: None,
            reason: None,
            time: SystemTime::now(),
        }
    }

    /// The webhook's document (see the module's docs).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": 1,
            "event": self.kind.as_str(),
            "service": self.service.map(|s| s.to_string()),
            "real_server": self.real_server.map(|d| d.to_string()),
            "old_weight": self.old_weight,
            "new_weight": self.new_weight,
            "reason": self.reason,
            "time": rfc3339(self.time),
        })
    }

    /// The exec hook's environment (see the module's docs).
    pub fn environment(&self) -> [(&'static str, String); 7] {
        let text = |v: Option<String>| v.unwrap_or_default();
        [
            ("IPVS_CHECKER_EVENT", self.kind.as_str().to_owned()),
            (
                "IPVS_CHECKER_SERVICE",
                text(self.service.map(|s| s.to_string())),
            ),
            (
                "IPVS_CHECKER_REAL_SERVER",
                text(self.real_server.map(|d| d.to_string())),
            ),
            (
                "IPVS_CHECKER_OLD_WEIGHT",
                text(self.old_weight.map(|w| w.to_string())),
            ),
            (
                "IPVS_CHECKER_NEW_WEIGHT",
                text(self.new_weight.map(|w| w.to_string())),
            ),
            ("IPVS_CHECKER_REASON", text(self.reason.clone())),
            ("IPVS_CHECKER_TIME", rfc3339(self.time)),
        ]
    }
}

/// `time` as RFC 3339 in UTC, to the second: `2026-12-02T10:00:00Z`.
fn rfc3339(time: SystemTime) -> String {
    // The status page's `2026-12-02 10:00:00`, in the form JSON readers expect.
    format!(
        "{}Z",
        crate::status::utc(crate::drain::unix(time)).replacen(' ', "T", 1)
    )
}

/// An event and the hooks it runs.
#[derive(Debug)]
struct Job {
    event: Arc<Event>,
    hooks: Arc<Hooks>,
}

/// The loop's side: where events go.
#[derive(Debug)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Job>>,
    stats: Arc<Stats>,
    done: Option<std::sync::mpsc::Receiver<()>>,
    /// Events are being dropped: warned once until one goes through.
    dropping: AtomicBool,
}

impl Notifier {
    /// Starts the hooks' thread: at most `max_running` hooks at once,
    /// counting into `stats`. If the thread cannot start, every event is
    /// dropped and counted (and that is logged once, here).
    pub fn start(max_running: usize, stats: Arc<Stats>) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let (finished, done) = std::sync::mpsc::channel();
        let worker_stats = stats.clone();
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("hooks".into())
                    .spawn(move || {
                        runtime.block_on(work(jobs, max_running.max(1), worker_stats));
                        let _ = finished.send(());
                    })
            });
        match started {
            Ok(_) => Notifier {
                queue: Some(queue),
                stats,
                done: Some(done),
                dropping: AtomicBool::new(false),
            },
            Err(e) => {
                tracing::error!(
                    "cannot start the hooks' thread: no hook will run, every event is dropped: {e}"
                );
                Notifier {
                    queue: None,
                    stats,
                    done: None,
                    dropping: AtomicBool::new(false),
                }
            }
        }
    }

    /// Hands `event` to `hooks` without waiting: when the queue is full it
    /// is dropped, counted for each hook it would have run.
    pub fn emit(&self, hooks: &Arc<Hooks>, event: Event) {
        if hooks.is_empty() {
            return;
        }
        let kind = event.kind;
        let job = Job {
            event: Arc::new(event),
            hooks: hooks.clone(),
        };
        let sent = match &self.queue {
            Some(queue) => queue.try_send(job).map_err(|e| match e {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => {
                    job
                }
            }),
            None => Err(job),
        };
        let Err(job) = sent else {
            self.dropping.store(false, Ordering::Relaxed);
            return;
        };
        for hook in kinds(&job.hooks) {
            self.stats.add(hook, kind, |c| c.dropped += 1);
        }
        if !self.dropping.swap(true, Ordering::Relaxed) {
            warn!(
                event = kind.as_str(),
                queue = QUEUE,
                "hook queue full: events are dropped for their hooks until it has room (ipvs_checker_hooks_dropped_total counts them)"
            );
        }
    }

    /// No more events: waits up to `grace` for the queued and running
    /// hooks to end (a `checker_stopping` hook among them).
    pub fn finish(&mut self, grace: Duration) {
        self.queue = None;
        if let Some(done) = self.done.take() {
            if done.recv_timeout(grace).is_err() {
                warn!(
                    ?grace,
                    "hooks still running at exit are left behind (their programs are not waited for)"
                );
            }
        }
    }
}

/// The kinds of hook in `hooks`.
fn kinds(hooks: &Hooks) -> impl Iterator<Item = HookKind> + '_ {
    hooks
        .exec
        .as_ref()
        .map(|_| HookKind::Exec)
        .into_iter()
        .chain(hooks.webhook.as_ref().map(|_| HookKind::Webhook))
}

/// One hook of a job.
enum Hook {
    Exec(ExecHook),
    Webhook(Webhook),
}

impl Hook {
    fn kind(&self) -> HookKind {
        match self {
            Hook::Exec(_) => HookKind::Exec,
            Hook::Webhook(_) => HookKind::Webhook,
        }
    }
}

/// The hooks' thread: takes a job once a hook may start, runs each of its
/// hooks as a task of its own, until the queue closes and every task ended.
async fn work(mut jobs: mpsc::Receiver<Job>, max_running: usize, stats: Arc<Stats>) {
    let running = Arc::new(Semaphore::new(max_running));
    let mut tasks = JoinSet::new();
    loop {
        // A slot first: while every slot is taken, events wait in the
        // queue (and the queue, full, drops them).
        let Ok(first) = running.clone().acquire_owned().await else {
            break;
        };
        let Some(job) = jobs.recv().await else { break };
        let mut first = Some(first);
        let exec = job.hooks.exec.clone().map(Hook::Exec);
        let webhook = job.hooks.webhook.clone().map(Hook::Webhook);
        for hook in exec.into_iter().chain(webhook) {
            // The job's first hook has its slot; each other waits for one.
            let permit = match first.take() {
                Some(permit) => permit,
                None => {
                    let Ok(permit) = running.clone().acquire_owned().await else {
                        break;
                    };
                    permit
                }
            };
            let (event, stats) = (job.event.clone(), stats.clone());
            tasks.spawn(async move {
                let kind = hook.kind();
                stats.add(kind, event.kind, |c| c.run += 1);
                let ending = match &hook {
                    Hook::Exec(exec) => exec::run(exec, &event).await,
                    Hook::Webhook(webhook) => webhook::run(webhook, &event).await,
                };
                count(&stats, kind, event.kind, ending);
                drop(permit);
            });
        }
        // Reap what ended, so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

fn count(stats: &Stats, kind: HookKind, event: EventKind, ending: Ending) {
    match ending {
        Ending::Succeeded => {}
        Ending::Failed => stats.add(kind, event, |c| c.failed += 1),
        Ending::TimedOut => stats.add(kind, event, |c| c.timed_out += 1),
    }
}
