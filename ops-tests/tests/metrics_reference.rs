//! The README's metrics reference against the daemons' golden expositions
//! (`exporter/src/testdata/golden.prom`, a fixed table with every kind of
//! series, and `checker/src/testdata/metrics.prom`, a fixed state with
//! every family): each family there is documented with its type, and each
//! documented family of that daemon is there. The lab test checks both
//! daemons' live scrapes the same way, both directions.

use ops_tests::{exposition_families, metrics_reference, read};

/// Checks the golden exposition at `path` against the reference, whose
/// families `of_the_daemon` says are that daemon's.
fn golden_is_the_reference(path: &str, of_the_daemon: impl Fn(&str) -> bool) {
    let golden = exposition_families(&read(path));
    assert!(golden.len() > 20, "{golden:?}");
    let documented = metrics_reference();
    for (name, kind) in &golden {
        assert_eq!(
            documented.get(name),
            Some(kind),
            "{name} ({kind}) in {path}: README.md's metrics reference says {:?}",
            documented.get(name)
        );
    }
    for name in documented.keys().filter(|n| of_the_daemon(n)) {
        assert!(
            golden.contains_key(name),
            "README.md documents {name}, which {path} lacks"
        );
    }
}

#[test]
fn every_exporter_family_is_documented_and_every_documented_one_emitted() {
    golden_is_the_reference("exporter/src/testdata/golden.prom", |name| {
        !name.starts_with("ipvs_checker_")
    });
}

#[test]
fn every_checker_family_is_documented_and_every_documented_one_emitted() {
    assert!(
        metrics_reference()
            .keys()
            .any(|n| n.starts_with("ipvs_checker_")),
        "the checker's metrics are not in the reference"
    );
    golden_is_the_reference("checker/src/testdata/metrics.prom", |name| {
        name.starts_with("ipvs_checker_")
    });
}
