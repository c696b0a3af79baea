//! Scrapes on demand, shared: a scrape that arrives while a collection is
//! running waits for that one instead of starting its own, so the kernel
//! pays once however many scrapers there are.
//!
//! A collection runs [`snapshot::gather`] on the blocking pool under a
//! timeout; if the kernel takes longer, the scrape gets a snapshot in
//! which every collector failed (and the late result is dropped). Failures
//! are logged once when they start and once when they end, not on every
//! scrape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::conntable::ConnScans;
use crate::encode::Exposition;
use crate::snapshot::{self, Options, Snapshot};

type Slot = Option<Arc<Exposition>>;

/// The shared collector.
#[derive(Debug)]
pub struct Collector {
    options: Arc<Options>,
    timeout: Duration,
    /// The connection table's last scans (`--collector.connections.min-interval`).
    scans: Arc<ConnScans>,
    /// The collection in flight, if any: its result arrives on the channel.
    in_flight: Mutex<Option<watch::Receiver<Slot>>>,
    /// The failures last logged, by (netns, what failed).
    failures: Mutex<BTreeMap<(String, String), String>>,
    /// Whether a collection has finished: IPVS was read, or is known to
    /// be absent or unreadable (`/-/ready`).
    ready: AtomicBool,
    /// Netlink sockets replaced since the start, counted by the gathering
    /// thread itself, so that one that timed out counts too.
    socket_reopens: Arc<AtomicU64>,
}

impl Collector {
    /// A collector gathering `options`, each collection bounded by
    /// `timeout`, the connection table through `scans`.
    pub fn new(options: Options, timeout: Duration, scans: ConnScans) -> Arc<Self> {
        Arc::new(Collector {
            options: Arc::new(options),
            timeout,
            scans: Arc::new(scans),
            in_flight: Mutex::new(None),
            failures: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(false),
            socket_reopens: Arc::default(),
        })
    }

    /// Whether a collection has finished in time, so that a scrape gets
    /// what the kernel says, not a timeout (`/-/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A snapshot taken after this call started, ready to encode: the one
    /// in flight if a collection is running, else a new one. Scrapes that
    /// share it share what its first encoding prepared.
    pub async fn exposition(self: &Arc<Self>) -> Arc<Exposition> {
        let mut receiver = {
            let mut in_flight = self.in_flight.lock();
            match in_flight.as_ref() {
                Some(receiver) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    *in_flight = Some(receiver.clone());
                    let this = Arc::clone(self);
                    tokio::spawn(async move {
                        let exposition = Arc::new(Exposition::new(this.collect().await));
                        // Later scrapes start a new collection.
                        *this.in_flight.lock() = None;
                        sender.send_replace(Some(exposition));
                    });
                    receiver
                }
            }
        };
        let result = match receiver.wait_for(Option::is_some).await {
            Ok(slot) => slot.clone().unwrap_or_default(),
            // The collecting task died (a panic); report that as failure.
            Err(_) => Arc::new(Exposition::new(
                self.failed("the collection task ended unexpectedly"),
            )),
        };
        result
    }

    async fn collect(&self) -> Snapshot {
        let options = Arc::clone(&self.options);
        let scans = Arc::clone(&self.scans);
        let reopens = Arc::clone(&self.socket_reopens);
        let gathering =
            tokio::task::spawn_blocking(move || snapshot::gather(&options, &scans, &reopens));
        let mut snapshot = match tokio::time::timeout(self.timeout, gathering).await {
            Ok(Ok(snapshot)) => {
                self.ready.store(true, Ordering::Relaxed);
                snapshot
            }
            Ok(Err(_)) => self.failed("the collection thread panicked"),
            Err(_) => self.failed(&format!(
                "collection timed out after {:?} (--scrape.timeout)",
                self.timeout
            )),
        };
        snapshot.netlink_socket_reopens = self.socket_reopens.load(Ordering::Relaxed);
        self.log_changes(&snapshot);
        snapshot
    }

    fn failed(&self, reason: &str) -> Snapshot {
        let labelled = !self.options.namespaces.is_empty();
        let mut namespaces = vec![snapshot::Namespace {
            netns: labelled.then(String::new),
            ..snapshot::failed(&self.options, reason)
        }];
        for path in &self.options.namespaces {
            namespaces.push(snapshot::Namespace {
                netns: Some(path.display().to_string()),
                ..snapshot::failed(&self.options, reason)
            });
        }
        Snapshot::new(namespaces, &self.options)
    }

    /// One log line when a failure starts or changes, one when it ends.
    fn log_changes(&self, snapshot: &Snapshot) {
        let mut now = BTreeMap::new();
        for ns in &snapshot.namespaces {
            let netns = ns.netns.clone().unwrap_or_default();
            if let Some(error) = &ns.info_error {
                // One line says why: without IPVS every collector fails for
                // the same reason.
                now.insert((netns.clone(), "ipvs".to_string()), error.clone());
                continue;
            }
            for run in &ns.runs {
                if let Some(error) = &run.error {
                    now.insert((netns.clone(), run.name.to_string()), error.clone());
                }
            }
        }
        let mut logged = self.failures.lock();
        for ((netns, what), error) in &now {
            if logged.get(&(netns.clone(), what.clone())) != Some(error) {
                if what == "ipvs" {
                    tracing::warn!(netns = %netns, %error, "IPVS is not readable: ipvs_up is 0");
                } else {
                    tracing::warn!(netns = %netns, collector = %what, %error, "collector failed");
                }
            }
        }
        for (netns, what) in logged.keys() {
            if !now.contains_key(&(netns.clone(), what.clone())) {
                tracing::info!(netns = %netns, what = %what, "readable again");
            }
        }
        *logged = now;
    }
}
