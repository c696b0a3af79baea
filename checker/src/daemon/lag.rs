//! How late the checker itself is: a heartbeat on each probe thread.
//!
//! A probe's steps (the connect, each TLS flight, the answer) each wait
//! for an event, and the thread that runs the probe notices the event only
//! when it gets to it. While the thread keeps up, that is at once; when it
//! is short of CPU, every step waits behind the others, and a healthy
//! server's probe can run out of its timeout in the checker's own queue.
//! Such a timeout says nothing about the server.
//!
//! The heartbeat is a timer task on the same thread as the probes, due
//! every [`BEAT`]: how late it fires is how late any timer or socket event
//! of a probe is noticed at that moment. The checker is *late* during a
//! probe when, at some moment between the probe's start and its end, the
//! heartbeat was more than a tenth of the probe's timeout behind (see
//! [`is_late`]): either a beat fired that late, or, at the end, the last
//! beat is that much overdue. The same tenth is what the admission limit
//! counts as a late start (see `super::admission`).
//!
//! Only a timeout can be the checker's fault: a refused connection, a TLS
//! error or a wrong answer is the server's, however late it was noticed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// How often the heartbeat is due.
pub const BEAT: Duration = Duration::from_millis(20);

/// What [`Lag::recent`] looks back over: a few beats.
pub const RECENT: Duration = Duration::from_millis(100);

/// The lags are kept as the largest in each bucket of this length.
const BUCKET: Duration = Duration::from_millis(50);

/// Buckets kept: one minute of history. A probe longer than that is
/// judged on its last minute.
const BUCKETS: usize = 1200;

/// Whether a delay of `lag` is late for a probe with `timeout`: more than
/// a tenth of it.
pub fn is_late(lag: Duration, timeout: Duration) -> bool {
    lag > timeout / 10
}

/// One probe thread's heartbeat record.
#[derive(Debug)]
pub struct Lag {
    origin: Instant,
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    /// Per slot: the bucket number it holds, and the largest lag in it.
    slots: Vec<(u64, Duration)>,
    /// When the last beat fired (or the heartbeat started).
    last_beat: Instant,
}

impl Lag {
    /// A record with no beat yet; [`Lag::heartbeat`] runs the beats.
    pub fn new() -> Arc<Self> {
        Self::starting_at(Instant::now())
    }

    fn starting_at(origin: Instant) -> Arc<Self> {
        Arc::new(Lag {
            origin,
            ring: Mutex::new(Ring {
                slots: vec![(u64::MAX, Duration::ZERO); BUCKETS],
                last_beat: origin,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // Every update leaves the ring consistent.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bucket(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.origin).as_nanos() / BUCKET.as_nanos()) as u64
    }

    /// The heartbeat: to be spawned on the thread whose lateness it
    /// measures; runs until its task is dropped.
    pub async fn heartbeat(self: Arc<Self>) {
        let mut due = Instant::now() + BEAT;
        loop {
            tokio::time::sleep_until(due).await;
            let now = Instant::now();
            self.beat(due, now);
            due = now + BEAT;
        }
    }

    /// A beat due at `due` fired at `now`.
    fn beat(&self, due: Instant, now: Instant) {
        let lag = now.saturating_duration_since(due);
        let bucket = self.bucket(now);
        let mut ring = self.lock();
        ring.last_beat = now;
        let slot = &mut ring.slots[(bucket % BUCKETS as u64) as usize];
        if slot.0 == bucket {
            slot.1 = slot.1.max(lag);
        } else {
            *slot = (bucket, lag);
        }
    }

    /// The most the thread was behind over the last [`RECENT`] up to
    /// `now`.
    pub fn recent(&self, now: Instant) -> Duration {
        self.worst(now.checked_sub(RECENT).unwrap_or(now), now)
    }

    /// The most the thread was behind between `since` and `now`: the
    /// largest lag of a beat that fired in that time, or how overdue the
    /// next beat is at `now`, whichever is larger.
    pub fn worst(&self, since: Instant, now: Instant) -> Duration {
        let ring = self.lock();
        let overdue = now.saturating_duration_since(ring.last_beat + BEAT);
        let last = self.bucket(now);
        let first = self
            .bucket(since)
            .max(last.saturating_sub(BUCKETS as u64 - 1));
        (first..=last)
            .filter_map(|b| {
                let (held, lag) = ring.slots[(b % BUCKETS as u64) as usize];
                (held == b).then_some(lag)
            })
            .fold(overdue, Duration::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn late_is_more_than_a_tenth_of_the_timeout() {
        assert!(!is_late(100 * MS, 1000 * MS));
        assert!(is_late(101 * MS, 1000 * MS));
        assert!(!is_late(Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn the_worst_lag_is_the_largest_beat_in_the_window_or_the_overdue_beat() {
        let t0 = Instant::now();
        let lag = Lag::starting_at(t0);
        // Beats on time, then one 300 ms late at 1 s, then on time again.
        let mut at = t0;
        for _ in 0..40 {
            at += BEAT;
            lag.beat(at, at + MS);
        }
        lag.beat(t0 + 700 * MS, t0 + 1000 * MS);
        at = t0 + 1000 * MS;
        for _ in 0..20 {
            at += BEAT;
            lag.beat(at, at);
        }
        assert_eq!(lag.worst(t0, t0 + 600 * MS), MS, "before the late beat");
        assert_eq!(lag.worst(t0 + 900 * MS, at), 300 * MS, "spanning it");
        assert_eq!(lag.worst(t0 + 1100 * MS, at), Duration::ZERO, "after it");
        // No beat since `at`: 250 ms later the next one is 230 ms overdue.
        assert_eq!(lag.worst(at, at + 250 * MS), 230 * MS);
    }

    #[test]
    fn a_window_longer_than_the_history_is_judged_on_the_history() {
        let t0 = Instant::now();
        let lag = Lag::starting_at(t0);
        lag.beat(t0 + BEAT, t0 + BEAT + 500 * MS);
        let later = t0 + BUCKET * BUCKETS as u32 * 2;
        lag.beat(later, later);
        // The 500 ms lag is two minutes old: its slot has been reused or
        // is out of the window.
        assert_eq!(lag.worst(t0, later), Duration::ZERO);
    }

    /// On a runtime whose thread is blocked (the checker short of CPU),
    /// the heartbeat sees it.
    #[test]
    fn the_heartbeat_sees_a_blocked_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let lag = Lag::new();
            let beats = tokio::spawn(lag.clone().heartbeat());
            tokio::time::sleep(3 * BEAT).await;
            let blocked_at = Instant::now();
            // The thread does nothing else for 300 ms, as a CPU-bound
            // thread would.
            std::thread::sleep(300 * MS);
            tokio::time::sleep(3 * BEAT).await;
            let busy = lag.worst(blocked_at, Instant::now());
            beats.abort();
            assert!(busy >= 250 * MS, "blocked: {busy:?}");
        });
    }
}
