//! `alerts/`: the rule file is valid (`promtool check rules`), its unit
//! tests pass (`promtool test rules`: each alert firing when it should and
//! quiet when it should not), every alert has what an operator needs
//! (severity, summary, description naming the VIP and, for real servers,
//! the RIP, a runbook section that exists), and every alert the issue asks
//! for is there and tested.

use std::process::Command;

use ops_tests::{read, repo, run};
use serde_yaml::Value;

const RULES: &str = "alerts/ipvs.rules.yml";
const TESTS: &str = "alerts/ipvs.rules.test.yml";

fn alerts() -> Vec<Value> {
    let rules: Value = serde_yaml::from_str(&read(RULES)).expect("rules are YAML");
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {value:?}"))
}

#[test]
fn promtool_check_rules_is_clean() {
    let out = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(repo().join(RULES)));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let out = run(Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(repo().join(TESTS)));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_section() {
    let runbook = read("alerts/README.md");
    for alert in alerts() {
        let name = text(&alert, "alert");
        let severity = text(&alert["labels"], "severity");
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: severity {severity}"
        );
        let annotations = &alert["annotations"];
        let summary = text(annotations, "summary");
        let description = text(annotations, "description");
        let expr = text(&alert, "expr");
        if expr.contains("ipvs_checker_backend_up")
            || expr.contains("ipvs_backend_weight")
            || expr.contains("quorum_guard")
        {
            assert!(
                description.contains("VIP") && description.contains("$labels.local_address"),
                "{name}: the description does not name the VIP: {description}"
            );
        }
        let per_real_server = !expr.contains("sum by") && expr.contains("ipvs_checker_");
        if per_real_server && !expr.contains("quorum_guard") && !expr.contains("reload") {
            assert!(
                description.contains("RIP") && description.contains("$labels.remote_address"),
                "{name}: the description does not name the RIP: {description}"
            );
        }
        assert!(!summary.is_empty(), "{name}: empty summary");
        let anchor = format!("alerts/README.md#{}", name.to_lowercase());
        assert_eq!(text(annotations, "runbook"), anchor, "{name}: runbook");
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "{name} has no section in alerts/README.md"
        );
    }
}

#[test]
fn every_alert_of_the_issue_is_there_and_has_a_unit_test_that_fires_it() {
    let names: Vec<String> = alerts()
        .iter()
        .map(|a| text(a, "alert").to_owned())
        .collect();
    // Issue #5's list, in its order.
    for wanted in [
        "IPVSExporterDown",
        "IPVSExporterAbsent",
        "IPVSCheckerDown",
        "IPVSCheckerAbsent",
        "IPVSUnavailable",
        "IPVSRealServerDown",
        "IPVSServiceNoHealthyBackend",
        "IPVSServiceDegraded",
        "IPVSQuorumGuardActive",
        "IPVSRealServerCertificateExpiringSoon",
        "IPVSRealServerCertificateExpired",
        "IPVSCheckerConfigReloadFailed",
        "IPVSProbeLatencyHigh",
        "IPVSOutOfBandWeightChanges",
    ] {
        assert!(names.iter().any(|n| n == wanted), "no alert {wanted}");
    }
    let tests: Value = serde_yaml::from_str(&read(TESTS)).expect("tests are YAML");
    let cases: Vec<&Value> = tests["tests"]
        .as_sequence()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().expect("alert_rule_test"))
        .collect();
    for name in &names {
        let of = |firing: bool| {
            cases.iter().any(|c| {
                c["alertname"].as_str() == Some(name)
                    && c["exp_alerts"]
                        .as_sequence()
                        .expect("exp_alerts")
                        .is_empty()
                        != firing
            })
        };
        assert!(of(true), "no unit test shows {name} firing");
        assert!(of(false), "no unit test shows {name} quiet");
    }
}
