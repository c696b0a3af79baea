//! `alerts/`: the rule file is valid (`promtool check rules`), its unit
//! tests pass (`promtool test rules`: each alert firing when it should and
//! quiet when it should not), every alert has what an operator needs
//! (severity, summary, description naming the VIP and, for real servers,
//! the RIP, a runbook link whose anchor is a heading of alerts/README.md,
//! and the documented way of pointing those links at another copy works),
//! and every alert the issue asks for is there and tested.

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
    let anchors = heading_anchors(&read("alerts/README.md"));
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
        // Not when summed by the service or the daemon, or without the
        // real server's labels.
        let summed = expr.contains("sum by")
            || (expr.contains("sum without") && expr.contains("remote_address"));
        let per_real_server = !summed && expr.contains("ipvs_checker_");
        if per_real_server && !expr.contains("quorum_guard") && !expr.contains("reload") {
            assert!(
                description.contains("RIP") && description.contains("$labels.remote_address"),
                "{name}: the description does not name the RIP: {description}"
            );
        }
        assert!(!summary.is_empty(), "{name}: empty summary");
        let link = text(annotations, "runbook_url");
        let anchor = link
            .strip_prefix("alerts/README.md#")
            .unwrap_or_else(|| panic!("{name}: runbook_url {link} is not alerts/README.md#..."));
        assert!(
            anchors.contains(anchor),
            "{name}: runbook_url {link}: alerts/README.md has no heading with that anchor"
        );
        // Its own section, not merely some heading.
        assert_eq!(anchor, heading_anchor(name), "{name}: runbook_url {link}");
    }
}

/// The anchor GitHub, GitLab and Gitea give a Markdown heading: lower
/// case, spaces as `-`, other punctuation than `-` and `_` dropped.
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of every heading of a Markdown file (outside code blocks).
fn heading_anchors(markdown: &str) -> std::collections::BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = std::collections::BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            anchors.insert(heading_anchor(line.trim_start_matches('#')));
        }
    }
    anchors
}

#[test]
fn the_documented_base_url_substitution_points_every_runbook_link_at_the_copy() {
    let readme = read("alerts/README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Runbook links\n"))
        .expect("alerts/README.md has a \"## Runbook links\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block in \"Runbook links\"");
    let base = block
        .lines()
        .find_map(|l| l.strip_prefix("BASE="))
        .expect("the block sets BASE=");
    // Run as documented, from a copy of the repository's alerts/.
    let tmp = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(tmp.path().join("alerts")).expect("alerts/");
    std::fs::copy(repo().join(RULES), tmp.path().join(RULES)).expect("copy rules");
    run(Command::new("sh")
        .args(["-euc", block])
        .current_dir(tmp.path()));
    let out = tmp.path().join("ipvs.rules.yml");
    let checked = run(Command::new("promtool").args(["check", "rules"]).arg(&out));
    assert!(checked.contains("SUCCESS"), "{checked}");
    let rules: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&out).expect("rules")).expect("YAML");
    let mut count = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for alert in group["rules"].as_sequence().expect("rules") {
            let Some(name) = alert["alert"].as_str() else {
                continue;
            };
            count += 1;
            assert_eq!(
                text(&alert["annotations"], "runbook_url"),
                format!("{base}alerts/README.md#{}", heading_anchor(name)),
                "{name}"
            );
        }
    }
    assert_eq!(count, alerts().len());
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
