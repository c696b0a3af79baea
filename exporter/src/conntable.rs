//! The connection table's cost bound (`--collector.connections.min-interval`):
//! the kernel prints `/proc/net/ip_vs_conn` line by line under its locks,
//! which on a large table costs far more than the rest of a scrape, so a
//! scan is reused by the scrapes that come less than the minimum interval
//! after it, and the age of the data is exported with it
//! (`ipvs_conntable_scan_age_seconds`).
//!
//! One scan is kept per network namespace. A failed scan is not kept: the
//! next scrape tries again. The clock is injectable so that the reuse rule
//! is tested without sleeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipvs::proc::ConnTableCounts;
use parking_lot::Mutex;

/// Where the time comes from.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The last successful scan of each namespace.
pub struct ConnScans {
    min_interval: Duration,
    clock: Clock,
    last: Mutex<HashMap<String, Scan>>,
}

struct Scan {
    finished: Instant,
    counts: Arc<ConnTableCounts>,
}

/// Counts handed to a scrape.
#[derive(Debug, Clone)]
pub struct ScanResult {
    /// The counts.
    pub counts: Arc<ConnTableCounts>,
    /// Seconds since the scan that produced them finished (0 for a scan
    /// made for this scrape).
    pub age_seconds: f64,
    /// Whether this scrape scanned the table (false: reused).
    pub scanned: bool,
}

impl std::fmt::Debug for ConnScans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnScans")
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

impl ConnScans {
    /// Scans reused for `min_interval` (zero: every scrape scans).
    pub fn new(min_interval: Duration) -> Self {
        Self::with_clock(min_interval, Arc::new(Instant::now))
    }

    /// The same with another clock (tests).
    pub fn with_clock(min_interval: Duration, clock: Clock) -> Self {
        ConnScans {
            min_interval,
            clock,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The counts of namespace `netns`: the last scan's if it finished
    /// less than the minimum interval ago, else those of `scan`, which
    /// are kept when it succeeds. A failed scan's error is returned as
    /// it is (the collector's is [`ipvs::proc::ProcError`]).
    pub fn get<E>(
        &self,
        netns: &str,
        scan: impl FnOnce() -> Result<ConnTableCounts, E>,
    ) -> Result<ScanResult, E> {
        if !self.min_interval.is_zero() {
            let now = (self.clock)();
            let last = self.last.lock();
            if let Some(kept) = last.get(netns) {
                let age = now.saturating_duration_since(kept.finished);
                if age < self.min_interval {
                    return Ok(ScanResult {
                        counts: Arc::clone(&kept.counts),
                        age_seconds: age.as_secs_f64(),
                        scanned: false,
                    });
                }
            }
        }
        // Not under the lock: a slow scan of one namespace must not hold
        // up the others (simultaneous scrapes already share one gathering).
        let counts = Arc::new(scan()?);
        if !self.min_interval.is_zero() {
            let finished = (self.clock)();
            self.last.lock().insert(
                netns.to_string(),
                Scan {
                    finished,
                    counts: Arc::clone(&counts),
                },
            );
        }
        Ok(ScanResult {
            counts,
            age_seconds: 0.0,
            scanned: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that moves only when told to, in milliseconds.
    fn manual_clock() -> (Clock, Arc<AtomicU64>) {
        let start = Instant::now();
        let millis = Arc::new(AtomicU64::new(0));
        let now = Arc::clone(&millis);
        (
            Arc::new(move || start + Duration::from_millis(now.load(Ordering::SeqCst))),
            millis,
        )
    }

    fn counts(entries: &str) -> ConnTableCounts {
        let text = format!(
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n{entries}"
        );
        ConnTableCounts::read_from(text.as_bytes()).expect("conn table")
    }

    /// A scan that succeeded (the tests' scans fail with a `String`).
    fn scanned(counts: ConnTableCounts) -> Result<ConnTableCounts, String> {
        Ok(counts)
    }

    const ONE: &str = "TCP C6120002 9C40 C612000A 0050 C612010B 0050 ESTABLISHED     899\n";

    #[test]
    fn a_scan_is_reused_within_the_interval_and_redone_after_it() {
        let (clock, millis) = manual_clock();
        let scans = ConnScans::with_clock(Duration::from_secs(10), clock);
        let mut calls = 0;

        let first = scans
            .get("", || {
                calls += 1;
                scanned(counts(ONE))
            })
            .expect("first");
        assert!(first.scanned);
        assert_eq!(first.age_seconds, 0.0);
        assert_eq!(first.counts.entries(), 1);

        millis.store(9_999, Ordering::SeqCst);
        let reused = scans
            .get("", || {
                calls += 1;
                scanned(counts(&ONE.repeat(2)))
            })
            .expect("reused");
        assert!(!reused.scanned);
        assert_eq!(reused.age_seconds, 9.999);
        assert_eq!(
            reused.counts.entries(),
            1,
            "the kept counts, not a new scan"
        );

        millis.store(10_000, Ordering::SeqCst);
        let fresh = scans
            .get("", || {
                calls += 1;
                scanned(counts(&ONE.repeat(2)))
            })
            .expect("fresh");
        assert!(fresh.scanned);
        assert_eq!(fresh.age_seconds, 0.0);
        assert_eq!(fresh.counts.entries(), 2);
        assert_eq!(calls, 2);
    }

    #[test]
    fn the_age_counts_from_the_end_of_the_scan() {
        let (clock, millis) = manual_clock();
        let scans = ConnScans::with_clock(Duration::from_secs(10), clock);
        scans
            .get("", || {
                // A scan that takes 3 s.
                millis.store(3_000, Ordering::SeqCst);
                scanned(counts(ONE))
            })
            .expect("scan");
        millis.store(12_500, Ordering::SeqCst);
        let reused = scans
            .get::<String>("", || panic!("rescanned"))
            .expect("reused");
        assert_eq!(reused.age_seconds, 9.5);
    }

    #[test]
    fn each_namespace_has_its_own_scan() {
        let (clock, _) = manual_clock();
        let scans = ConnScans::with_clock(Duration::from_secs(10), clock);
        scans.get("", || scanned(counts(ONE))).expect("own");
        let other = scans
            .get("/run/netns/b", || scanned(counts(&ONE.repeat(3))))
            .expect("other");
        assert!(other.scanned);
        assert_eq!(other.counts.entries(), 3);
        let own = scans
            .get::<String>("", || panic!("rescanned"))
            .expect("own again");
        assert_eq!(own.counts.entries(), 1);
    }

    #[test]
    fn a_failed_scan_is_not_kept() {
        let (clock, millis) = manual_clock();
        let scans = ConnScans::with_clock(Duration::from_secs(10), clock);
        scans.get("", || scanned(counts(ONE))).expect("first");
        millis.store(10_000, Ordering::SeqCst);
        let error = scans
            .get("", || Err("ip_vs_conn: gone".to_string()))
            .expect_err("failed");
        assert_eq!(error, "ip_vs_conn: gone");
        millis.store(10_001, Ordering::SeqCst);
        let retried = scans
            .get("", || scanned(counts(&ONE.repeat(2))))
            .expect("retried");
        assert!(retried.scanned, "after a failure the next scrape scans");
        assert_eq!(retried.counts.entries(), 2);
    }

    #[test]
    fn a_zero_interval_scans_every_time() {
        let (clock, _) = manual_clock();
        let scans = ConnScans::with_clock(Duration::ZERO, clock);
        for n in 1..=3 {
            let result = scans
                .get("", || scanned(counts(&ONE.repeat(n))))
                .expect("scan");
            assert!(result.scanned);
            assert_eq!(result.counts.entries(), n as u64);
        }
    }
}
