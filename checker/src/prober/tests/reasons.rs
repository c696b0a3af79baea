//! The failure reasons, as [`ProbeError::reason`] names them, against the
//! three places that list them for users: README.md's metrics reference,
//! checker/README.md's and the help of `ipvs_checker_last_failure_info`.
//! The list is read from the code of `reason` itself, so a reason added
//! there and not to a doc fails here.

use std::path::Path;

/// The reasons `ProbeError::reason` returns, in its order: the string
/// literals of its match arms.
fn reasons_in_the_code() -> Vec<String> {
    let source = read("src/prober/mod.rs");
    let body = source
        .split_once("pub fn reason(&self) -> &'static str {")
        .and_then(|(_, rest)| rest.split_once("\n    }\n"))
        .map(|(body, _)| body)
        .expect("ProbeError::reason in src/prober/mod.rs");
    body.lines()
        .filter_map(|line| line.split_once("=> \""))
        .filter_map(|(_, rest)| rest.split_once('"'))
        .map(|(reason, _)| reason.to_owned())
        .collect()
}

/// The backquoted words of the first parenthesis after `after` on the line
/// that starts with `row`.
fn listed(text: &str, row: &str, after: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no line starting with {row}"));
    let list = line
        .split_once(after)
        .and_then(|(_, rest)| rest.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("no list after {after} in {line}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_failure_reason_is_documented_and_nothing_else() {
    let reasons = reasons_in_the_code();
    assert!(reasons.len() >= 17, "{reasons:?}");
    let row = "| `ipvs_checker_last_failure_info`";
    assert_eq!(
        listed(&read("../README.md"), row, "`reason`"),
        reasons,
        "README.md's metrics reference"
    );
    assert_eq!(
        listed(&read("README.md"), row, "`reason`"),
        reasons,
        "checker/README.md's metrics"
    );
    let help = read("src/metrics.rs");
    let help = help
        .split_once("The reason of the real server's last failed probe, as a label: ")
        .and_then(|(_, rest)| rest.split_once(" ("))
        .map(|(list, _)| list)
        .expect("the help of ipvs_checker_last_failure_info");
    let in_help: Vec<&str> = help.split(", ").collect();
    assert_eq!(
        in_help, reasons,
        "the help of ipvs_checker_last_failure_info"
    );
}
