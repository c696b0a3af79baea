//! `ipvs-exporter`: not built yet; issue #3 builds it on the `ipvs` crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "ipvs-exporter {}: not implemented yet (issue #3); the ipvs crate and its ipvsdump example are what works today",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::FAILURE
}
