//! What the tests of `alerts/`, `dashboards/`, `examples/` and the README's
//! metrics reference share: where the repository is, running a tool,
//! reading the Grafana dashboards (panels, queries, variables) and the
//! metric names a document or an exposition holds.
//!
//! The tests are in `tests/`: `alerts.rs`, `dashboards.rs`, `examples.rs`,
//! `metrics_reference.rs`, `mixin.rs` (the alerts and dashboards are what
//! `mixin/` generates), `packaging.rs` run on any machine (with the
//! Debian packages of `lab/packages.txt` and lab/setup's venv); `lab.rs`
//! runs a real Prometheus over the real daemons in the lab (`lab/test`),
//! `package_lab.rs` installs and removes the Debian packages there.
//!
//! Test code: what cannot be read panics with the path and the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ops-tests is inside the repository")
        .to_path_buf()
}

/// Reads `path` (relative to the repository) as text.
pub fn read(path: &str) -> String {
    let full = repo().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// Runs `command`; returns its stdout and stderr together, or panics with
/// them if it fails or cannot start.
pub fn run(command: &mut Command) -> String {
    let (status, text) = run_status(command);
    assert!(status.success(), "{command:?} failed ({status}):\n{text}");
    text
}

/// Runs `command`; returns its exit status and its stdout and stderr
/// together, or panics if it cannot start.
pub fn run_status(command: &mut Command) -> (std::process::ExitStatus, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e} (lab/setup installs the tools)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, text)
}

/// One Grafana dashboard of `dashboards/`.
#[derive(Debug)]
pub struct Dashboard {
    /// The file name, for messages.
    pub file: String,
    /// The whole JSON model.
    pub json: Value,
}

/// A PromQL query of a dashboard: a panel's target or an annotation.
#[derive(Debug, Clone)]
pub struct Query {
    /// Where it is: dashboard file, panel (or annotation) title, refId.
    pub place: String,
    /// The expression, with the dashboard's variables in it.
    pub expr: String,
}

/// A variable of a dashboard's templating.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Its name (`$name` in queries).
    pub name: String,
    /// `datasource` or `query`.
    pub kind: String,
    /// For a query variable: its query (`label_values(...)`).
    pub query: Option<String>,
    /// The value of "All", when the variable has one.
    pub all_value: Option<String>,
    /// Whether "All" is what the dashboard shows until the user picks.
    pub defaults_to_all: bool,
}

/// Every dashboard of `dashboards/`, by file name.
pub fn dashboards() -> Vec<Dashboard> {
    let dir = repo().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            Dashboard {
                file: path
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                json,
            }
        })
        .collect()
}

impl Dashboard {
    /// The panels (rows' collapsed panels included).
    pub fn panels(&self) -> Vec<&Value> {
        let mut panels = Vec::new();
        for panel in self.json["panels"].as_array().into_iter().flatten() {
            panels.push(panel);
            panels.extend(panel["panels"].as_array().into_iter().flatten());
        }
        panels
    }

    /// The annotations that query Prometheus (not Grafana's built-in one).
    pub fn annotations(&self) -> Vec<&Value> {
        self.json["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["builtIn"].as_i64() != Some(1))
            .collect()
    }

    /// Every PromQL query: panel targets, then annotations.
    pub fn queries(&self) -> Vec<Query> {
        let mut queries = Vec::new();
        for panel in self.panels() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                queries.push(Query {
                    place: format!(
                        "{} panel {:?} query {}",
                        self.file,
                        panel["title"].as_str().unwrap_or("?"),
                        target["refId"].as_str().unwrap_or("?")
                    ),
                    expr: target["expr"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: a target without expr", self.file))
                        .to_owned(),
                });
            }
        }
        for annotation in self.annotations() {
            queries.push(Query {
                place: format!(
                    "{} annotation {:?}",
                    self.file,
                    annotation["name"].as_str().unwrap_or("?")
                ),
                expr: annotation["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: an annotation without expr", self.file))
                    .to_owned(),
            });
        }
        queries
    }

    /// The templating variables, in order (later ones may use earlier ones).
    pub fn variables(&self) -> Vec<Variable> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| Variable {
                name: v["name"].as_str().expect("variable name").to_owned(),
                kind: v["type"].as_str().expect("variable type").to_owned(),
                query: v["query"]["query"]
                    .as_str()
                    .or_else(|| v["query"].as_str())
                    .or_else(|| v["definition"].as_str())
                    .map(str::to_owned),
                all_value: (v["includeAll"].as_bool() == Some(true))
                    .then(|| v["allValue"].as_str().unwrap_or(".*").to_owned()),
                defaults_to_all: v["current"]["value"].as_str() == Some("$__all"),
            })
            .collect()
    }
}

/// `expr` with Grafana's `$name` and `${name}` replaced from `values`;
/// panics if a `$` is left (a variable the dashboard does not define).
pub fn substitute(expr: &str, values: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = values.keys().collect();
    // Longest first, so `$__rate_interval` is not taken for `$__rate`.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_owned();
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &values[name])
            .replace(&format!("${name}"), &values[name]);
    }
    assert!(
        !out.contains('$'),
        "{expr:?} uses a variable that is not defined: {out:?}"
    );
    out
}

/// The metric names of the README's metrics reference, with their type:
/// every table row of the section "## Metrics reference" whose first cell
/// is a metric name in backquotes (as the text format's `# TYPE` line
/// names it), with the type the second cell gives.
pub fn metrics_reference() -> BTreeMap<String, String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Metrics reference"))
        .expect("README.md has a \"## Metrics reference\" section");
    let mut names = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        let Some(name) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        let is_metric = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':');
        if is_metric {
            let previous = names.insert(name.to_owned(), cells[2].to_owned());
            assert!(previous.is_none(), "{name} is documented twice");
        }
    }
    names
}

/// The metric families of a text-format (0.0.4) exposition, by the name
/// its `# TYPE` line gives, with their type.
pub fn exposition_families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// The path of a daemon's binary (`ipvs-exporter`, `ipvs-checker`) in this
/// build's target directory, beside the test binary's `deps/`. `cargo test
/// --workspace` (lab/test) builds them with their packages' tests; panics
/// naming the command that builds one that is missing.
pub fn daemon_binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let dir = test
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/PROFILE/deps");
    let binary = dir.join(name);
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p {name}` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// The examples whose checker runs in managed mode (it makes the table):
/// their `checker.yml` documents that table, `ipvsadm -Sn` lines in a
/// comment, which `tests/examples.rs` checks against the config and
/// `tests/lab.rs` against the kernel.
pub const MANAGED_EXAMPLES: [&str; 5] = [
    "lvs-nat",
    "lvs-dr",
    "lvs-tun",
    "fwmark-persistence",
    "https-private-ca",
];

/// The `ipvsadm -Sn` lines a config documents in its comments: every
/// comment line whose text, indented, starts with `-A ` or `-a `.
pub fn documented_table(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with("   "))
        .map(str::trim)
        .filter(|l| l.starts_with("-A ") || l.starts_with("-a "))
        .map(str::to_owned)
        .collect()
}
