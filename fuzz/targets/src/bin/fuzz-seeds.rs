//! Writes each fuzz target's seeds into `DIR/TARGET/` (lab/fuzz's
//! starting corpus): `fuzz-seeds REPO_ROOT DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use ipvs_fuzz_targets::{seeds, TARGETS};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [root, dir] = args.as_slice() else {
        eprintln!("usage: fuzz-seeds REPO_ROOT DIR");
        return ExitCode::from(2);
    };
    for (target, _) in TARGETS {
        let out = dir.join(target);
        let written = seeds(target, root).and_then(|seeds| {
            std::fs::create_dir_all(&out)?;
            for (i, (_, bytes)) in seeds.iter().enumerate() {
                std::fs::write(out.join(format!("seed-{i:03}")), bytes)?;
            }
            Ok(seeds.len())
        });
        match written {
            Ok(n) => println!("{target}: {n} seeds in {}", out.display()),
            Err(e) => {
                eprintln!("fuzz-seeds: {target}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
