//! `ipvs-checker`: not built yet; issue #4 builds it on the `ipvs` crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "ipvs-checker {}: not implemented yet (issue #4); the ipvs crate and its ipvsdump example are what works today",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::FAILURE
}
