//! The table from a fixed document (golden), the document the daemon
//! serves read back, and fetching it from a daemon's endpoint over HTTP
//! and HTTPS, or failing clearly when there is none.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::state::Shared;

/// 2023-11-14 22:13:20 UTC.
const T: f64 = 1_700_000_000.0;

const DOCUMENT: &str = r#"{"services": [
  {"service": "TCP 198.18.0.10:80", "quorum_guard_active": false, "real_servers": [
    {"address": "198.18.1.11:80", "health": "up", "health_since": 1700000000.25,
     "weight": 3, "weight_desired": 3, "weight_configured": 3,
     "last_probe_success": true, "last_error": null, "tls_cert_not_after": null},
    {"address": "198.18.1.12:80", "health": "down", "health_since": 1700000200.0,
     "weight": 0, "weight_desired": 0, "weight_configured": 1, "last_probe_success": false,
     "last_error": {"reason": "connect", "message": "connect: Connection refused (os error 111)",
                    "since": 1700000199.0, "last": 1700000290.0},
     "tls_cert_not_after": null}]},
  {"service": "FWM 1", "quorum_guard_active": true, "real_servers": [
    {"address": "[2001:db8:1::13]:0", "health": "unknown", "health_since": 1699990000.0,
     "weight": null, "weight_desired": null, "weight_configured": 100,
     "last_probe_success": null, "last_error": null, "tls_cert_not_after": null}]}],
 "config_last_reload_successful": false}"#;

#[test]
fn the_table_is_ipvsadm_shaped() {
    let status: Status = serde_json::from_str(DOCUMENT).expect("document");
    let table = render(&status, T + 300.0);
    assert_eq!(
        table,
        "\
Prot LocalAddress:Port
  -> RemoteAddress:Port  Health   Since                        Weight  Desired  Configured  Last error
TCP  198.18.0.10:80
  -> 198.18.1.11:80      up       2023-11-14 22:13:20 (5m)          3        3           3
  -> 198.18.1.12:80      down     2023-11-14 22:16:40 (1m40s)       0        0           1  connect since 2023-11-14 22:16:39 (1m41s): connect: Connection refused (os error 111)
FWM  1  (quorum guard active: failed servers kept)
  -> [2001:db8:1::13]:0  unknown  2023-11-14 19:26:40 (2h51m)       -        -         100

The last configuration reload failed: the previous configuration is running (see the log).
"
    );
}

/// Managed mode with a sorry server in use: its entries are marked.
const MANAGED_DOCUMENT: &str = r#"{"mode": "managed", "state_file": "/var/lib/ipvs-checker/owned.json",
 "services": [
  {"service": "TCP 198.18.0.10:80", "quorum_guard_active": true, "created_by_checker": true,
   "sorry_server": {"address": "198.18.1.99:8080", "in_use": true, "weight": 5,
                    "weight_configured": 5, "created_by_checker": true},
   "real_servers": [
    {"address": "198.18.1.11:80", "created_by_checker": true, "health": "down",
     "health_since": 1700000200.0, "weight": 0, "weight_desired": 0, "weight_configured": 3,
     "last_probe_success": false, "last_error": null, "tls_cert_not_after": null},
    {"address": "198.18.1.12:80", "created_by_checker": false, "health": "up",
     "health_since": 1700000000.0, "weight": 1, "weight_desired": 1, "weight_configured": 1,
     "last_probe_success": true, "last_error": null, "tls_cert_not_after": null}]},
  {"service": "TCP 198.18.0.20:80", "quorum_guard_active": false, "created_by_checker": false,
   "sorry_server": {"address": "198.18.1.98:80", "in_use": false, "weight": null,
                    "weight_configured": 1, "created_by_checker": false},
   "real_servers": []}],
 "config_last_reload_successful": true}"#;

#[test]
fn the_managed_table_marks_what_the_checker_created_and_shows_the_sorry_server() {
    let status: Status = serde_json::from_str(MANAGED_DOCUMENT).expect("document");
    assert_eq!(
        render(&status, T + 300.0),
        "\
Prot LocalAddress:Port
  -> RemoteAddress:Port  Health          Since                        Weight  Desired  Configured  Last error
TCP  198.18.0.10:80 *  (quorum guard active: the sorry server takes the traffic)
  -> 198.18.1.11:80 *    down            2023-11-14 22:16:40 (1m40s)       0        0           3
  -> 198.18.1.12:80      up              2023-11-14 22:13:20 (5m)          1        1           1
  -> 198.18.1.99:8080 *  sorry, in use                                     5        5           5
TCP  198.18.0.20:80
  -> 198.18.1.98:80      sorry, standby                                    -        0           1

* created by this checker (managed mode, recorded in /var/lib/ipvs-checker/owned.json): the only entries it deletes
"
    );
}

#[test]
fn times_and_ages() {
    assert_eq!(utc(0.0), "1970-01-01 00:00:00");
    assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
    assert_eq!(utc(4_102_444_799.9), "2099-12-31 23:59:59");
    assert_eq!(age(-3.0), "0s");
    assert_eq!(age(59.4), "59s");
    assert_eq!(age(60.0), "1m");
    assert_eq!(age(3599.0), "59m59s");
    assert_eq!(age(7322.0), "2h2m");
    assert_eq!(age(90_000.0), "1d1h");
}

fn config() -> crate::config::Config {
    crate::config::parse(
        "services:\n  - address: 198.18.0.10:80\n    check: {type: tcp}\n    real_servers:\n      - {address: 198.18.1.11:80, weight: 3}\n",
        Path::new("test.yaml"),
        Path::new("."),
    )
    .expect("valid")
}

#[test]
fn the_daemons_document_reads_back() {
    let state = Shared::new(&config());
    let json = serde_json::to_string(&crate::web::status(&state.lock())).expect("json");
    let status: Status = serde_json::from_str(&json).expect("reads back");
    let rs = &status.services[0].real_servers[0];
    assert_eq!(
        (
            status.services[0].service.as_str(),
            rs.address.as_str(),
            rs.health.as_str(),
            rs.weight_configured
        ),
        ("TCP 198.18.0.10:80", "198.18.1.11:80", "unknown", 3)
    );
}

fn args(url: String) -> Args {
    Args {
        url,
        ca_file: None,
        insecure_skip_verify: false,
        username: None,
        timeout: std::time::Duration::from_secs(5),
    }
}

/// The daemon's pages on 127.0.0.1 with `web`; returns the port.
async fn daemon(web: ipvs_web::WebConfig) -> u16 {
    let server = ipvs_web::Server::bind(
        "127.0.0.1:0".parse().expect("address"),
        &web,
        ipvs_web::Limits::default(),
    )
    .await
    .expect("bind");
    let port = server.local_addr().expect("address").port();
    let pages = crate::web::Pages::new(Shared::new(&config()));
    tokio::spawn(server.run(
        move |request| pages.clone().handle(request),
        std::future::pending(),
    ));
    port
}

/// Basic auth applies to every page: `/status`, and the status page at
/// `/` for a person at a browser.
#[tokio::test]
async fn the_pages_are_behind_basic_auth() {
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let web = ipvs_web::WebConfig::parse(
        &format!("basic_auth_users:\n  alice: '{hash}'\n"),
        Path::new("web.yml"),
    )
    .expect("web config");
    let mut args = args(format!("http://127.0.0.1:{}", daemon(web).await));
    for path in ["/", "/status"] {
        let (status, _) = exchange(&args, None, Method::GET, path, None)
            .await
            .expect("an answer");
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    args.username = Some("alice".into());
    let (status, _) = exchange(&args, Some("wrong"), Method::GET, "/", None)
        .await
        .expect("an answer");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = exchange(&args, Some("s3cret"), Method::GET, "/", None)
        .await
        .expect("an answer");
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("<h1>IPVS Checker</h1>"));
}

#[tokio::test]
async fn fetches_over_http_and_https_and_names_what_is_wrong() {
    let port = daemon(ipvs_web::WebConfig::plain()).await;
    let body = fetch(&args(format!("http://127.0.0.1:{port}/")), None)
        .await
        .expect("plain");
    let status: Status = serde_json::from_slice(&body).expect("status");
    assert_eq!(status.services.len(), 1);

    // Over TLS, with the daemon's certificate from a CA made here.
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server config");
    let mut web = ipvs_web::WebConfig::plain();
    web.tls = Some(Arc::new(tls));
    let tls_port = daemon(web).await;
    let mut secure = args(format!("https://localhost:{tls_port}"));
    let e = fetch(&secure, None).await.expect_err("no CA given");
    assert!(e.to_string().contains("needs --web.ca-file"), "{e:#}");
    secure.ca_file = Some(dir.path().join("ca.pem"));
    let body = fetch(&secure, None).await.expect("verified");
    serde_json::from_slice::<Status>(&body).expect("status");

    // Plain HTTP to the TLS port fails, and says where.
    let e = fetch(&args(format!("http://127.0.0.1:{tls_port}")), None)
        .await
        .expect_err("not TLS");
    assert!(!format!("{e:#}").is_empty());

    // Nobody listening: the message says to check that it runs.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    let e = fetch(&args(format!("http://127.0.0.1:{closed_port}")), None)
        .await
        .expect_err("not running");
    assert_eq!(
        format!("{e:#}"),
        format!("cannot reach ipvs-checker at http://127.0.0.1:{closed_port}: is it running, and listening there (--web.listen-address)?: Connection refused (os error 111)")
    );

    let e = fetch(&args("ftp://127.0.0.1:1".to_owned()), None)
        .await
        .expect_err("scheme");
    assert_eq!(
        e.to_string(),
        "invalid --web.url \"ftp://127.0.0.1:1\": expected http://HOST:PORT or https://HOST:PORT"
    );
}

/// A peer on 127.0.0.1 that answers any request with a chunked body that
/// never ends; returns its port.
async fn endless_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head).await.is_err() {
            return;
        }
        let mut chunk = format!("{:x}\r\n", 1 << 20).into_bytes();
        chunk.extend(std::iter::repeat_n(b' ', 1 << 20));
        chunk.extend(b"\r\n");
        while stream.write_all(&chunk).await.is_ok() {}
    });
    port
}

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_refused_before_the_timeout() {
    let port = endless_server().await;
    let mut args = args(format!("http://127.0.0.1:{port}"));
    args.timeout = std::time::Duration::from_secs(120);
    let started = std::time::Instant::now();
    let e = fetch(&args, None).await.expect_err("endless answer");
    assert_eq!(
        e.to_string(),
        format!("the answer is larger than {MAX_STATUS_BYTES} bytes, the most `ipvs-checker status` reads: is --web.url the checker's?")
    );
    assert!(
        started.elapsed() < args.timeout,
        "cut off by the cap, not the timeout"
    );
}

#[tokio::test]
async fn the_cap_counts_body_bytes() {
    let port = endless_server().await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = Request::get("/status")
        .header(hyper::header::HOST, "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let e = get(stream, request, 1000)
        .await
        .expect_err("over 1000 bytes");
    assert!(e.to_string().contains("larger than 1000 bytes"), "{e:#}");
}

/// A drain reads back from `/status` and shows in the health column and,
/// with who, when and why, before the last error.
#[test]
fn a_drain_shows_who_why_and_until() {
    use crate::drain::{By, Drain, Drains};
    let config = config();
    let state = Shared::new(&config);
    let (service, rs) = (
        config.services[0].key,
        config.services[0].real_servers[0].key,
    );
    let since = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let mut drains = Drains::default();
    drains.insert(
        service,
        rs,
        Drain {
            by: By::Api,
            user: Some("alice".into()),
            reason: Some("kernel update".into()),
            since,
            until: Some(since + std::time::Duration::from_secs(7200)),
        },
    );
    state.lock().set_drains(drains);
    let json = serde_json::to_string(&crate::web::status(&state.lock())).expect("json");
    let status: Status = serde_json::from_str(&json).expect("reads back");
    let table = render(&status, 1_700_000_060.0);
    let row = table
        .lines()
        .find(|l| l.contains("198.18.1.11:80"))
        .expect("row");
    assert!(row.contains("  unknown, drained  "), "{table}");
    assert!(
        row.ends_with("drained by api (alice) since 2023-11-14 22:13:20 (1m) until 2023-11-15 00:13:20 (in 1h59m): kernel update"),
        "{table}"
    );
}
