// The build script of both daemons (their build.rs is `include!` of this
// file, so there is one copy): the git revision and the rustc version of
// the build, for `ipvs_exporter_build_info` and `ipvs_checker_build_info`,
// as the environment variables IPVS_BUILD_REVISION and
// IPVS_BUILD_RUSTC_VERSION of the crate's compilation.
//
// A build outside a git checkout (a source tarball) says `unknown`, or
// what IPVS_BUILD_REVISION says when the packager sets it.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IPVS_BUILD_REVISION");
    let revision = match std::env::var("IPVS_BUILD_REVISION") {
        Ok(revision) if !revision.is_empty() => revision,
        _ => git_revision().unwrap_or_else(|| "unknown".to_string()),
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    // `rustc 1.85.0 (4d91de4e4 2025-02-17)`: the second word.
    let rustc_version = output(Command::new(rustc).arg("--version"))
        .and_then(|line| line.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=IPVS_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=IPVS_BUILD_RUSTC_VERSION={rustc_version}");
}

/// The checkout's commit, 12 hex digits; reruns the script when HEAD moves.
fn git_revision() -> Option<String> {
    let git = |args: &[&str]| output(Command::new("git").args(args));
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    for watched in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", watched]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(revision)
}

/// The first line a command prints, if it succeeds.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().next().map(|line| line.trim().to_string())
}
