//! The README's metrics reference against the exporter's golden exposition
//! (`exporter/src/testdata/golden.prom`, a fixed table with every kind of
//! series): each family there is documented with its type, and each
//! documented `ipvs_` family that is not the checker's is there; the same
//! for the checker's (`checker/src/testdata/metrics.prom`). The lab
//! test checks both daemons' live scrapes the same way, both directions.

use ops_tests::{exposition_families, metrics_reference, read};

#[test]
fn every_exporter_family_is_documented_and_every_documented_one_emitted() {
    let golden = exposition_families(&read("exporter/src/testdata/golden.prom"));
    assert!(golden.len() > 20, "{golden:?}");
    let documented = metrics_reference();
    for (name, kind) in &golden {
        assert_eq!(
            documented.get(name),
            Some(kind),
            "{name} ({kind}) in golden.prom: README.md's metrics reference says {:?}",
            documented.get(name)
        );
    }
    for name in documented
        .keys()
        .filter(|n| !n.starts_with("ipvs_checker_"))
    {
        assert!(
            golden.contains_key(name),
            "README.md documents {name}, which golden.prom lacks"
        );
    }
    assert!(
        documented.keys().any(|n| n.starts_with("ipvs_checker_")),
        "the checker's metrics are not in the reference"
    );
}

#[test]
fn every_checker_family_is_documented_and_every_documented_one_emitted() {
    let golden = exposition_families(&read("checker/src/testdata/metrics.prom"));
    let documented = metrics_reference();
    for (name, kind) in &golden {
        assert_eq!(
            documented.get(name),
            Some(kind),
            "{name} ({kind}) in the checker's metrics.prom: README.md's metrics reference says {:?}",
            documented.get(name)
        );
    }
    for name in documented.keys().filter(|n| n.starts_with("ipvs_checker_")) {
        assert!(
            golden.contains_key(name),
            "README.md documents {name}, which the checker's metrics.prom lacks"
        );
    }
}
