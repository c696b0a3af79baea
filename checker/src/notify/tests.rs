//! The hooks for real: shell scripts written by the tests, run as argv,
//! and an HTTP server on 127.0.0.1 receiving the webhooks.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ipvs::{DestinationKey, ServiceKey};

use super::*;
use crate::config::{ExecHook, Webhook};

/// Writes an executable shell script `body` to `dir/name`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn exec(argv: &[&Path], timeout: Duration) -> ExecHook {
    ExecHook {
        argv: argv.iter().map(|p| p.display().to_string()).collect(),
        timeout,
    }
}

/// A real server down on `TCP 198.18.0.10:80`, at a fixed time.
fn event() -> Event {
    Event {
        service: Some(ServiceKey::tcp("198.18.0.10:80".parse().expect("addr"))),
        real_server: Some(DestinationKey::new("198.18.1.11:80".parse().expect("addr"))),
        old_weight: Some(3),
        new_weight: Some(0),
        reason: Some("connection refused".into()),
        time: UNIX_EPOCH + Duration::from_secs(1_796_205_600),
        ..Event::new(EventKind::RealServerDown)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn an_exec_hook_gets_the_event_in_its_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let hook = script(
        dir.path(),
        "record",
        "env | grep '^IPVS_CHECKER_' | sort > \"$1\"",
    );
    let ending = runtime().block_on(exec::run(
        &exec(&[&hook, &out], Duration::from_secs(10)),
        &event(),
    ));
    assert_eq!(ending, Ending::Succeeded);
    let recorded = std::fs::read_to_string(&out).expect("the hook wrote its environment");
    assert_eq!(
        recorded,
        "IPVS_CHECKER_EVENT=real_server_down\n\
         IPVS_CHECKER_NEW_WEIGHT=0\n\
         IPVS_CHECKER_OLD_WEIGHT=3\n\
         IPVS_CHECKER_REAL_SERVER=198.18.1.11:80\n\
         IPVS_CHECKER_REASON=connection refused\n\
         IPVS_CHECKER_SERVICE=TCP 198.18.0.10:80\n\
         IPVS_CHECKER_TIME=2026-12-02T10:00:00Z\n"
    );
}

#[test]
fn an_exec_hook_past_its_timeout_is_killed_with_its_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("child.pid");
    // The shell starts a child and waits for it: killing the shell alone
    // would leave the child running.
    let hook = script(dir.path(), "slow", "sleep 60 &\necho $! > \"$1\"\nwait");
    let ending = runtime().block_on(exec::run(
        &exec(&[&hook, &pid_file], Duration::from_millis(500)),
        &event(),
    ));
    assert_eq!(ending, Ending::TimedOut);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the hook wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid");
    // Gone, or dead and waiting for its new parent to reap it.
    let mut gone = false;
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => gone = true,
            Ok(stat) => {
                gone = stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z'))
            }
        }
        if gone {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "the hook's child {pid} still runs");
}

#[test]
fn a_failing_exec_hook_is_counted_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = script(dir.path(), "fail", "echo 'no pager today' >&2\nexit 3");
    let stats = Arc::new(Stats::default());
    let mut notifier = Notifier::start(2, stats.clone());
    let hooks = Arc::new(Hooks {
        exec: Some(exec(&[&hook], Duration::from_secs(10))),
        webhook: None,
    });
    notifier.emit(&hooks, event());
    notifier.finish(Duration::from_secs(10));
    let counts = stats.snapshot()[&(HookKind::Exec, EventKind::RealServerDown)];
    assert_eq!(
        counts,
        Counts {
            run: 1,
            failed: 1,
            timed_out: 0,
            dropped: 0
        }
    );
}

/// What the receiver saw: each request's path, content type and body.
type Received = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

/// An HTTP server on 127.0.0.1 answering `statuses` in turn (the last
/// one from then on); its URL and what it received.
async fn receiver(statuses: Vec<u16>) -> (String, Received) {
    receiver_over(statuses, None).await
}

/// [`receiver`], over TLS with `tls`.
async fn receiver_over(
    statuses: Vec<u16>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}/hooks/ipvs",
        listener.local_addr().expect("addr")
    );
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let received: Received = Arc::default();
    let seen = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, statuses, acceptor) = (seen.clone(), statuses.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let (seen, statuses) = (seen.clone(), statuses.clone());
                    async move {
                        let path = request.uri().path().to_owned();
                        let kind = request
                            .headers()
                            .get(hyper::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = request.into_body().collect().await?.to_bytes();
                        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                        let mut seen = seen.lock().expect("lock");
                        let status = statuses[seen.len().min(statuses.len() - 1)];
                        seen.push((path, kind, json));
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(bytes::Bytes::new()))
                                .expect("response"),
                        )
                    }
                });
                match acceptor {
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        // A handshake the server refuses (no client
                        // certificate) ends here.
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            });
        }
    });
    (url, received)
}

fn webhook(url: &str, retries: u32) -> Webhook {
    Webhook {
        url: url.parse().expect("url"),
        timeout: Duration::from_secs(5),
        retries,
        backoff: Duration::from_millis(50),
        tls: None,
    }
}

#[test]
fn a_webhook_posts_the_documented_json() {
    runtime().block_on(async {
        let (url, received) = receiver(vec![204]).await;
        let ending = webhook::run(&webhook(&url, 0), &event()).await;
        assert_eq!(ending, Ending::Succeeded);
        let received = received.lock().expect("lock");
        assert_eq!(received.len(), 1);
        let (path, kind, json) = &received[0];
        assert_eq!(path, "/hooks/ipvs");
        assert_eq!(kind, "application/json");
        let fields: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json.clone()).expect("an object");
        let expect = serde_json::json!({
            "version": 1,
            "event": "real_server_down",
            "service": "TCP 198.18.0.10:80",
            "real_server": "198.18.1.11:80",
            "old_weight": 3,
            "new_weight": 0,
            "reason": "connection refused",
            "time": "2026-12-02T10:00:00Z",
        });
        let expect: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(expect).expect("an object");
        for (key, value) in &expect {
            assert_eq!(fields.get(key), Some(value), "field {key}");
        }
        assert_eq!(fields.len(), expect.len(), "no other field: {fields:?}");
    });
}

#[test]
fn a_checker_event_has_null_fields() {
    let json = Event::new(EventKind::CheckerStarted).to_json();
    assert_eq!(json["event"], "checker_started");
    for key in [
        "service",
        "real_server",
        "old_weight",
        "new_weight",
        "reason",
    ] {
        assert!(json[key].is_null(), "{key}: {}", json[key]);
    }
}

#[test]
fn a_webhook_answered_500_is_tried_again() {
    runtime().block_on(async {
        let (url, received) = receiver(vec![500, 200]).await;
        let ending = webhook::run(&webhook(&url, 2), &event()).await;
        assert_eq!(ending, Ending::Succeeded);
        let received = received.lock().expect("lock");
        assert_eq!(received.len(), 2, "one 500, then the retry's 200");
        assert_eq!(received[0].2, received[1].2, "the same document twice");
    });
}

#[test]
fn a_webhook_answered_500_every_time_fails_after_its_retries() {
    runtime().block_on(async {
        let (url, received) = receiver(vec![500]).await;
        let ending = webhook::run(&webhook(&url, 2), &event()).await;
        assert_eq!(ending, Ending::Failed);
        assert_eq!(received.lock().expect("lock").len(), 3);
    });
}

#[test]
fn a_webhook_answered_400_is_not_tried_again() {
    runtime().block_on(async {
        let (url, received) = receiver(vec![400, 200]).await;
        let ending = webhook::run(&webhook(&url, 2), &event()).await;
        assert_eq!(ending, Ending::Failed);
        assert_eq!(received.lock().expect("lock").len(), 1);
    });
}

#[test]
fn events_beyond_the_queue_are_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slow = script(dir.path(), "slow", "sleep 1");
    let stats = Arc::new(Stats::default());
    // One hook at a time, taken by the slow one: the rest wait in the
    // queue, which holds QUEUE of them.
    let mut notifier = Notifier::start(1, stats.clone());
    let blocking = Arc::new(Hooks {
        exec: Some(exec(&[&slow], Duration::from_secs(10))),
        webhook: None,
    });
    notifier.emit(&blocking, Event::new(EventKind::CheckerStarted));
    // A port nothing listens on: each of these fails at once.
    let refused = Arc::new(Hooks {
        exec: None,
        webhook: Some(webhook("http://127.0.0.1:9/", 0)),
    });
    let extra = 5;
    for _ in 0..QUEUE + extra {
        notifier.emit(&refused, event());
    }
    notifier.finish(Duration::from_secs(30));
    let counts = stats.snapshot()[&(HookKind::Webhook, EventKind::RealServerDown)];
    // The slow hook's event may still have been in the queue: one fewer
    // place then.
    assert!(
        counts.dropped == extra as u64 || counts.dropped == extra as u64 + 1,
        "{counts:?}"
    );
    assert_eq!(counts.run + counts.dropped, (QUEUE + extra) as u64);
    assert_eq!(counts.failed, counts.run);
}

/// A private CA in `dir` (`ca.pem`), a server config for 127.0.0.1 that
/// asks for a client certificate from it, and a client certificate
/// (`client.pem`, `client.key`).
fn mutual_tls(dir: &Path) -> Arc<rustls::ServerConfig> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).expect("CA");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("issue");
        (cert, key)
    };
    let (client, client_key) = issue(vec!["checker.lab.test".into()]);
    std::fs::write(dir.join("client.pem"), client.pem()).expect("write");
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("write");
    let (server, server_key) = issue(vec!["127.0.0.1".into()]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der().to_vec()))
        .expect("root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .expect("server config");
    Arc::new(config)
}

/// The defaults' webhook of a config naming `url` and, if `client`, the
/// client certificate, files relative to `dir`.
fn https_webhook(dir: &Path, url: &str, client: bool) -> Webhook {
    let client = if client {
        ", client_cert: client.pem, client_key: client.key"
    } else {
        ""
    };
    let text = format!(
        "defaults: {{hooks: {{webhook: {{url: \"{url}\", ca_file: ca.pem, retries: 0{client}}}}}}}\n\
         services:\n  - address: 198.18.0.10:80\n    real_servers: [{{address: 198.18.1.11:80}}]\n"
    );
    let config = crate::config::parse(&text, &dir.join("checker.yaml"), dir).expect("valid");
    config.hooks.webhook.clone().expect("a webhook")
}

#[test]
fn an_https_webhook_presents_its_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = mutual_tls(dir.path());
    runtime().block_on(async {
        let (url, received) = receiver_over(vec![200], Some(tls)).await;
        let with = https_webhook(dir.path(), &url, true);
        assert_eq!(webhook::run(&with, &event()).await, Ending::Succeeded);
        assert_eq!(received.lock().expect("lock").len(), 1);
        // Without the client certificate the server refuses the handshake.
        let without = https_webhook(dir.path(), &url, false);
        assert_eq!(webhook::run(&without, &event()).await, Ending::Failed);
        assert_eq!(received.lock().expect("lock").len(), 1);
    });
}

#[test]
fn the_counters_are_in_the_metrics_by_kind_and_event() {
    let state = crate::state::Shared::default();
    let stats = state.lock().hooks.clone();
    stats.add(HookKind::Exec, EventKind::RealServerDown, |c| {
        c.run += 2;
        c.timed_out += 1;
    });
    stats.add(HookKind::Webhook, EventKind::Drained, |c| c.dropped += 3);
    let text = crate::metrics::exposition(&state, ipvs_common::exposition::Format::OpenMetrics);
    for line in [
        r#"ipvs_checker_hooks_run_total{kind="exec",event="real_server_down"} 2"#,
        r#"ipvs_checker_hooks_timed_out_total{kind="exec",event="real_server_down"} 1"#,
        r#"ipvs_checker_hooks_failed_total{kind="exec",event="real_server_down"} 0"#,
        r#"ipvs_checker_hooks_dropped_total{kind="webhook",event="drained"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}
