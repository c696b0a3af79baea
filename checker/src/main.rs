//! `ipvs-checker`: TCP, HTTP and HTTPS health checks of IPVS real servers
//! that set their weights through netlink. The pieces are in the library
//! (`src/lib.rs`); this is the command line.
//!
//! Its metrics and status are served on port 10311 by default, next to
//! the exporter's 10310 (see exporter/README.md for why that range).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use ipvs_checker::{admin, config, daemon, import, state, status, systemd, web};
use ipvs_web::{LogFormat, LogLevel, Server, WebConfig};

/// Command line, with Prometheus-style flag names.
#[derive(Debug, Parser)]
#[command(
    name = "ipvs-checker",
    version,
    about = "Health checks that set IPVS real server weights"
)]
struct Args {
    /// Without a command: run the daemon.
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file (YAML).
    #[arg(
        long = "config.file",
        value_name = "FILE",
        default_value = "/etc/ipvs-checker.yml"
    )]
    config_file: PathBuf,
    /// Validate the configuration, print what would be checked, and exit.
    #[arg(long = "config.check")]
    config_check: bool,
    /// Probe and log what would change, but touch no weight.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Probes in flight at once, at most; fewer while probes start late
    /// (the checker short of CPU), down to 8.
    #[arg(
        long = "checker.max-concurrency",
        value_name = "N",
        default_value_t = 256
    )]
    max_concurrency: usize,
    /// HTTPS probes making a full TLS handshake at once, at most; the
    /// others wait for their turn (resumed handshakes are not limited).
    #[arg(
        long = "checker.max-full-handshakes",
        value_name = "N",
        default_value_t = 16
    )]
    max_full_handshakes: usize,
    /// `exec` checks' programs running at once, at most (fewer, down to
    /// one per core, while they wait for a CPU); the others wait for their
    /// turn before their timeout starts.
    #[arg(long = "checker.max-programs", value_name = "N", default_value_t = 32)]
    max_programs: usize,
    /// Threads that run the probes; 0: one per core the process may use
    /// but one (the director's kernel forwards packets there), at least
    /// one. Each has its share of --checker.max-concurrency and its own
    /// measure of lateness; the loop that sets weights and the web
    /// endpoint have threads of their own.
    #[arg(long = "checker.probe-threads", value_name = "N", default_value_t = 0)]
    probe_threads: usize,
    /// Address for /metrics and /status: HOST:PORT, [IPv6]:PORT, or :PORT
    /// for every address. 10311 is next to ipvs-exporter's 10310.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDRESS",
        default_value = ":10311"
    )]
    listen_address: String,
    /// Web configuration file (exporter-toolkit format, as ipvs-exporter's)
    /// enabling TLS and basic auth.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// Connections the web endpoint keeps open at once, at most (and at
    /// most half the open files limit); more wait until one closes (as
    /// Prometheus' own flag).
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = ipvs_web::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Serve the admin API (/api/v1/drain, /api/v1/undrain), which
    /// `ipvs-checker drain` and `undrain` use; off by default, as
    /// Prometheus' own. Protect it with --web.config.file's basic auth.
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    log_level: LogLevel,
    /// Log format: logfmt or json.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt")]
    log_format: LogFormat,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the running daemon's view of every real server (from its
    /// /status page), as a table like `ipvsadm -Ln`.
    Status(status::Args),
    /// Convert a keepalived.conf or an ldirectord.cf into a checker config
    /// (on stdout; warnings on stderr). Exit 0: exact; 3: something was
    /// dropped or behaves differently; 1: the file does not convert.
    Import(import::Args),
    /// Drain a real server of the running daemon (weight 0, still
    /// probed) through its admin API (--web.enable-admin-api).
    Drain(admin::client::DrainArgs),
    /// Undrain a real server drained by `drain` or by an out-of-band
    /// weight 0.
    Undrain(admin::client::UndrainArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::Import(import)) => import::run(import),
        Some(Command::Drain(drain)) => admin::client::drain(drain).map(|()| ExitCode::SUCCESS),
        Some(Command::Undrain(undrain)) => {
            admin::client::undrain(undrain).map(|()| ExitCode::SUCCESS)
        }
        _ => run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // The one place errors are printed: the whole chain, one line.
            eprintln!("ipvs-checker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Command::Status(status)) = args.command {
        return status::run(&status);
    }
    let config = config::load(&args.config_file).context("invalid configuration")?;
    if args.config_check {
        print!("{}", config::describe(&config));
        return Ok(());
    }
    ipvs_web::logging::init(args.log_level, args.log_format).map_err(anyhow::Error::msg)?;
    ipvs_common::open_files::raise_open_files_limit_at_start();
    let web = match &args.web_config_file {
        Some(path) => WebConfig::load(path).context("--web.config.file")?,
        None => WebConfig::plain(),
    };
    let addresses = ipvs_web::listen_addresses(&args.listen_address)?;
    let table = ipvs::Ipvs::connect().context("cannot open IPVS")?;
    let runtime = daemon::runtime().context("cannot start the async runtime")?;
    let options = daemon::Options {
        config_file: args.config_file,
        dry_run: args.dry_run,
        max_concurrency: args.max_concurrency,
        max_full_handshakes: args.max_full_handshakes,
        max_programs: args.max_programs,
        probe_threads: args.probe_threads,
        quiescent_sysctl: ipvs_checker::reconcile::quiescent::SYSCTL_PATH.into(),
        notify_socket: systemd::socket_from_env(),
        watchdog: systemd::watchdog_from_env(),
    };
    let enable_admin_api = args.enable_admin_api;
    runtime.block_on(async move {
        let server = Server::bind_first(
            &addresses,
            &web,
            ipvs_web::Limits {
                max_connections: args.max_connections as usize,
                ..ipvs_web::Limits::default()
            },
        )
        .await?;
        tracing::info!(
            address = %server.local_addr().context("listening address")?,
            tls = web.tls.is_some(),
            basic_auth = !web.basic_auth_users.is_empty(),
            admin_api = enable_admin_api,
            "listening"
        );
        let state = state::Shared::new(&config);
        // The loop on a thread of its own: its netlink calls and state
        // file writes never hold up /metrics (nor the probes, which have
        // threads of their own). It stops on SIGTERM or SIGINT.
        let daemon = daemon::spawn(
            options,
            config,
            table,
            state.clone(),
            std::future::pending(),
        )
        .context("cannot start the daemon's thread")?;
        let mut pages = web::Pages::new(state);
        if enable_admin_api {
            pages = pages.with_admin(daemon.admin());
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(
            move |request| pages.clone().handle(request),
            async move {
                let _ = stopped.await;
            },
        ));
        let result = daemon.wait().await;
        // The daemon stopped (signal or error): so does the endpoint.
        let _ = stop.send(());
        let _ = serving.await;
        result
    })
}
