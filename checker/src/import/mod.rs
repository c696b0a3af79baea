//! `ipvs-checker import keepalived|ldirectord FILE`: converts a keepalived
//! or ldirectord config into a checker config, printed on stdout.
//!
//! Each format has its own parser (`keepalived/`: tokenizer, grammar,
//! mapping; `ldirectord/`: line grammar, mapping) that builds the same
//! [`model`], which [`yaml`] writes with a comment above every node that
//! came out different from the source. What differs or was dropped is
//! also said on stderr, one line each, naming FILE:LINE ([`diag`]), and in
//! the exit code:
//!
//! - 0: converted exactly (notes, such as VRRP blocks left to keepalived,
//!   do not count);
//! - 3: converted, but something was dropped or behaves differently;
//! - 1: nothing converted: the file does not parse (FILE:LINE:COLUMN),
//!   cannot be read, or a value is out of range; no config is printed;
//! - 2: bad command line.
//!
//! The printed config is validated by the checker's own loader before it
//! is printed: an import never prints a config the checker would refuse.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::{self, Mode};

pub mod diag;
pub mod keepalived;
pub mod ldirectord;
pub mod model;
pub mod yaml;

/// Exit code: converted, but something was dropped or behaves differently.
pub const EXIT_DIFFERENT: u8 = 3;

/// `ipvs-checker import` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source's format.
    #[arg(value_enum)]
    pub format: Format,
    /// The source config file (keepalived.conf, ldirectord.cf).
    pub file: PathBuf,
    /// managed: the checker makes the table instead of the source daemon;
    /// weights: the source (or ipvsadm) keeps making it, the checker only
    /// sets weights.
    #[arg(long, value_enum, default_value = "managed")]
    pub mode: ImportMode,
    /// `state_file:` of a managed-mode config.
    #[arg(
        long = "state-file",
        value_name = "FILE",
        default_value = "/var/lib/ipvs-checker/state.json"
    )]
    pub state_file: String,
}

/// The formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// keepalived.conf (its `virtual_server` blocks).
    Keepalived,
    /// ldirectord.cf.
    Ldirectord,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportMode {
    /// `mode: managed`.
    Managed,
    /// `mode: weights`.
    Weights,
}

/// What a conversion made: the YAML, what it says on stderr, the exit code.
#[derive(Debug)]
pub struct Converted {
    /// The checker config.
    pub yaml: String,
    /// Warnings and notes, one line each.
    pub warnings: Vec<String>,
    /// 0 or [`EXIT_DIFFERENT`].
    pub code: u8,
}

/// Runs the command: the config on stdout, the warnings on stderr; the
/// exit code as documented above (errors are the caller's to print).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let converted = convert(args.format, &args.file, args.mode, &args.state_file)?;
    for line in &converted.warnings {
        eprintln!("ipvs-checker import: {line}");
    }
    print!("{}", converted.yaml);
    Ok(ExitCode::from(converted.code))
}

/// Converts `file`.
pub fn convert(
    format: Format,
    file: &Path,
    mode: ImportMode,
    state_file: &str,
) -> anyhow::Result<Converted> {
    let mode = match mode {
        ImportMode::Managed => Mode::Managed,
        ImportMode::Weights => Mode::Weights,
    };
    let mut diags = diag::Diagnostics::default();
    let (name, imported) = match format {
        Format::Keepalived => ("keepalived", keepalived::import(file, mode, &mut diags)?),
        Format::Ldirectord => ("ldirectord", ldirectord::import(file, mode, &mut diags)?),
    };
    let warnings = diags.lines();
    let mode_word = if mode == Mode::Managed {
        "managed"
    } else {
        "weights"
    };
    let mut header = vec![format!(
        "Converted from {} by `ipvs-checker import {name} FILE --mode {mode_word}`.",
        file.display()
    )];
    header.push("Check it with `ipvs-checker --config.check --config.file THIS_FILE`.".into());
    if mode == Mode::Weights {
        let how = match format {
            Format::Keepalived => {
                "delete the checker blocks (TCP_CHECK, HTTP_GET, ...) of its real servers"
            }
            Format::Ldirectord => "set checktype=on in its virtual sections",
        };
        header.push(format!(
            "weights mode: {name} keeps making the table; {how}, or both would set weights."
        ));
    }
    if !warnings.is_empty() {
        header.push("What was dropped or differs (also said on stderr):".into());
        header.extend(warnings.iter().map(|w| format!("  {w}")));
    }
    let config = model::Config {
        mode,
        state_file: (mode == Mode::Managed).then(|| state_file.to_owned()),
        maintenance_dir: imported.maintenance_dir,
        header,
        services: imported.services,
    };
    let text = yaml::write(&config);
    // The loader resolves relative paths against this directory; the
    // converted config has none but the state file and maintenance dir.
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    config::parse(&text, Path::new("<converted config>"), &base)
        .context("the converted config does not validate (a bug in the import; please report it with the source file)")?;
    let code = match diags.worst() {
        Some(diag::Severity::Different | diag::Severity::Dropped) => EXIT_DIFFERENT,
        _ => 0,
    };
    Ok(Converted {
        yaml: text,
        warnings,
        code,
    })
}
