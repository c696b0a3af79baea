//! `ipvs-exporter`: serves the kernel's IPVS as Prometheus metrics.
//!
//! The default port, 10310, is outside 9100-9999: that range of
//! Prometheus' default port allocations list is fully allocated, and
//! 10310 is not on the list (see exporter/README.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use ipvs_exporter::collect::Collector;
use ipvs_exporter::conntable::ConnScans;
use ipvs_exporter::filter::{BackendLabels, ServiceFilter};
use ipvs_exporter::http::Pages;
use ipvs_exporter::snapshot::{Collectors, Options};
use ipvs_web::{LogFormat, LogLevel, Server, WebConfig};

/// Prometheus exporter for the Linux IPVS (LVS) load balancer: every
/// per-service and per-real-server counter, weight, connection state and
/// persistence template. Reading the table needs CAP_NET_ADMIN.
#[derive(Debug, Parser)]
#[command(name = "ipvs-exporter", version)]
struct Args {
    /// Address to listen on: HOST:PORT, [IPv6]:PORT, or :PORT for every
    /// address.
    #[arg(long = "web.listen-address", default_value = ":10310")]
    listen_address: String,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics")]
    telemetry_path: String,

    /// Web configuration file (exporter-toolkit format) enabling TLS and
    /// basic auth.
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// Connections the web endpoint keeps open at once, at most (and at
    /// most half the open files limit); more wait until one closes (as
    /// Prometheus' own flag).
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = ipvs_web::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,

    /// Only log messages at this level or above: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info")]
    log_level: LogLevel,

    /// Log format: logfmt or json.
    #[arg(long = "log.format", default_value = "logfmt")]
    log_format: LogFormat,

    /// Export the IPVS of this network namespace too (/run/netns/NAME,
    /// /proc/PID/ns/net), labelled netns="PATH". Repeatable.
    #[arg(long = "netns", value_name = "PATH")]
    netns: Vec<PathBuf>,

    /// Give up on a collection after this long (e.g. 500ms, 10s, 1m30s).
    #[arg(long = "scrape.timeout", default_value = "10s", value_parser = ipvs_common::parse_positive_duration)]
    scrape_timeout: Duration,

    /// Netlink sockets (and threads) over which the per-service
    /// destination dumps are spread [default: 2, or 1 on a single CPU].
    #[arg(long = "collector.services.sockets")]
    sockets: Option<usize>,

    /// Enable the stats collector (/proc/net/ip_vs_stats: global totals) [default].
    #[arg(long = "collector.stats", overrides_with = "no_stats")]
    _stats: bool,
    /// Disable the stats collector.
    #[arg(long = "no-collector.stats")]
    no_stats: bool,

    /// Enable the services collector (netlink: per-service and per-backend
    /// counters, weights, settings) [default].
    #[arg(long = "collector.services", overrides_with = "no_services")]
    _services: bool,
    /// Disable the services collector.
    #[arg(long = "no-collector.services")]
    no_services: bool,

    /// Enable the connections collector (/proc/net/ip_vs_conn: connection
    /// states and persistence templates; costly on large tables) [default].
    #[arg(long = "collector.connections", overrides_with = "no_connections")]
    _connections: bool,
    /// Disable the connections collector.
    #[arg(long = "no-collector.connections")]
    no_connections: bool,

    /// Enable the director collector (the connection-sync daemons, the
    /// connection timeouts and /proc/sys/net/ipv4/vs) [default].
    #[arg(long = "collector.director", overrides_with = "no_director")]
    _director: bool,
    /// Disable the director collector.
    #[arg(long = "no-collector.director")]
    no_director: bool,

    /// Export the kernel's rate estimates (connections, packets and bytes
    /// per second) of every service and real server: cheap to read, but
    /// twice the table's series.
    #[arg(long = "collector.services.rates")]
    rates: bool,

    /// Export only the services whose name matches this regular expression
    /// (whole name, as ipvsadm writes it: TCP/198.18.0.10:80,
    /// UDP/[2001:db8::10]:53, FWM/1), with their backends and connections.
    #[arg(long = "collector.services.include", value_name = "REGEX")]
    services_include: Option<String>,

    /// Do not export the services whose name matches this regular
    /// expression (applied after --collector.services.include).
    #[arg(long = "collector.services.exclude", value_name = "REGEX")]
    services_exclude: Option<String>,

    /// Backend labels kept: full (remote_address and remote_port),
    /// without-port (real servers of one address summed), per-service (all
    /// real servers of a service summed; no ipvs_backend_info).
    #[arg(long = "collector.backends.labels", default_value = "full")]
    backend_labels: BackendLabels,

    /// Scan the connection table at most once per this interval (e.g. 30s,
    /// 1m; 0: every scrape): scrapes within it reuse the last scan's
    /// counts, whose age is ipvs_conntable_scan_age_seconds.
    #[arg(long = "collector.connections.min-interval", default_value = "0", value_parser = ipvs_common::parse_duration)]
    conn_min_interval: Duration,
}

async fn run(args: Args) -> Result<()> {
    if !args.telemetry_path.starts_with('/') || args.telemetry_path == "/" {
        bail!(
            "--web.telemetry-path {:?}: must start with / and not be / (the landing page)",
            args.telemetry_path
        );
    }
    let web = match &args.web_config_file {
        Some(path) => WebConfig::load(path).context("--web.config.file")?,
        None => WebConfig::plain(),
    };
    let filter = ServiceFilter::new(
        args.services_include.as_deref(),
        args.services_exclude.as_deref(),
    )?;
    let options = Options {
        collectors: Collectors {
            stats: !args.no_stats,
            services: !args.no_services,
            connections: !args.no_connections,
            director: !args.no_director,
            rates: args.rates,
        },
        namespaces: args.netns.clone(),
        // Decoding the answers is most of a large dump's time, and the
        // kernel serves each socket on its own: two halve the scrape's
        // wait on a director with CPUs to spare, for the same CPU time.
        sockets: args
            .sockets
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |cpus| cpus.get().min(2))
            })
            .max(1),
        filter,
        backend_labels: args.backend_labels,
    };
    let collector = Collector::new(
        options,
        args.scrape_timeout,
        ConnScans::new(args.conn_min_interval),
    );
    // A first collection at once: /-/ready answers 200 when it is done.
    tokio::spawn({
        let collector = Arc::clone(&collector);
        async move {
            collector.exposition().await;
        }
    });
    let pages = Pages {
        collector,
        telemetry_path: Arc::from(args.telemetry_path.as_str()),
    };

    let server = Server::bind_listen_address(
        &args.listen_address,
        &web,
        ipvs_web::Limits {
            max_connections: args.max_connections as usize,
            ..ipvs_web::Limits::default()
        },
    )
    .await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        address = %server.local_addr().context("listening address")?,
        tls = web.tls.is_some(),
        basic_auth = !web.basic_auth_users.is_empty(),
        telemetry_path = %args.telemetry_path,
        "listening"
    );
    server
        .run(
            move |request| pages.clone().handle(request),
            ipvs_web::shutdown_signal(),
        )
        .await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    ipvs_exporter::memory::configure();
    let args = Args::parse();
    if let Err(error) = ipvs_web::logging::init(args.log_level, args.log_format) {
        eprintln!("ipvs-exporter: {error}");
    }
    ipvs_common::open_files::raise_open_files_limit_at_start();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The one place errors are printed: the whole chain.
            eprintln!("ipvs-exporter: {error:#}");
            ExitCode::FAILURE
        }
    }
}
