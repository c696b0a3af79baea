//! Every fuzz target over its seeds and over every input a fuzzer found
//! (`fuzz/regressions/TARGET/*`, kept when it crashed or hung a target
//! once): the short run that keeps the targets building and the fixed
//! findings fixed, in a plain `cargo test`.

use std::path::{Path, PathBuf};

use ipvs_fuzz_targets::{seeds, TARGETS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_target_takes_its_seeds() {
    for (target, body) in TARGETS {
        let seeds = seeds(target, &root()).expect("seeds readable");
        assert!(!seeds.is_empty(), "{target}: no seeds");
        for (name, bytes) in seeds {
            eprintln!("{target}: {name}");
            body(&bytes);
        }
    }
}

#[test]
fn every_target_takes_what_the_fuzzers_found() {
    for (target, body) in TARGETS {
        let dir = root().join("fuzz/regressions").join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            eprintln!("{target}: {}", path.display());
            body(&std::fs::read(&path).expect("readable"));
        }
    }
}

#[test]
fn every_target_has_a_libfuzzer_entry() {
    for (target, _) in TARGETS {
        let file = root()
            .join("fuzz/libfuzzer/fuzz_targets")
            .join(format!("{target}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("ipvs_fuzz_targets::{target}(")),
            "{} does not call ipvs_fuzz_targets::{target}",
            file.display()
        );
    }
}
