//! The probe threads: by default one per core but one (see [`count`]),
//! each a single-threaded async runtime with its share of the probes, its
//! own admission limit (see [`super::admission`]) and its own heartbeat
//! (see [`super::lag`]).
//!
//! A probe never leaves the thread it started on, so its steps cost no
//! cross-thread wake-up, and a thread short of CPU sees its own lateness
//! and limits its own probes. Its results go to the loop in batches (see
//! [`super::reports::Outbox`]). The loop that owns health and weights runs
//! on a thread of its own (see [`super::spawn`]), so its netlink calls and
//! state-file writes never hold up a probe.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::admission::{cores, Admission};
use super::lag::Lag;
use super::reports::{Outbox, Reports};
use crate::state::Shared;

/// One probe thread.
#[derive(Debug)]
pub struct Shard {
    /// Where its probe tasks are spawned.
    pub handle: Handle,
    /// Its probes in flight at once.
    pub admission: Arc<Admission>,
    /// How late it is.
    pub lag: Arc<Lag>,
    /// Where its probes' results wait to go to the loop.
    pub outbox: Arc<Outbox>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Every probe thread; stopped and joined when dropped.
#[derive(Debug)]
pub struct Shards {
    shards: Vec<Shard>,
}

/// How many probe threads `requested` means: itself, or with 0 one per
/// core the process may use but one, and at least one.
///
/// The core left is the director's: its kernel forwards the virtual
/// services' packets on every core (softirqs, and ksoftirqd threads once
/// they are many), and the checker's loop and web endpoint have threads
/// of their own. Probe threads on every core take turns with all of that
/// on each core, and each turn is a context switch: in the lab, where
/// nginx serves the real servers on the same two vCPUs as the checker,
/// one probe thread cost less CPU a probe than two and was on time more,
/// over verified HTTPS at 500 real servers a second and over HTTP at
/// 5,000 every 2 s (lab/bench/README.md, "2026-12-06, morning"). A
/// checker short of CPU is late, never wrong (see [`super::lag`]), and
/// `--checker.probe-threads` gives it every core where the director has
/// nothing else to do.
pub fn count(requested: usize) -> usize {
    match requested {
        0 => cores_but_one(cores()),
        n => n,
    }
}

/// One thread per core of `cores` but one, at least one.
fn cores_but_one(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

impl Shards {
    /// Starts `n` probe threads (at least 1) sharing at most
    /// `max_concurrency` probes in flight, each limit shown in `state`,
    /// their results sent to `reports`.
    pub fn start(
        n: usize,
        max_concurrency: usize,
        state: &Shared,
        reports: &Reports,
    ) -> io::Result<Self> {
        let n = n.max(1);
        let per_shard = max_concurrency.div_ceil(n).max(1);
        let mut shards = Vec::with_capacity(n);
        for i in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let lag = Lag::new();
            let outbox = Outbox::new(reports.clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let flushed = outbox.clone();
            let heartbeat = lag.clone().heartbeat(move || flushed.flush());
            let thread = std::thread::Builder::new()
                .name(format!("probes-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let beating = tokio::spawn(heartbeat);
                        // A dropped sender (the daemon gone) stops it too.
                        let _ = stopped.await;
                        beating.abort();
                    });
                    // Dropping the runtime drops its probe tasks.
                })?;
            shards.push(Shard {
                handle,
                admission: Admission::new(per_shard, state.clone(), i),
                lag,
                outbox,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Shards { shards })
    }

    /// The `i`-th thread (of [`Shards::len`]; the last for a larger `i`).
    pub fn get(&self, i: usize) -> &Shard {
        &self.shards[i.min(self.shards.len() - 1)]
    }

    /// How far behind each thread's heartbeat is at `now` (see
    /// [`Lag::recent`]).
    pub fn lags(
        &self,
        now: tokio::time::Instant,
    ) -> impl Iterator<Item = std::time::Duration> + '_ {
        self.shards.iter().map(move |s| s.lag.recent(now))
    }

    /// How many threads.
    pub fn len(&self) -> usize {
        self.shards.len()
    }
}

impl Shard {
    /// Spawns `tasks` on this thread, from the thread itself and in one
    /// go. Spawned from another thread one by one, each woke this one,
    /// which took them as they came, its heartbeat late all the while:
    /// at a start of thousands of real servers, for long enough to cut
    /// the admission limit (lab/bench/README.md, "2026-12-06, night").
    pub fn spawn_together<F>(&self, tasks: Vec<F>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if tasks.is_empty() {
            return;
        }
        self.handle.spawn(async move {
            for task in tasks {
                tokio::spawn(task);
            }
        });
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            if let Some(stop) = shard.stop.take() {
                let _ = stop.send(());
            }
        }
        for shard in &mut self.shards {
            if let Some(thread) = shard.thread.take() {
                // A probe thread that panicked has nothing left to join.
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_every_core_but_one_probes_and_one_at_least() {
        assert_eq!(cores_but_one(1), 1);
        assert_eq!(cores_but_one(2), 1);
        assert_eq!(cores_but_one(4), 3);
        assert_eq!(cores_but_one(64), 63);
        assert_eq!(count(0), cores_but_one(cores()));
        assert_eq!(count(3), 3);
        assert_eq!(count(1), 1);
    }
}
