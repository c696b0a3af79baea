//! `ipvs-checker`: TCP, HTTP and HTTPS health checks of IPVS real servers
//! that set their weights through netlink. The pieces are in the library
//! (`src/lib.rs`); this is the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use ipvs_checker::config;

/// Command line, with Prometheus-style flag names.
#[derive(Debug, Parser)]
#[command(
    name = "ipvs-checker",
    version,
    about = "Health checks that set IPVS real server weights"
)]
struct Args {
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The one place errors are printed: the whole chain, one line.
            eprintln!("ipvs-checker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config_file).context("invalid configuration")?;
    if args.config_check {
        print!("{}", config::describe(&config));
        return Ok(());
    }
    anyhow::bail!("the daemon is not built yet: only --config.check works in this version")
}
