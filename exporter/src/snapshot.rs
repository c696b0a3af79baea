//! Gathering: everything one scrape exports, read from the kernel into a
//! [`Snapshot`] before any encoding starts.
//!
//! Four collectors, each switchable and each timed:
//! - `stats`: the global totals of `/proc/net/ip_vs_stats` (world-readable);
//! - `services`: the whole table with 64-bit counters over netlink
//!   (GET_SERVICE, then GET_DEST per service; needs CAP_NET_ADMIN);
//! - `connections`: `/proc/net/ip_vs_conn` counted in one streaming pass
//!   per (virtual service, real server, state), templates apart;
//! - `director`: the sync daemons, the connection timeouts and the
//!   settings under `/proc/sys/net/ipv4/vs` ([`crate::director`]).
//!
//! The exporter's own `process_*` metrics and build are read once per
//! snapshot too, so that the encoding stays a function of the snapshot.
//!
//! GET_INFO is always asked: its answer is `ipvs_up` and `ipvs_info`.
//! All of it blocks, so [`gather`] runs on a blocking thread; another
//! network namespace is entered on a short-lived thread of its own
//! ([`ipvs::netns::in_netns`]), and `/proc/thread-self/net` then names
//! that namespace's files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ipvs::proc::{ConnTableCounts, GlobalStats};
use ipvs::{Info, Ipvs, TableEntry};
use ipvs_web::process::{BuildInfo, ProcessStats};

use crate::conntable::ConnScans;
use crate::director::Director;
use crate::filter::{BackendLabels, ServiceFilter};

/// Which collectors run (`--[no-]collector.NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collectors {
    /// `stats`: `/proc/net/ip_vs_stats`.
    pub stats: bool,
    /// `services`: the table over netlink.
    pub services: bool,
    /// `connections`: `/proc/net/ip_vs_conn`.
    pub connections: bool,
    /// `director`: sync daemons, timeouts, `/proc/sys/net/ipv4/vs`.
    pub director: bool,
    /// The services collector's rate estimates
    /// (`--collector.services.rates`).
    pub rates: bool,
}

/// What to gather.
#[derive(Debug, Clone)]
pub struct Options {
    /// The collectors that run.
    pub collectors: Collectors,
    /// Other network namespaces to export besides the exporter's own
    /// (`--netns PATH`); when there are any, every series gets a `netns`
    /// label (empty for the exporter's own namespace).
    pub namespaces: Vec<PathBuf>,
    /// Netlink sockets for the per-service destination dumps
    /// ([`Ipvs::dump_parallel`]).
    pub sockets: usize,
    /// The services to export.
    pub filter: ServiceFilter,
    /// The backend labels kept (`--collector.backends.labels`).
    pub backend_labels: BackendLabels,
}

/// One collector's run in one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorRun {
    /// `stats`, `services` or `connections`.
    pub name: &'static str,
    /// Wall time it took.
    pub seconds: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Everything exported about one network namespace.
#[derive(Debug, Default)]
pub struct Namespace {
    /// The `netns` label: `None` when no `--netns` was given, `Some("")`
    /// for the exporter's own namespace otherwise, else the path.
    pub netns: Option<String>,
    /// GET_INFO's answer, or why there is none (`ipvs_up` is 0 then).
    pub info: Option<Info>,
    /// Why GET_INFO failed.
    pub info_error: Option<String>,
    /// Global totals (`stats` collector).
    pub global: Option<GlobalStats>,
    /// Services with their destinations (`services` collector).
    pub table: Option<Vec<TableEntry>>,
    /// The connection table's counts (`connections` collector), possibly
    /// those of an earlier scan (see [`ConnScans`]).
    pub connections: Option<Arc<ConnTableCounts>>,
    /// Seconds since the scan behind `connections` finished.
    pub connections_age: Option<f64>,
    /// The director's sync daemons, timeouts and settings (`director`
    /// collector).
    pub director: Option<Director>,
    /// The collectors that ran, in order.
    pub runs: Vec<CollectorRun>,
}

/// One scrape's data.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The exporter's own namespace first, then each `--netns` in order.
    pub namespaces: Vec<Namespace>,
    /// The services to export (all by default).
    pub filter: ServiceFilter,
    /// The backend labels kept.
    pub backend_labels: BackendLabels,
    /// Whether the services' and backends' rate estimates are exported.
    pub rates: bool,
    /// What the exporter was built from (`ipvs_exporter_build_info`).
    pub build: Option<BuildInfo>,
    /// The exporter's process (`process_*`), if `/proc/self` was readable.
    pub process: Option<ProcessStats>,
    /// Netlink sockets replaced since the exporter started, after an error
    /// had left them unusable ([`Ipvs::socket_reopens`]).
    pub netlink_socket_reopens: u64,
}

impl Snapshot {
    /// A snapshot of `namespaces` gathered with `options`, with the
    /// exporter's build and process.
    pub fn new(namespaces: Vec<Namespace>, options: &Options) -> Self {
        Snapshot {
            namespaces,
            filter: options.filter.clone(),
            backend_labels: options.backend_labels,
            rates: options.collectors.rates,
            build: Some(ipvs_web::build_info!()),
            process: ProcessStats::read().ok(),
            netlink_socket_reopens: 0,
        }
    }
}

/// Gathers every namespace, one after the other (blocking); the
/// connection table's counts come through `scans`, and the netlink sockets
/// replaced on the way are added to `reopens`.
pub fn gather(options: &Options, scans: &ConnScans, reopens: &AtomicU64) -> Snapshot {
    let labelled = !options.namespaces.is_empty();
    let mut namespaces = vec![Namespace {
        netns: labelled.then(String::new),
        ..gather_here(options, scans, "", reopens)
    }];
    for path in &options.namespaces {
        let label = path.display().to_string();
        let namespace =
            match ipvs::netns::in_netns(path, || gather_here(options, scans, &label, reopens)) {
                Ok(namespace) => namespace,
                Err(error) => failed(options, &error.to_string()),
            };
        namespaces.push(Namespace {
            netns: Some(label),
            ..namespace
        });
    }
    Snapshot::new(namespaces, options)
}

/// A namespace where nothing could be read, for `reason`.
pub fn failed(options: &Options, reason: &str) -> Namespace {
    let c = options.collectors;
    let runs = [
        ("stats", c.stats),
        ("services", c.services),
        ("connections", c.connections),
        ("director", c.director),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| CollectorRun {
        name,
        seconds: 0.0,
        error: Some(reason.to_string()),
    })
    .collect();
    Namespace {
        info_error: Some(reason.to_string()),
        runs,
        ..Namespace::default()
    }
}

/// Gathers the namespace of the calling thread, `netns` by its label.
fn gather_here(
    options: &Options,
    scans: &ConnScans,
    netns: &str,
    reopens: &AtomicU64,
) -> Namespace {
    let proc_net = Path::new("/proc/thread-self/net");
    let mut namespace = Namespace::default();
    // Asking netlink for the IPVS family when the module is not loaded
    // makes the kernel load it (genetlink's module autoloading, as root):
    // an exporter must not change the kernel, so it looks first.
    let mut netlink = if proc_net.join("ip_vs").exists() {
        Ipvs::connect()
            .and_then(|mut ipvs| ipvs.info().map(|info| (ipvs, info)))
            .map_err(|e| e.to_string())
    } else {
        Err("IPVS is not loaded: /proc/net/ip_vs does not exist (modprobe ip_vs)".to_string())
    };
    match &mut netlink {
        Ok((_, info)) => namespace.info = Some(*info),
        Err(error) => namespace.info_error = Some(error.clone()),
    }
    if options.collectors.stats {
        let (result, run) = timed("stats", || {
            GlobalStats::read_path(proc_net.join("ip_vs_stats")).map_err(|e| e.to_string())
        });
        namespace.global = result;
        namespace.runs.push(run);
    }
    if options.collectors.services {
        let (result, run) = timed("services", || match &mut netlink {
            Ok((ipvs, _)) => ipvs
                .dump_parallel(options.sockets)
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        });
        namespace.table = result;
        namespace.runs.push(run);
    }
    if options.collectors.connections {
        let (result, run) = timed("connections", || {
            scans
                .get(netns, || {
                    ConnTableCounts::read_path(proc_net.join("ip_vs_conn"))
                })
                .map_err(|e| e.to_string())
        });
        namespace.connections_age = result.as_ref().map(|scan| scan.age_seconds);
        namespace.connections = result.map(|scan| scan.counts);
        namespace.runs.push(run);
    }
    if options.collectors.director {
        let (result, run) = timed("director", || match &mut netlink {
            Ok((ipvs, _)) => crate::director::gather(ipvs, Path::new("/proc/sys/net/ipv4/vs")),
            Err(error) => Err(error.to_string()),
        });
        namespace.director = result;
        namespace.runs.push(run);
    }
    if let Ok((ipvs, _)) = &netlink {
        reopens.fetch_add(ipvs.socket_reopens(), Ordering::Relaxed);
    }
    namespace
}

fn timed<T>(
    name: &'static str,
    collect: impl FnOnce() -> Result<T, String>,
) -> (Option<T>, CollectorRun) {
    let started = Instant::now();
    let result = collect();
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(value) => (
            Some(value),
            CollectorRun {
                name,
                seconds,
                error: None,
            },
        ),
        Err(error) => (
            None,
            CollectorRun {
                name,
                seconds,
                error: Some(error),
            },
        ),
    }
}
