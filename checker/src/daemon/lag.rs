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
//!
//! The heartbeat is due every [`BEAT`] only while probes are in flight on
//! its thread ([`Lag::busy`]): between them nothing is judged, and a beat
//! would only wake the thread (on a virtual machine a wake-up costs more
//! than a probe's parsing). Then it is due every [`IDLE_BEAT`], so that a
//! thread stuck with no probe in flight is still seen (the watchdog reads
//! it, `super::watchdog`); the first probe to start makes it due a
//! [`BEAT`] after that start, so the lateness of the probe's first steps
//! counts as before. When the last probe in flight ends, how late the
//! thread is then is recorded as a beat would record it, and the next
//! beat is an idle one at once: a group of probes that ends between two
//! beats wakes its thread for none.
//!
//! A thread's first probes are slow by their nature: their code runs, and
//! their memory is touched, for the first time (several times slower
//! under the lab's emulation: lab/bench/README.md, "2026-12-06, night").
//! Its first beat with probes in flight is late for that alone, once.
//! That lateness counts against the probes it delayed (a timeout then is
//! the checker's), but it is no sign of a thread short of CPU: the
//! admission limit reads [`Lag::recent_after_warm_up`], which leaves it
//! out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::prober::watch::LATE_PART;

/// How often the heartbeat is due while probes are in flight.
pub const BEAT: Duration = Duration::from_millis(20);

/// How often it is due while none are.
pub const IDLE_BEAT: Duration = Duration::from_secs(1);

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
    lag > timeout / LATE_PART
}

/// One probe thread's heartbeat record.
#[derive(Debug)]
pub struct Lag {
    origin: Instant,
    ring: Mutex<Ring>,
    /// Probes in flight on the thread (see [`Lag::busy`]).
    in_flight: AtomicUsize,
    /// Wakes the heartbeat when its next beat moved: sooner, as the first
    /// probe starts; later, as the last ends.
    moved: Notify,
}

#[derive(Debug)]
struct Ring {
    /// Per slot: the bucket number it holds, and the largest lag in it.
    slots: Vec<(u64, Duration)>,
    /// When the next beat is due.
    next_due: Instant,
    /// The first bucket after the thread's first beat with probes in
    /// flight (see [`Lag::recent_after_warm_up`]); `None` before it.
    warm_from: Option<u64>,
}

/// A probe in flight on the thread, for as long as it is held (see
/// [`Lag::busy`]).
#[derive(Debug)]
pub struct Busy<'a>(&'a Lag);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.ended(Instant::now());
        }
    }
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
                next_due: origin + BEAT,
                warm_from: None,
            }),
            in_flight: AtomicUsize::new(0),
            moved: Notify::new(),
        })
    }

    /// A probe starts on the thread: until the returned guard is dropped,
    /// the heartbeat is due every [`BEAT`], the first one a [`BEAT`] from
    /// now at the latest.
    pub fn busy(&self) -> Busy<'_> {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            let soon = Instant::now() + BEAT;
            let mut ring = self.lock();
            if soon < ring.next_due {
                ring.next_due = soon;
                drop(ring);
                self.moved.notify_one();
            }
        }
        Busy(self)
    }

    /// The last probe in flight ended at `now`: how late the thread is
    /// then is recorded, and the next beat is an idle one.
    fn ended(&self, now: Instant) {
        let due = self.lock().next_due;
        self.beat(due.min(now), now, IDLE_BEAT, true);
        self.moved.notify_one();
    }

    /// Whether no probe is in flight on the thread.
    pub fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock()
    }

    fn bucket(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.origin).as_nanos() / BUCKET.as_nanos()) as u64
    }

    /// The heartbeat: to be spawned on the thread whose lateness it
    /// measures; runs until its task is dropped. It calls `after` after
    /// each beat and each time the thread's probes in flight ended.
    pub async fn heartbeat(self: Arc<Self>, mut after: impl FnMut()) {
        loop {
            let due = self.lock().next_due;
            tokio::select! {
                biased;
                // The next beat moved: read it again.
                () = self.moved.notified() => {
                    after();
                    continue;
                }
                () = tokio::time::sleep_until(due) => {}
            }
            let now = Instant::now();
            let busy = !self.idle();
            let every = if busy { BEAT } else { IDLE_BEAT };
            self.beat(due, now, every, busy);
            after();
        }
    }

    /// A beat due at `due` fired at `now`, with probes in flight if
    /// `busy`; the next is due `every` later.
    fn beat(&self, due: Instant, now: Instant, every: Duration, busy: bool) {
        let lag = now.saturating_duration_since(due);
        let bucket = self.bucket(now);
        let mut ring = self.lock();
        ring.next_due = now + every;
        if busy && ring.warm_from.is_none() {
            ring.warm_from = Some(bucket + 1);
        }
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

    /// [`Lag::recent`], but for the thread's warm-up: nothing before
    /// its first beat with probes in flight has fired, and that beat's
    /// lag (with any other of its [`BUCKET`]) left out after. What the
    /// admission limit reads: a thread late only with its first probes
    /// is not short of CPU (see the module's text).
    pub fn recent_after_warm_up(&self, now: Instant) -> Duration {
        let ring = self.lock();
        let Some(warm_from) = ring.warm_from else {
            return Duration::ZERO;
        };
        let since = self.bucket(now.checked_sub(RECENT).unwrap_or(now));
        self.worst_in(&ring, since.max(warm_from), now)
    }

    /// The most the thread was behind between `since` and `now`: the
    /// largest lag of a beat that fired in that time, or how overdue the
    /// next beat is at `now`, whichever is larger.
    pub fn worst(&self, since: Instant, now: Instant) -> Duration {
        let ring = self.lock();
        self.worst_in(&ring, self.bucket(since), now)
    }

    /// [`Lag::worst`] from the bucket `since` on.
    fn worst_in(&self, ring: &Ring, since: u64, now: Instant) -> Duration {
        let overdue = now.saturating_duration_since(ring.next_due);
        let last = self.bucket(now);
        let first = since.max(last.saturating_sub(BUCKETS as u64 - 1));
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
            lag.beat(at, at + MS, BEAT, true);
        }
        lag.beat(t0 + 700 * MS, t0 + 1000 * MS, BEAT, true);
        at = t0 + 1000 * MS;
        for _ in 0..20 {
            at += BEAT;
            lag.beat(at, at, BEAT, true);
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
        lag.beat(t0 + BEAT, t0 + BEAT + 500 * MS, BEAT, true);
        let later = t0 + BUCKET * BUCKETS as u32 * 2;
        lag.beat(later, later, BEAT, true);
        // The 500 ms lag is two minutes old: its slot has been reused or
        // is out of the window.
        assert_eq!(lag.worst(t0, later), Duration::ZERO);
    }

    /// The first beat with probes in flight, late with the thread's first
    /// probes only, is kept for the probes' timeouts but not read by the
    /// admission limit; every late beat after it is.
    #[test]
    fn the_first_beat_with_probes_in_flight_is_not_read_by_the_limit() {
        let t0 = Instant::now();
        let lag = Lag::starting_at(t0);
        // Idle beats only: nothing is read yet, however late.
        lag.beat(t0 + BEAT, t0 + BEAT + 200 * MS, IDLE_BEAT, false);
        let idle = t0 + BEAT + 250 * MS;
        assert_eq!(lag.recent(idle), 200 * MS);
        assert_eq!(lag.recent_after_warm_up(idle), Duration::ZERO);
        // The first probes' beat, 150 ms late.
        let first = t0 + 2000 * MS;
        lag.beat(first - 150 * MS, first, BEAT, true);
        assert_eq!(lag.recent(first), 150 * MS);
        assert_eq!(lag.recent_after_warm_up(first), Duration::ZERO);
        let mut at = first;
        for _ in 0..10 {
            at += BEAT;
            lag.beat(at, at, BEAT, true);
        }
        assert_eq!(lag.worst(first, at), 150 * MS, "kept for the timeouts");
        assert_eq!(lag.recent_after_warm_up(at), Duration::ZERO);
        // Late again: read, beat or overdue.
        let late = at + BEAT + 120 * MS;
        lag.beat(at + BEAT, late, BEAT, true);
        assert_eq!(lag.recent_after_warm_up(late), 120 * MS);
        assert_eq!(
            lag.recent_after_warm_up(late + BEAT + 130 * MS),
            130 * MS,
            "overdue"
        );
        // The end of the last probe in flight counts as a busy beat: a
        // thread whose first probes all end between two beats is warm.
        let other = Lag::starting_at(t0);
        other.beat(t0 + BEAT, t0 + BEAT + 150 * MS, IDLE_BEAT, true);
        let after = t0 + BEAT + 150 * MS + BUCKET;
        other.beat(after - 110 * MS, after, BEAT, true);
        assert_eq!(other.recent_after_warm_up(after), 110 * MS);
    }

    /// On a runtime whose thread is blocked (the checker short of CPU),
    /// the heartbeat sees it; and when the last probe in flight ends
    /// blocked, before the heartbeat could run again, the lateness seen
    /// then is kept for the probes that start next to read (see
    /// [`Lag::recent`]), though no beat comes until the idle one.
    #[test]
    fn the_heartbeat_sees_a_blocked_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let lag = Lag::new();
            let beats = tokio::spawn(lag.clone().heartbeat(|| {}));
            let probe = lag.busy();
            tokio::time::sleep(3 * BEAT).await;
            let blocked_at = Instant::now();
            // The thread does nothing else for 300 ms, as a CPU-bound
            // thread would.
            std::thread::sleep(300 * MS);
            tokio::time::sleep(3 * BEAT).await;
            let busy = lag.worst(blocked_at, Instant::now());
            assert!(busy >= 250 * MS, "blocked: {busy:?}");
            // Blocked again, the first block out of sight, as it ends.
            tokio::time::sleep(RECENT + BEAT).await;
            let blocked_at = Instant::now();
            std::thread::sleep(300 * MS);
            drop(probe);
            let ended = Instant::now();
            assert!(lag.lock().next_due >= ended + IDLE_BEAT - MS);
            tokio::time::sleep(2 * BEAT).await;
            let seen = lag.recent(Instant::now());
            let spanning = lag.worst(blocked_at, Instant::now());
            beats.abort();
            assert!(seen >= 250 * MS, "recent, after: {seen:?}");
            assert!(
                spanning >= 250 * MS,
                "over the block at the end: {spanning:?}"
            );
        });
    }

    /// With no probe in flight the heartbeat is due every [`IDLE_BEAT`]
    /// (a thread stuck meanwhile is still seen, later); the first probe
    /// to start makes it due a [`BEAT`] after, and a thread blocked then
    /// is seen as with probes in flight all along.
    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_beats_seldom_while_no_probe_is_in_flight() {
        let lag = Lag::new();
        let beats = tokio::spawn(lag.clone().heartbeat(|| {}));
        // The first beat, then idle ones only.
        tokio::time::sleep(BEAT + MS).await;
        let idle = lag.lock().next_due;
        assert_eq!(idle - Instant::now(), IDLE_BEAT - MS);
        tokio::time::sleep(IDLE_BEAT / 2).await;
        assert_eq!(lag.lock().next_due, idle, "no beat in between");
        assert_eq!(
            lag.worst(Instant::now() - 100 * MS, Instant::now()),
            Duration::ZERO
        );
        // A probe starts: due a beat later, then every beat.
        let start = Instant::now();
        let probe = lag.busy();
        assert_eq!(lag.lock().next_due, start + BEAT);
        tokio::time::sleep(5 * BEAT + MS).await;
        assert_eq!(lag.lock().next_due, start + 6 * BEAT);
        // The probe ends between two beats: the next is an idle one
        // at once.
        tokio::time::sleep(BEAT / 2).await;
        let ended = Instant::now();
        drop(probe);
        assert_eq!(lag.lock().next_due, ended + IDLE_BEAT);
        // Stuck with no probe in flight: overdue once the idle beat is.
        let stuck_until = ended + IDLE_BEAT + 300 * MS;
        assert_eq!(lag.worst(ended, stuck_until), 300 * MS);
        beats.abort();
    }
}
