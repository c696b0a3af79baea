//! `/metrics` and `/status` over a daemon state built here with the
//! daemon's own calls (probe results, reconciliations against a fake
//! table, a failed reload): names, labels and values, and `promtool check
//! metrics` on the exposition when promtool is installed.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use ipvs::{DestinationConfig, DestinationKey, ForwardMethod};
use ipvs_common::exposition::Format;

use super::*;
use crate::config::{self, Config};
use crate::prober::{Handshake, Phase, Phases, ProbeError, Success};
use crate::reconcile::memory::MemoryTable;
use crate::reconcile::Reconciler;

const CONFIG: &str = "
defaults: {rise: 1, fall: 2}
services:
  - address: 198.18.0.10:80
    quorum: {min_up: 1}
    real_servers:
      - {address: 198.18.1.11:80, weight: 3}
      - {address: 198.18.1.12:80, weight: 1}
  - fwmark: 1
    real_servers:
      - {address: 198.18.1.13, weight: 2, check: {type: tcp, port: 443}}
";

fn rs(text: &str) -> DestinationKey {
    DestinationKey::new(text.parse().expect("address"))
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Reconciles every service as the daemon's `apply` does.
fn reconcile_all(config: &Config, state: &Shared, reconciler: &mut Reconciler<MemoryTable>) {
    for service in &config.services {
        let want = state.lock().desired(service);
        let outcome = reconciler.reconcile(&want);
        state.lock().record(&want, outcome.as_ref().ok(), false);
    }
}

/// rs1 up, then changed out of band and set back; rs2 down after two
/// refused connections (weight 1 -> 0); the fwmark service's rs3 up with
/// a certificate but unreadable in the table; a failed reload.
fn scenario() -> Shared {
    let config = config::parse(CONFIG, Path::new("test.yaml"), Path::new(".")).expect("valid");
    let tcp = config.services[0].key;
    let fwm = config.services[1].key;
    // The TCP service only: reading the fwmark one fails, as netlink does
    // for a service that does not exist.
    let mut table = MemoryTable::default();
    let nat = |w| DestinationConfig::new(ForwardMethod::Masquerade, w);
    table.dests.insert(
        tcp,
        [
            (rs("198.18.1.11:80"), nat(3)),
            (rs("198.18.1.12:80"), nat(1)),
        ]
        .into(),
    );
    let mut reconciler = Reconciler::new(table, false);
    let state = Shared::new(&config);

    let refused = || {
        Err(ProbeError::Connect(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    };
    let ok = Ok(Success::default());
    let ms = Duration::from_millis;
    let connect = |took| Phases::new().with(Phase::Connect, ms(took));
    {
        let mut s = state.lock();
        s.observe(
            &tcp,
            &rs("198.18.1.11:80"),
            &ok,
            &connect(3),
            &[None],
            at(1000),
        );
        s.observe(
            &tcp,
            &rs("198.18.1.12:80"),
            &refused(),
            &connect(1),
            &[Some("connect")],
            at(1000),
        );
        s.observe(
            &tcp,
            &rs("198.18.1.12:80"),
            &refused(),
            &connect(2),
            &[Some("connect")],
            at(1001),
        );
        s.observe_hurry(&tcp, crate::state::Hurry::Failing);
        let https = Ok(Success {
            status: Some(200),
            cert_not_after: Some(4_102_444_800),
            handshake: Some(Handshake::Full),
            weight: None,
        });
        let phases = connect(1)
            .with(Phase::Tls, ms(30))
            .with(Phase::Response, ms(9));
        s.observe(&fwm, &rs("198.18.1.13:0"), &https, &phases, &[], at(1001));
    }
    reconcile_all(&config, &state, &mut reconciler);
    // ipvsadm -e behind the checker's back, put back on the next pass.
    reconciler
        .table_mut()
        .set(&tcp, rs("198.18.1.11:80"), 7)
        .expect("in the table");
    reconcile_all(&config, &state, &mut reconciler);
    state.lock().reloaded(false, at(1002));
    state
}

async fn get(state: &Shared, path: &str) -> (StatusCode, String, String) {
    get_accepting(state, path, "*/*").await
}

async fn get_accepting(state: &Shared, path: &str, accept: &str) -> (StatusCode, String, String) {
    let request = Request::get(path)
        .header(hyper::header::ACCEPT, accept)
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    read(Pages::new(state.clone()).handle(request).await).await
}

/// A response of [`Pages::handle`] as the checker's tests read it: its
/// status, its `Content-Type` and its body (UTF-8).
pub(crate) async fn read(response: Response<Page>) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

const TCP_RS1: &str = r#"proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",remote_address="198.18.1.11",remote_port="80""#;
const TCP_RS2: &str = r#"proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",remote_address="198.18.1.12",remote_port="80""#;
const FWM_RS3: &str = r#"proto="FWM",local_address="",local_port="0",local_mark="00000001",remote_address="198.18.1.13",remote_port="0""#;

#[tokio::test]
async fn metrics_have_the_exporter_labels_and_the_daemon_values() {
    let state = scenario();
    let (status, content_type, body) = get_accepting(
        &state,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let expected = [
        format!("ipvs_checker_backend_up{{{TCP_RS1}}} 1"),
        format!("ipvs_checker_backend_up{{{TCP_RS2}}} 0"),
        format!("ipvs_checker_backend_up{{{FWM_RS3}}} 1"),
        format!("ipvs_checker_probe_success{{{TCP_RS1}}} 1"),
        format!("ipvs_checker_probe_success{{{TCP_RS2}}} 0"),
        format!(r#"ipvs_checker_probe_duration_seconds_count{{{TCP_RS2},phase="connect"}} 2"#),
        format!(r#"ipvs_checker_probe_duration_seconds_sum{{{TCP_RS2},phase="connect"}} 0.003"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="10.0",{TCP_RS2},phase="connect"}} 2"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="0.001",{TCP_RS2},phase="connect"}} 1"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="0.0025",{TCP_RS2},phase="connect"}} 2"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="0.001",{FWM_RS3},phase="connect"}} 1"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="0.025",{FWM_RS3},phase="tls"}} 0"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="0.05",{FWM_RS3},phase="tls"}} 1"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="0.005",{FWM_RS3},phase="response"}} 0"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="0.01",{FWM_RS3},phase="response"}} 1"#),
        format!(r#"ipvs_checker_probe_duration_seconds_bucket{{le="+Inf",{FWM_RS3},phase="response"}} 1"#),
        format!("ipvs_checker_transitions_total{{{TCP_RS1}}} 1"),
        format!("ipvs_checker_transitions_total{{{TCP_RS2}}} 1"),
        format!(r#"ipvs_checker_weight_changes_total{{{TCP_RS1},cause="health"}} 0"#),
        format!(r#"ipvs_checker_weight_changes_total{{{TCP_RS1},cause="out_of_band"}} 1"#),
        format!(r#"ipvs_checker_weight_changes_total{{{TCP_RS2},cause="health"}} 1"#),
        format!(r#"ipvs_checker_weight_changes_total{{{TCP_RS2},cause="quorum_guard"}} 0"#),
        format!("ipvs_checker_backend_weight_desired{{{TCP_RS1}}} 3"),
        format!("ipvs_checker_backend_weight_desired{{{TCP_RS2}}} 0"),
        format!("ipvs_checker_backend_weight_desired{{{FWM_RS3}}} 2"),
        format!("ipvs_checker_backend_weight_configured{{{TCP_RS2}}} 1"),
        format!("ipvs_checker_tls_cert_not_after_timestamp_seconds{{{FWM_RS3}}} 4102444800"),
        format!(r#"ipvs_checker_last_failure_info{{{TCP_RS2},reason="connect"}} 1"#),
        format!(r#"ipvs_checker_check_success{{{TCP_RS1},check="1",type="tcp"}} 1"#),
        format!(r#"ipvs_checker_check_success{{{TCP_RS2},check="1",type="tcp"}} 0"#),
        format!(r#"ipvs_checker_check_last_failure_info{{{TCP_RS2},check="1",type="tcp",reason="connect"}} 1"#),
        r#"ipvs_checker_quorum_guard_active{proto="TCP",local_address="198.18.0.10",local_port="80",local_mark=""} 0"#.to_owned(),
        r#"ipvs_checker_quorum_guard_active{proto="FWM",local_address="",local_port="0",local_mark="00000001"} 0"#.to_owned(),
        r#"ipvs_checker_hurries_total{proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",kind="failing"} 1"#.to_owned(),
        r#"ipvs_checker_hurries_total{proto="TCP",local_address="198.18.0.10",local_port="80",local_mark="",kind="recovered"} 0"#.to_owned(),
        r#"ipvs_checker_hurries_total{proto="FWM",local_address="",local_port="0",local_mark="00000001",kind="failing"} 0"#.to_owned(),
        r#"ipvs_checker_netlink_errors_total{op="read"} 2"#.to_owned(),
        r#"ipvs_checker_netlink_errors_total{op="set_weight"} 0"#.to_owned(),
        "ipvs_checker_config_last_reload_successful 0".to_owned(),
        "# TYPE ipvs_checker_probe_duration_seconds histogram".to_owned(),
        "# TYPE ipvs_checker_transitions counter".to_owned(),
        "# EOF".to_owned(),
    ];
    let lines: Vec<&str> = body.lines().collect();
    for line in &expected {
        assert!(
            lines.contains(&line.as_str()),
            "missing {line:?} in\n{body}"
        );
    }
    // Nothing about a server while it is unknown, and no certificate or
    // failure series for servers that have none.
    assert!(
        !body.contains(&format!(
            "ipvs_checker_tls_cert_not_after_timestamp_seconds{{{TCP_RS1}}}"
        )),
        "{body}"
    );
    assert!(
        !body.contains(&format!("ipvs_checker_last_failure_info{{{TCP_RS1}")),
        "{body}"
    );
    // A check that passed has no failure series; one not probed yet, none.
    assert!(
        !body.contains(&format!("ipvs_checker_check_last_failure_info{{{TCP_RS1}")),
        "{body}"
    );
    assert!(
        !body.contains(&format!("ipvs_checker_check_success{{{FWM_RS3}")),
        "{body}"
    );
    // Phases a server's probes never went through have no histogram.
    for phase in ["tls", "response"] {
        assert!(
            !body.contains(&format!(
                r#"ipvs_checker_probe_duration_seconds_count{{{TCP_RS2},phase="{phase}"}}"#
            )),
            "{body}"
        );
    }

    // The text format: the same samples, counters' families with _total.
    let (status, content_type, text) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    // (The process' own figures, its memory and CPU, move between the
    // two scrapes.)
    let samples = |b: &str| -> Vec<String> {
        b.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("process_"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(samples(&text), samples(&body));
    for line in [
        "# TYPE ipvs_checker_transitions_total counter",
        "# TYPE ipvs_checker_netlink_errors_total counter",
        "# TYPE ipvs_checker_probe_duration_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    promtool_check(&text);
}

/// `promtool check metrics` on `body` (promtool: lab/packages.txt).
fn promtool_check(body: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("promtool: {e} (run lab/setup --packages: lab/packages.txt installs it)")
    });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\n{body}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn status_lists_every_real_server() {
    let state = scenario();
    let (status, content_type, body) = get(&state, "/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let expected = serde_json::json!({
        "mode": "weights",
        "state_file": null,
        "services": [
            {
                "service": "TCP 198.18.0.10:80",
                "quorum_guard_active": false,
                "created_by_checker": false,
                "sorry_server": null,
                "real_servers": [
                    {
                        "address": "198.18.1.11:80",
                        "created_by_checker": false,
                        "health": "up",
                        "health_since": 1000.0,
                        "weight": 3,
                        "weight_desired": 3,
                        "weight_configured": 3,
                        "last_probe_success": true,
                        "last_error": null,
                        "tls_cert_not_after": null,
                        "drained": null,
                        "checks": [{"type": "tcp", "last_success": true, "reason": null}]
                    },
                    {
                        "address": "198.18.1.12:80",
                        "created_by_checker": false,
                        "health": "down",
                        "health_since": 1001.0,
                        "weight": 0,
                        "weight_desired": 0,
                        "weight_configured": 1,
                        "last_probe_success": false,
                        "last_error": {
                            "reason": "connect",
                            "message": "connect: connection refused",
                            "since": 1000.0,
                            "last": 1001.0
                        },
                        "tls_cert_not_after": null,
                        "drained": null,
                        "checks": [{"type": "tcp", "last_success": false, "reason": "connect"}]
                    }
                ]
            },
            {
                "service": "FWM 1",
                "quorum_guard_active": false,
                "created_by_checker": false,
                "sorry_server": null,
                "real_servers": [
                    {
                        "address": "198.18.1.13:0",
                        "created_by_checker": false,
                        "health": "up",
                        "health_since": 1001.0,
                        "weight": null,
                        "weight_desired": 2,
                        "weight_configured": 2,
                        "last_probe_success": true,
                        "last_error": null,
                        "tls_cert_not_after": 4102444800i64,
                        "drained": null,
                        "checks": [{"type": "tcp", "last_success": null, "reason": null}]
                    }
                ]
            }
        ],
        "removing": [],
        "config_last_reload_successful": false
    });
    assert_eq!(json, expected, "{body}");
}

#[tokio::test]
async fn other_paths_and_methods() {
    let state = scenario();
    let (status, content_type, body) = get(&state, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(body.contains("href=\"/metrics\"") && body.contains("href=\"/status\""));
    assert_eq!(get(&state, "/nothing").await.0, StatusCode::NOT_FOUND);
    let post = Request::post("/metrics")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let response = Pages::new(state).handle(post).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn ready_after_the_first_reconciliation_healthy_always() {
    let state = scenario();
    assert_eq!(get(&state, "/-/healthy").await.0, StatusCode::OK);
    assert_eq!(
        get(&state, "/-/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    state.lock().reconciled = true;
    assert_eq!(get(&state, "/-/ready").await.0, StatusCode::OK);
}

#[tokio::test]
async fn build_and_process_metrics_are_served() {
    let state = scenario();
    let (_, _, body) = get(&state, "/metrics").await;
    let build = body
        .lines()
        .find(|l| l.starts_with("ipvs_checker_build_info{"))
        .expect("build info");
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.contains("revision=\"")
            && build.contains("rustc_version=\"1.")
            && build.ends_with(" 1"),
        "{build}"
    );
    for family in [
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_virtual_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_start_time_seconds gauge",
    ] {
        assert!(body.contains(family), "{family} missing");
    }
}

/// The exposition of [`scenario`] with its reload time, build and process
/// fixed and concurrency limits, in both formats, against `src/testdata/metrics.{om,prom}` byte for byte
/// (`UPDATE_GOLDEN=1` writes them).
#[test]
fn golden_exposition() {
    let state = scenario();
    state.lock().reload_success_time = at(990);
    state.lock().netlink_socket_reopens = 1;
    state
        .lock()
        .table_passes
        .passed(Duration::from_millis(130), Duration::from_millis(2600));
    // Every family then: the limits are described only while there are.
    state.lock().limits.set_probes(0, 256);
    state.lock().limits.set_programs(32);
    let build = ipvs_web::process::BuildInfo {
        version: "0.1.0",
        revision: "0123456789ab",
        rustc_version: "1.85.0",
    };
    // No limit of open files: no process_max_fds.
    let process = ipvs_web::process::ProcessStats {
        cpu_seconds: 0.5,
        open_fds: 12,
        max_fds: None,
        start_time_seconds: 1_764_662_400.25,
        ..Default::default()
    };
    let state = state.lock();
    for (file, format) in [
        ("metrics.om", Format::OpenMetrics),
        ("metrics.prom", Format::Text),
    ] {
        let actual = crate::metrics::encode(&state, &build, Some(&process), format);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/testdata")
            .join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &actual).expect("write the golden file");
        }
        let golden = std::fs::read_to_string(&path).expect("the golden file");
        assert!(golden == actual, "{file} differs:\n{actual}");
    }
}

/// A scrape that accepts gzip, as Prometheus', gets the same exposition
/// gzipped, through the path the exporter's takes ([`ipvs_web::scrape`]).
#[tokio::test]
async fn metrics_are_gzipped_when_the_scraper_accepts_it() {
    use std::io::Read;
    let state = scenario();
    let request = |gzip: bool| {
        let mut request = Request::get("/metrics").header(hyper::header::ACCEPT, "text/plain");
        if gzip {
            request = request.header(hyper::header::ACCEPT_ENCODING, "gzip");
        }
        request
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request")
    };
    let response = Pages::new(state.clone()).handle(request(true)).await;
    assert_eq!(
        response
            .headers()
            .get(hyper::header::CONTENT_ENCODING)
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let gzipped = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_string(&mut text)
        .expect("a gzip stream");
    let (_, _, plain) = read(Pages::new(state).handle(request(false)).await).await;
    let samples = |b: &str| -> Vec<String> {
        b.lines()
            .filter(|l| !l.starts_with("process_"))
            .map(str::to_owned)
            .collect()
    };
    assert!(text.contains("ipvs_checker_backend_up{"), "{text}");
    assert_eq!(samples(&text), samples(&plain));
}
