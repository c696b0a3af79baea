//! `mixin/`: `alerts/ipvs.rules.yml` and `dashboards/*.json` are what
//! `mixin/generate` makes from it, byte for byte (so the promtool and
//! dashboard tests of `alerts.rs` and `dashboards.rs` test the mixin's
//! output); and `_config` overrides (other job names, thresholds, runbook
//! base URL, dashboard tags) reach the generated rules and dashboards,
//! which promtool accepts and whose own unit tests
//! (`mixin/tests/overrides.rules.test.yml`) pass on them and fail on the
//! defaults; the rule file's YAML writer writes what YAML reads back as
//! the mixin's values (`mixin/tests/yaml-cases.jsonnet`); the jsonnet is
//! formatted as jsonnetfmt formats it.

use std::path::Path;
use std::process::Command;

use ops_tests::{read, repo, run, run_status};
use serde_yaml::Value;

/// Fails unless jsonnet is installed (lab/packages.txt has it; a test
/// that skipped without it could pass having checked nothing).
fn require_jsonnet() {
    assert!(
        Command::new("jsonnet").arg("--version").output().is_ok(),
        "jsonnet is not installed: run lab/setup --packages (lab/packages.txt)"
    );
}

/// Runs `mixin/generate` with `args` (then OUTDIR) into a new temporary
/// directory.
fn generate(args: &[&str]) -> tempfile::TempDir {
    let out = tempfile::tempdir().expect("temporary directory");
    run(Command::new(repo().join("mixin/generate"))
        .args(args)
        .arg(out.path()));
    out
}

/// The `.json` file names of a directory, sorted.
fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_checked_in_rules_and_dashboards_are_what_the_mixin_generates() {
    require_jsonnet();
    let out = generate(&[]);
    let dashboards = json_files(&out.path().join("dashboards"));
    assert_eq!(
        json_files(&repo().join("dashboards")),
        dashboards,
        "dashboards/ holds other dashboards than the mixin generates: add them to \
         mixin/dashboards/ (or delete them), then run mixin/generate"
    );
    let files = std::iter::once("alerts/ipvs.rules.yml".to_owned())
        .chain(dashboards.iter().map(|name| format!("dashboards/{name}")));
    for file in files {
        let generated = std::fs::read(out.path().join(&file)).expect("generated file");
        let checked_in = std::fs::read(repo().join(&file)).expect("checked-in file");
        assert!(
            generated == checked_in,
            "{file} differs from what mixin/ generates: edit mixin/, not {file}, and run \
             mixin/generate (then commit both)"
        );
    }
}

/// The rules of a generated rule file, by alert name.
fn alerts(rules: &Path) -> std::collections::BTreeMap<String, Value> {
    let text = std::fs::read_to_string(rules).expect("generated rules");
    let rules: Value = serde_yaml::from_str(&text).expect("generated rules are YAML");
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .map(|r| (r["alert"].as_str().expect("alert").to_owned(), r))
        .collect()
}

fn expr<'a>(alerts: &'a std::collections::BTreeMap<String, Value>, name: &str) -> &'a str {
    alerts[name]["expr"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no expr"))
}

#[test]
fn config_overrides_reach_the_rules_and_dashboards_and_promtool_passes_them() {
    require_jsonnet();
    let overrides = repo().join("mixin/tests/overrides.libsonnet");
    let out = generate(&["--mixin", overrides.to_str().expect("a UTF-8 path")]);
    let rules = out.path().join("alerts/ipvs.rules.yml");
    let overridden = alerts(&rules);
    assert_eq!(
        expr(&overridden, "IPVSExporterDown"),
        r#"up{job="lvs-exporter"} == 0"#
    );
    assert_eq!(
        expr(&overridden, "IPVSCheckerAbsent"),
        r#"absent(up{job="lvs-checker"})"#
    );
    assert!(
        expr(&overridden, "IPVSDaemonRestarting").contains(r#"{job=~"lvs-exporter|lvs-checker"}"#),
        "{}",
        expr(&overridden, "IPVSDaemonRestarting")
    );
    assert!(expr(&overridden, "IPVSServiceDegraded").contains(") < 0.75\n"));
    assert!(expr(&overridden, "IPVSProbeLatencyHigh").ends_with(" > 0.25\n"));
    for (name, alert) in &overridden {
        assert!(
            !expr(&overridden, name).contains("ipvs-exporter")
                && !expr(&overridden, name).contains("ipvs-checker"),
            "{name} still matches a default job: {}",
            expr(&overridden, name)
        );
        let link = alert["annotations"]["runbook_url"]
            .as_str()
            .expect("runbook_url");
        assert_eq!(
            link,
            format!(
                "https://git.example.org/lvs/ipvs-suite/-/blob/main/alerts/README.md#{}",
                name.to_lowercase()
            )
        );
    }

    let checked = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules));
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tests = out.path().join("alerts/overrides.rules.test.yml");
    std::fs::copy(repo().join("mixin/tests/overrides.rules.test.yml"), &tests)
        .expect("copy the unit tests beside the rules");
    let tested = run(Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&tests));
    assert!(tested.contains("SUCCESS"), "{tested}");
    // The same tests fail on the default rules: each override decides.
    std::fs::write(&rules, read("alerts/ipvs.rules.yml")).expect("default rules");
    let (status, defaults) = run_status(
        Command::new("promtool")
            .arg("test")
            .arg("rules")
            .arg(&tests),
    );
    assert!(
        !status.success(),
        "the overrides' unit tests pass on the default rules:\n{defaults}"
    );
    for alert in [
        "IPVSExporterDown",
        "IPVSExporterAbsent",
        "IPVSCheckerAbsent",
        "IPVSServiceDegraded",
        "IPVSProbeLatencyHigh",
        "IPVSDaemonRestarting",
    ] {
        assert!(
            defaults.contains(&format!("alertname: {alert}")),
            "{alert} passes its override test with the default rules:\n{defaults}"
        );
    }

    for name in json_files(&out.path().join("dashboards")) {
        let text = std::fs::read_to_string(out.path().join("dashboards").join(&name))
            .expect("generated dashboard");
        let board: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            board["tags"],
            serde_json::json!(["lvs-fleet", "ipvs"]),
            "{name}"
        );
        assert_eq!(
            board["links"][0]["tags"],
            serde_json::json!(["lvs-fleet"]),
            "{name}"
        );
        assert!(
            !text.contains("ipvs-exporter|ipvs-checker"),
            "{name} still selects the default jobs"
        );
    }
    let overview = std::fs::read_to_string(out.path().join("dashboards/ipvs-overview.json"))
        .expect("generated overview");
    assert!(
        overview.contains(r#"job=~\"lvs-exporter|lvs-checker\""#),
        "the overview's daemon panels do not select the overridden jobs"
    );
}

#[test]
fn the_mixin_is_formatted_as_jsonnetfmt_formats_it() {
    require_jsonnet();
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("mixin")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("mixin/ is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "libsonnet" || e == "jsonnet")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let (status, out) = run_status(Command::new("jsonnetfmt").arg("--test").arg(&file));
        assert!(
            status.success(),
            "{} is not as jsonnetfmt formats it: run `jsonnetfmt -i {}`\n{out}",
            file.display(),
            file.display()
        );
    }
}

/// What `jsonnet` evaluates `code` to (with `mixin/` and `mixin/lib/` on
/// the import path), as JSON.
fn evaluate(code: &str) -> serde_json::Value {
    let out = Command::new("jsonnet")
        .arg("-J")
        .arg(repo().join("mixin"))
        .arg("-J")
        .arg(repo().join("mixin/lib"))
        .args(["-e", code])
        .output()
        .expect("jsonnet runs");
    assert!(
        out.status.success(),
        "jsonnet -e {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("jsonnet writes JSON")
}

/// YAML text as the JSON value it stands for.
fn yaml_value(text: &str) -> serde_json::Value {
    let yaml: Value = serde_yaml::from_str(text).expect("YAML");
    serde_json::to_value(yaml).expect("YAML with string keys")
}

#[test]
fn the_yaml_writer_writes_what_yaml_reads_back_unchanged() {
    require_jsonnet();
    let cases = repo().join("mixin/tests/yaml-cases.jsonnet");
    let cases = cases.to_str().expect("a UTF-8 path");
    let written = evaluate(&format!(
        "(import 'yaml.libsonnet').manifest(import '{cases}')"
    ));
    let written = written.as_str().expect("a string");
    assert_eq!(yaml_value(written), evaluate(&format!("import '{cases}'")));
    // And the rule files: the default one, and one with overrides.
    assert_eq!(
        yaml_value(&read("alerts/ipvs.rules.yml")),
        evaluate("(import 'mixin.libsonnet').prometheusAlerts")
    );
    let overrides = repo().join("mixin/tests/overrides.libsonnet");
    let out = generate(&["--mixin", overrides.to_str().expect("a UTF-8 path")]);
    let rules = std::fs::read_to_string(out.path().join("alerts/ipvs.rules.yml")).expect("rules");
    assert_eq!(
        yaml_value(&rules),
        evaluate(&format!(
            "(import '{}').prometheusAlerts",
            overrides.display()
        ))
    );
}
