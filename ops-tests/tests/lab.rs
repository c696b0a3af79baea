//! The alerts, the dashboards and the metrics reference against a real
//! Prometheus scraping the real daemons, in the lab (`lab/test`, or
//! `lab/run -- target/debug/deps/lab-HASH --ignored`).
//!
//! The lab's network (`lab/topology.sh`, addresses in 198.18.0.0/15 only)
//! carries the seed notes' LVS-NAT cluster made with ipvsadm: VIP
//! 198.18.0.10 port 80 over rs1 and rs2 (HTTP, wrr 3:1), and port 443 with
//! persistence over the same two, whose HTTPS (openssl s_server) presents
//! certificates of a private CA made by `examples/https-private-ca/make-ca.sh`.
//! In the director's namespace run ipvs-exporter, ipvs-checker (weights
//! mode) and Debian's Prometheus (2 s scrape, 1 s evaluation intervals) with
//! `alerts/ipvs.rules.yml` loaded; the test talks to Prometheus' HTTP API
//! with curl in that namespace.
//!
//! The rules are loaded as they are, except that every `for:` longer than
//! 0 is cut to 5 s so the test does not wait minutes; expressions, labels
//! and annotations are those of the file. The two failures (a sync daemon
//! stopped, a real server killed) are made at the same moment and waited
//! for together.
//!
//! A second test runs the checker of every managed-mode example (its
//! addresses moved into the lab's) on an empty table, and compares the
//! table it makes with the `ipvsadm -Sn` lines its comment documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lab_harness::{client, director, lock, run_in, topology_script};
use ops_tests::{
    daemon_binary, dashboards, documented_table, exposition_families, metrics_reference, read,
    repo, substitute, MANAGED_EXAMPLES,
};
use serde_json::Value;

const VIP: &str = "198.18.0.10";
const EXPORTER: &str = "127.0.0.1:10310";
const CHECKER: &str = "127.0.0.1:10311";
/// The exporter of the second director (namespace `lab-backup`, the
/// backup sync daemon's), reached over the sync link from the director.
const BACKUP_EXPORTER: &str = "198.18.9.2:10310";
const PROMETHEUS: &str = "127.0.0.1:9090";
/// How long `for:` lasts in the rules the test loads.
const FOR: Duration = Duration::from_secs(5);

/// Where configs, logs and Prometheus' answers go: `$LAB_OUT` survives the VM.
fn out_dir() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("LAB_OUT").unwrap_or_else(|_| "/tmp".into())).join("ops-e2e");
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

/// A process started in a lab namespace, killed (and its log shown if the
/// test failed) when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &str, name: &str, program: &Path, args: &[&str]) -> Daemon {
        let log = out_dir().join(format!("{name}.log"));
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Daemon { child, log }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// GET `url` (`http://HOST:PORT/PATH`) from the director's namespace,
/// the `params` URL-encoded; the body, whatever the status (the API's
/// errors are JSON). Over a socket opened in that namespace, not a curl
/// run there: the test makes a few hundred requests.
fn get(url: &str, params: &[(&str, &str)]) -> String {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut target = format!("/{path}");
    if !params.is_empty() {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&query);
    }
    let connect = host.to_owned();
    let stream = ipvs::netns::in_netns(Path::new(lab_harness::DIRECTOR), move || {
        std::net::TcpStream::connect(connect)
    })
    .expect("enter lab-director")
    .unwrap_or_else(|e| panic!("GET {url}: connect: {e}"));
    let (_status, body) = lab_harness::http::get(stream, &target)
        .unwrap_or_else(|e| panic!("GET {url} {params:?}: {e}"));
    body
}

/// A Prometheus API call: its `data`, or a panic with Prometheus' error.
fn api(path: &str, params: &[(&str, &str)]) -> Value {
    let body = get(&format!("http://{PROMETHEUS}/api/v1/{path}"), params);
    let answer: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{path} {params:?}: not JSON ({e}): {body}"));
    assert_eq!(answer["status"], "success", "{path} {params:?}: {answer}");
    answer["data"].clone()
}

/// Polls `check` until it gives a value; panics naming `what` if it has
/// not after `limit` (a guard against hanging, not a timing requirement).
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "gave up waiting for {what} after {limit:?}"
        );
        sleep(Duration::from_millis(200));
    }
}

/// The state (`pending` or `firing`) of the alert `name` whose labels
/// include `labels`, if active.
fn alert_state(name: &str, labels: &[(&str, &str)]) -> Option<String> {
    let alerts = api("alerts", &[]);
    alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == name
                && labels
                    .iter()
                    .all(|(k, v)| a["labels"][*k].as_str() == Some(*v))
        })
        .map(|a| {
            if a["state"] == "firing" {
                let description = a["annotations"]["description"].as_str().unwrap_or("");
                eprintln!("{name} firing: {description}");
            }
            a["state"].as_str().expect("state").to_owned()
        })
}

/// The value of an instant query with exactly one series.
fn scalar(query: &str) -> Option<f64> {
    let data = api("query", &[("query", query)]);
    let result = data["result"].as_array().expect("result");
    (result.len() == 1)
        .then(|| result[0]["value"][1].as_str().and_then(|v| v.parse().ok()))
        .flatten()
}

/// `alerts/ipvs.rules.yml` with every non-zero `for:` cut to [`FOR`].
fn rules_for_the_lab() -> String {
    read("alerts/ipvs.rules.yml")
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(d) if d != "0m" => format!(
                "{}for: {}s",
                &line[..line.len() - line.trim_start().len()],
                FOR.as_secs()
            ),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lab, the daemons and Prometheus, kept for the test's life.
struct Lab {
    _daemons: Vec<Daemon>,
    started: f64,
}

fn setup() -> Lab {
    let out = out_dir();
    let t = topology_script();
    run_in(None, &format!("{t} up 2 && {t} serve && {t} vip {VIP}"));

    // The private CA and the real servers' certificate (names and IPs the
    // checker verifies).
    let pki = out.join("pki");
    let _ = std::fs::remove_dir_all(&pki);
    let make_ca = repo().join("examples/https-private-ca/make-ca.sh");
    run_in(
        None,
        &format!(
            "sh {} {} www.lab.test IP:198.18.1.11 IP:198.18.1.12",
            make_ca.display(),
            pki.display()
        ),
    );
    let cert = pki.join("www.lab.test.pem");
    let key = pki.join("www.lab.test-key.pem");
    let openssl = PathBuf::from("/usr/bin/openssl");
    let mut daemons = Vec::new();
    for rs in ["rs1", "rs2"] {
        daemons.push(Daemon::start(
            &format!("lab-{rs}"),
            &format!("https-{rs}"),
            &openssl,
            &[
                "s_server",
                "-accept",
                "443",
                "-cert",
                cert.to_str().expect("path"),
                "-key",
                key.to_str().expect("path"),
                "-www",
                "-quiet",
            ],
        ));
    }

    director(&format!(
        "ipvsadm -C && \
         ipvsadm -A -t {VIP}:80 -s wrr && \
         ipvsadm -a -t {VIP}:80 -r 198.18.1.11:80 -m -w 3 && \
         ipvsadm -a -t {VIP}:80 -r 198.18.1.12:80 -m -w 1 && \
         ipvsadm -A -t {VIP}:443 -s wlc -p 300 && \
         ipvsadm -a -t {VIP}:443 -r 198.18.1.11:443 -m -w 1 && \
         ipvsadm -a -t {VIP}:443 -r 198.18.1.12:443 -m -w 1"
    ));

    let checker_config = out.join("checker.yml");
    std::fs::write(
        &checker_config,
        format!(
            "mode: weights\n\
             defaults: {{interval: 2s, timeout: 1500ms, rise: 1, fall: 2}}\n\
             services:\n\
             \x20 - address: {VIP}:80\n\
             \x20   check: {{type: http, path: /, body: \"^rs\"}}\n\
             \x20   quorum: {{min_up: 1}}\n\
             \x20   real_servers:\n\
             \x20     - {{address: 198.18.1.11:80, weight: 3}}\n\
             \x20     - {{address: 198.18.1.12:80, weight: 1}}\n\
             \x20 - address: {VIP}:443\n\
             \x20   check: {{type: https, path: /, ca_file: {}, server_name: www.lab.test}}\n\
             \x20   real_servers:\n\
             \x20     - {{address: 198.18.1.11:443, weight: 1}}\n\
             \x20     - {{address: 198.18.1.12:443, weight: 1}}\n",
            pki.join("ca.pem").display()
        ),
    )
    .expect("write checker config");
    // A second director, lab-backup, joined to the first by a sync link:
    // the director runs the master sync daemon, lab-backup the backup, as
    // an HA pair does; each has its exporter, both in the job
    // ipvs-exporter, so the sync alerts compare them.
    run_in(
        None,
        "ip netns add lab-backup && \
         ip link add sync-a type veth peer name sync-b && \
         ip link set sync-a netns lab-director && ip link set sync-b netns lab-backup && \
         ip -n lab-director addr add 198.18.9.1/30 dev sync-a && ip -n lab-director link set sync-a up && \
         ip -n lab-backup addr add 198.18.9.2/30 dev sync-b && ip -n lab-backup link set sync-b up && \
         ip -n lab-backup link set lo up",
    );
    director("ipvsadm --start-daemon master --mcast-interface sync-a --syncid 3");
    run_in(
        Some("lab-backup"),
        "ipvsadm --start-daemon backup --mcast-interface sync-b --syncid 3",
    );
    daemons.push(Daemon::start(
        "lab-director",
        "ipvs-exporter",
        &daemon_binary("ipvs-exporter"),
        &[
            "--web.listen-address",
            EXPORTER,
            "--collector.services.rates",
        ],
    ));
    daemons.push(Daemon::start(
        "lab-backup",
        "ipvs-exporter-backup",
        &daemon_binary("ipvs-exporter"),
        &["--web.listen-address", BACKUP_EXPORTER],
    ));
    daemons.push(Daemon::start(
        "lab-director",
        "ipvs-checker",
        &daemon_binary("ipvs-checker"),
        &[
            "--config.file",
            checker_config.to_str().expect("path"),
            "--web.listen-address",
            CHECKER,
        ],
    ));

    let rules = out.join("ipvs.rules.yml");
    std::fs::write(&rules, rules_for_the_lab()).expect("write rules");
    let prometheus_config = out.join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global: {{scrape_interval: 2s, evaluation_interval: 1s, scrape_timeout: 1500ms}}\n\
             rule_files: [{}]\n\
             scrape_configs:\n\
             \x20 - job_name: ipvs-exporter\n\
             \x20   static_configs: [{{targets: [\"{EXPORTER}\", \"{BACKUP_EXPORTER}\"]}}]\n\
             \x20 - job_name: ipvs-checker\n\
             \x20   static_configs: [{{targets: [\"{CHECKER}\"]}}]\n",
            rules.display()
        ),
    )
    .expect("write prometheus config");
    // Storage on the VM's /tmp (tmpfs): only the answers are kept.
    let storage = std::env::temp_dir().join("ops-e2e-prometheus");
    let _ = std::fs::remove_dir_all(&storage);
    let started = now();
    daemons.push(Daemon::start(
        "lab-director",
        "prometheus",
        Path::new("/usr/bin/prometheus"),
        &[
            &format!("--config.file={}", prometheus_config.display()),
            &format!("--storage.tsdb.path={}", storage.display()),
            &format!("--web.listen-address={PROMETHEUS}"),
            "--log.level=warn",
        ],
    ));
    wait_for("Prometheus ready", Duration::from_secs(180), || {
        let output = Command::new("ip")
            .args(["netns", "exec", "lab-director", "curl", "-sf"])
            .arg(format!("http://{PROMETHEUS}/-/ready"))
            .output()
            .expect("curl");
        output.status.success().then_some(())
    });
    Lab {
        _daemons: daemons,
        started,
    }
}

/// Waits until the alert `name` whose labels include `labels` fires, and
/// checks that Prometheus had it pending first (from its `ALERTS` series:
/// a poll can miss the pending window).
fn wait_until_firing(name: &str, labels: &[(&str, &str)]) {
    wait_for(&format!("{name} firing"), Duration::from_secs(120), || {
        (alert_state(name, labels).as_deref() == Some("firing")).then_some(())
    });
    let selector: String = labels
        .iter()
        .map(|(k, v)| format!(",{k}=\"{v}\""))
        .collect();
    let pending = format!(
        "count_over_time(ALERTS{{alertname=\"{name}\",alertstate=\"pending\"{selector}}}[5m])"
    );
    assert!(
        scalar(&pending).is_some_and(|n| n > 0.0),
        "{name} fired without being pending first"
    );
}

/// Waits until no alert `name` whose labels include `labels` is active.
fn wait_until_resolved(name: &str, labels: &[(&str, &str)]) {
    wait_for(
        &format!("{name} resolved"),
        Duration::from_secs(120),
        || alert_state(name, labels).is_none().then_some(()),
    );
}

/// Real traffic through both services from the client: the counters move,
/// connections and persistence templates fill the connection table.
fn traffic() {
    client(&format!(
        "for i in 1 2 3 4 5 6 7 8; do curl -sS --max-time 5 -o /dev/null http://{VIP}/; done; \
         for i in 1 2 3; do curl -sS --max-time 5 -o /dev/null --cacert {} \
         --resolve www.lab.test:443:{VIP} https://www.lab.test/; done",
        out_dir().join("pki/ca.pem").display()
    ));
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn prometheus_alerts_on_a_killed_real_server_and_every_dashboard_query_returns_data() {
    let _lock = lock();
    let lab = setup();
    traffic();

    // The three targets scraped, and every real server healthy in
    // Prometheus.
    wait_for("the three targets up", Duration::from_secs(120), || {
        let up = api("query", &[("query", "sum(up)")]);
        (up["result"][0]["value"][1] == "3").then_some(())
    });
    // Both daemons ready: the exporter has read IPVS, the checker has
    // reconciled every service.
    for daemon in [EXPORTER, CHECKER, BACKUP_EXPORTER] {
        assert_eq!(
            get(&format!("http://{daemon}/-/healthy"), &[]),
            "Healthy.\n"
        );
        assert_eq!(get(&format!("http://{daemon}/-/ready"), &[]), "Ready.\n");
    }
    wait_for(
        "both sync daemons running and all four real servers healthy",
        Duration::from_secs(120),
        || {
            (scalar("count(ipvs_sync_daemon_running == 1)") == Some(2.0)
                && scalar("sum(ipvs_checker_backend_up)") == Some(4.0))
            .then_some(())
        },
    );
    // Longer than the rules' `for:`, so a wrong alert would be firing.
    sleep(FOR + Duration::from_secs(2));
    for name in [
        "IPVSSyncDaemonStopped",
        "IPVSSyncDaemonUnpaired",
        "IPVSRealServerDown",
    ] {
        assert_eq!(alert_state(name, &[]), None, "{name} while all is well");
    }

    // At the same moment the backup's sync daemon stops and rs1's HTTP
    // server dies: each alert goes pending, then fires, for its own
    // target only; rs1's weight is 0.
    run_in(Some("lab-backup"), "ipvsadm --stop-daemon backup");
    run_in(None, "kill $(cat /run/lab-topology/rs1/server.pid)");
    let backup = [("instance", BACKUP_EXPORTER)];
    let rs1 = [
        ("local_address", VIP),
        ("local_port", "80"),
        ("remote_address", "198.18.1.11"),
        ("remote_port", "80"),
    ];
    wait_until_firing("IPVSSyncDaemonStopped", &backup);
    wait_until_firing("IPVSRealServerDown", &rs1);
    assert_eq!(
        alert_state("IPVSSyncDaemonStopped", &[("instance", EXPORTER)]),
        None,
        "the director whose master runs"
    );
    let weight = format!(
        "ipvs_backend_weight{{local_address=\"{VIP}\",local_port=\"80\",remote_address=\"198.18.1.11\"}}"
    );
    wait_for(
        "rs1's weight 0 in Prometheus",
        Duration::from_secs(60),
        || (scalar(&weight) == Some(0.0)).then_some(()),
    );
    // Only rs1 is down: rs2 never alerts.
    assert_eq!(
        alert_state("IPVSRealServerDown", &[("remote_address", "198.18.1.12")]),
        None
    );
    traffic();

    // Both come back: the alerts resolve and the weight returns.
    run_in(
        Some("lab-backup"),
        "ipvsadm --start-daemon backup --mcast-interface sync-b --syncid 3",
    );
    run_in(None, &format!("{} serve", topology_script()));
    wait_until_resolved("IPVSSyncDaemonStopped", &[]);
    wait_until_resolved("IPVSRealServerDown", &rs1);
    wait_for(
        "rs1's weight 3 in Prometheus",
        Duration::from_secs(60),
        || (scalar(&weight) == Some(3.0)).then_some(()),
    );
    // Fresh connections and templates (TIME_WAIT lasts 2 min), so every
    // family is in the scrapes, and in a few of Prometheus' scrapes.
    traffic();
    the_metrics_reference_is_what_the_daemons_emit();
    sleep(Duration::from_secs(3));
    every_dashboard_query_returns_data(lab.started);
}

/// Each dashboard's variables resolved as Grafana would (the first value of
/// the variable's query, or All where that is the default), then every
/// panel and annotation query run over the test's time range.
fn every_dashboard_query_returns_data(started: f64) {
    let end = now();
    let start = started.floor();
    let (start_text, end_text) = (format!("{start}"), format!("{}", end.ceil()));
    let mut failures = Vec::new();
    let mut answers = String::new();
    let mut count = 0;
    for board in dashboards() {
        let mut values: BTreeMap<String, String> = [
            ("__rate_interval", "10s".to_owned()),
            ("__interval", "5s".to_owned()),
            ("__range", format!("{}s", (end - start).ceil())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for variable in board.variables() {
            if variable.kind != "query" {
                continue;
            }
            let value = match (&variable.all_value, variable.defaults_to_all) {
                (Some(all), true) => all.clone(),
                _ => {
                    let query = substitute(variable.query.as_deref().expect("query"), &values);
                    let inner = query
                        .strip_prefix("label_values(")
                        .and_then(|q| q.strip_suffix(')'))
                        .unwrap_or_else(|| panic!("{}: {query} is not label_values()", board.file));
                    let (selector, label) =
                        inner.rsplit_once(',').expect("label_values(metric, label)");
                    let data = api(
                        &format!("label/{}/values", label.trim()),
                        &[
                            ("match[]", selector.trim()),
                            ("start", &start_text),
                            ("end", &end_text),
                        ],
                    );
                    let first = data
                        .as_array()
                        .and_then(|v| v.first())
                        .and_then(Value::as_str);
                    match first {
                        Some(v) => v.to_owned(),
                        None => {
                            failures.push(format!(
                                "{} variable {}: {query} has no values",
                                board.file, variable.name
                            ));
                            continue;
                        }
                    }
                }
            };
            values.insert(variable.name.clone(), value);
        }
        answers.push_str(&format!("== {} {values:?}\n", board.file));
        for query in board.queries() {
            count += 1;
            let expr = substitute(&query.expr, &values);
            let body = get(
                &format!("http://{PROMETHEUS}/api/v1/query_range"),
                &[
                    ("query", &expr),
                    ("start", &start_text),
                    ("end", &end_text),
                    ("step", "5"),
                ],
            );
            let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let points: usize = answer["data"]["result"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|s| s["values"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            answers.push_str(&format!("{}\n  {expr}\n  {points} points\n", query.place));
            if answer["status"] != "success" {
                failures.push(format!("{}: {expr}: {body}", query.place));
            } else if points == 0 {
                failures.push(format!("{}: {expr}: no data", query.place));
            }
        }
    }
    std::fs::write(out_dir().join("dashboard-queries.txt"), &answers).expect("write answers");
    assert!(
        failures.is_empty(),
        "{} of {count} dashboard queries failed or returned nothing:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("all {count} dashboard queries returned data");
}

/// Every metric family the two daemons emit is in the README's metrics
/// reference with its type, and every documented one is emitted.
fn the_metrics_reference_is_what_the_daemons_emit() {
    let mut emitted = BTreeMap::new();
    for (name, address) in [("exporter", EXPORTER), ("checker", CHECKER)] {
        let text = get(&format!("http://{address}/metrics"), &[]);
        std::fs::write(out_dir().join(format!("{name}.prom")), &text).expect("write scrape");
        emitted.extend(exposition_families(&text));
    }
    let documented = metrics_reference();
    let undocumented: Vec<String> = emitted
        .iter()
        .filter(|(name, _)| !documented.contains_key(*name))
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    let not_emitted: Vec<&String> = documented
        .keys()
        .filter(|n| !emitted.contains_key(*n))
        .collect();
    let wrong_type: Vec<String> = emitted
        .iter()
        .filter_map(|(name, kind)| {
            documented
                .get(name)
                .filter(|doc| *doc != kind)
                .map(|doc| format!("{name}: emitted {kind}, documented {doc}"))
        })
        .collect();
    assert!(
        undocumented.is_empty() && not_emitted.is_empty() && wrong_type.is_empty(),
        "README.md's metrics reference and the daemons disagree:\n\
         emitted, not documented: {undocumented:?}\n\
         documented, not emitted: {not_emitted:?}\n\
         types: {wrong_type:?}"
    );
    eprintln!(
        "the README documents all {} metric families emitted",
        emitted.len()
    );
}

/// The addresses of the examples and the lab addresses that stand in for
/// them, so that every probe stays inside the lab's 198.18.0.0/15. The
/// examples' VIPs stay apart (all their services are in one table), and
/// the LVS-TUN director's own address (the probes' source) is the lab
/// director's.
const LAB_ADDRESSES: [(&str, &str); 12] = [
    ("192.168.0.150", "198.18.0.150"),
    ("192.168.10.2", "198.18.1.11"),
    ("192.168.10.3", "198.18.1.12"),
    ("203.0.113.10", "198.18.0.110"),
    ("203.0.113.20", "198.18.0.120"),
    ("203.0.113.30", "198.18.0.130"),
    ("203.0.113.40", "198.18.0.140"),
    ("203.0.113.2", "198.18.0.1"),
    ("10.0.0.11", "198.18.1.11"),
    ("10.0.0.12", "198.18.1.12"),
    ("198.51.100.11", "198.18.1.11"),
    ("198.51.100.12", "198.18.1.12"),
];

/// `text` with the examples' addresses replaced by the lab's; panics if
/// an address outside the lab is left.
fn in_the_lab(text: &str) -> String {
    let mut pairs = LAB_ADDRESSES;
    // Longest first: 203.0.113.2 is a prefix of 203.0.113.20.
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let mut out = text.to_owned();
    for (from, to) in pairs {
        out = out.replace(from, to);
    }
    for outside in ["192.168.", "203.0.113.", "10.0.0.", "198.51.100."] {
        assert!(
            !out.contains(outside),
            "an address in {outside} is not moved into the lab:\n{out}"
        );
    }
    out
}

/// An `ipvsadm -Sn` line without its `-w N`: weights follow health, and
/// the test's real servers do not all serve what the examples check.
fn without_weight(line: &str) -> String {
    let mut words = Vec::new();
    let mut iter = line.split_whitespace();
    while let Some(word) = iter.next() {
        if word == "-w" {
            iter.next();
        } else {
            words.push(word);
        }
    }
    words.join(" ")
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run it in the lab (lab/test)"]
fn every_managed_example_makes_the_table_it_documents() {
    let _lock = lock();
    let t = topology_script();
    // A fresh director: its IPVS table is empty.
    run_in(None, &format!("{t} up 2 && {t} serve"));
    assert_eq!(director("ipvsadm -Sn"), "");
    let out = out_dir().join("managed-examples");
    let _ = std::fs::remove_dir_all(&out);
    let mut want = Vec::new();
    let mut daemons = Vec::new();
    for (i, dir) in MANAGED_EXAMPLES.iter().enumerate() {
        let here = out.join(dir);
        std::fs::create_dir_all(&here).expect("example directory");
        // The CA their HTTPS checks load (a ca_file must exist).
        let pki = match *dir {
            "fwmark-persistence" => Some(here.clone()),
            "https-private-ca" => Some(here.join("pki")),
            _ => None,
        };
        let make_ca = repo().join("examples/https-private-ca/make-ca.sh");
        if let Some(pki) = pki {
            run_in(
                None,
                &format!(
                    "sh {} {} www.example.test >/dev/null",
                    make_ca.display(),
                    pki.display()
                ),
            );
        }
        let text = read(&format!("examples/{dir}/checker.yml"));
        let documented = documented_table(&text);
        assert!(
            !documented.is_empty(),
            "examples/{dir}: no table documented"
        );
        want.extend(documented.iter().map(|l| without_weight(&in_the_lab(l))));
        let config = here.join("checker.yml");
        std::fs::write(
            &config,
            in_the_lab(&text).replace(
                "/var/lib/ipvs-checker/owned.json",
                &here.join("owned.json").display().to_string(),
            ),
        )
        .expect("write config");
        let listen = format!("127.0.0.1:{}", 10320 + i);
        daemons.push(Daemon::start(
            "lab-director",
            &format!("managed-examples/{dir}/ipvs-checker"),
            &daemon_binary("ipvs-checker"),
            &[
                "--config.file",
                config.to_str().expect("path"),
                "--web.listen-address",
                &listen,
            ],
        ));
    }
    want.sort();
    let table = || {
        let mut lines: Vec<String> = director("ipvsadm -Sn")
            .lines()
            .map(without_weight)
            .collect();
        lines.sort();
        lines
    };
    let start = Instant::now();
    while table() != want && start.elapsed() < Duration::from_secs(30) {
        sleep(Duration::from_millis(500));
    }
    assert_eq!(
        table(),
        want,
        "the managed examples' checkers made another table than their comments say"
    );
    eprintln!(
        "the {} managed examples made their documented tables in {:.1} s",
        daemons.len(),
        start.elapsed().as_secs_f64()
    );
}
