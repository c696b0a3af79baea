//! The probers against servers on 127.0.0.1 made by each test: HTTP
//! answers good and bad, servers that never answer or trickle, and HTTPS
//! with certificates from a private CA made here with rcgen.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::config::{self, Check};

/// How a test server answers each connection.
#[derive(Clone)]
enum Answer {
    /// These bytes, after reading the request head.
    Bytes(&'static [u8]),
    /// Reads the request and then says nothing, connection open.
    Silence,
    /// The bytes, one a second.
    Trickle(&'static [u8]),
    /// These bytes, then the connection held open for a next request, as
    /// an HTTP/1.1 server keeps it when not asked to close.
    Kept(&'static [u8]),
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhealthy\n";
const ERROR: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops\n";

/// Reads a request head; whether a whole one came before the end.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// An accepted connection, over TLS when `tls` is given; `None` if the
/// handshake failed.
async fn accepted(
    tcp: tokio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Option<Box<dyn http::Stream>> {
    match tls {
        None => Some(Box::new(tcp)),
        Some(tls) => match tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await {
            Ok(s) => Some(Box::new(s)),
            Err(_) => None,
        },
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, answer: Answer) {
    read_head(&mut s).await;
    match answer {
        Answer::Bytes(b) => {
            let _ = s.write_all(b).await;
            let _ = s.shutdown().await;
        }
        Answer::Silence => tokio::time::sleep(Duration::from_secs(60)).await,
        Answer::Kept(b) => {
            let _ = s.write_all(b).await;
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Answer::Trickle(b) => {
            for byte in b {
                if s.write_all(&[*byte]).await.is_err() {
                    return;
                }
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// An HTTP server on 127.0.0.1 (over TLS when `tls` is given).
async fn server(reply: Answer, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    swappable_server(reply, tls.map(|t| Arc::new(std::sync::Mutex::new(t)))).await
}

/// A TLS configuration a test can replace while the server runs.
type Swappable = Arc<std::sync::Mutex<Arc<rustls::ServerConfig>>>;

/// [`server`] whose TLS configuration is read at each connection.
async fn swappable_server(reply: Answer, tls: Option<Swappable>) -> SocketAddr {
    serve(reply, tls, None).await
}

/// What each ClientHello a server was sent offered, in order.
type Hellos = Arc<std::sync::Mutex<Vec<Offer>>>;

/// What a ClientHello offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    /// TLS 1.3, among its `supported_versions`.
    tls13: bool,
    /// A `key_share` extension (RFC 8446 4.2.8).
    key_share: bool,
}

/// [`swappable_server`], which also keeps what each ClientHello offered
/// in `hellos`.
async fn serve(reply: Answer, tls: Option<Swappable>, hellos: Option<Hellos>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let reply = reply.clone();
            let tls = tls.clone();
            let hellos = hellos.clone();
            tokio::spawn(async move {
                if let Some(hellos) = hellos {
                    let offer = client_hello(&tcp).await;
                    hellos.lock().expect("lock").push(offer);
                }
                let tls = tls.map(|t| t.lock().expect("lock").clone());
                if let Some(stream) = accepted(tcp, tls).await {
                    answer(stream, reply).await
                }
            });
        }
    });
    addr
}

/// What the ClientHello that `tcp` begins with offers, peeked so that
/// the TLS handshake then reads it as sent.
async fn client_hello(tcp: &tokio::net::TcpStream) -> Offer {
    // The whole first record: a 5-byte header (content type 22,
    // version, length), then the handshake message.
    let mut record = vec![0u8; 5 + (1 << 14)];
    loop {
        let n = tcp.peek(&mut record).await.expect("peek");
        assert!(n > 0, "the connection closed before its ClientHello");
        if n >= 5 && n >= 5 + usize::from(u16::from_be_bytes([record[3], record[4]])) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!((record[0], record[5]), (22, 1), "a ClientHello record");
    let u16_at = |at: usize| usize::from(u16::from_be_bytes([record[at], record[at + 1]]));
    // Handshake header (4), legacy version (2), random (32), then the
    // session id, cipher suites and compression methods, each with its
    // length, then the extensions: type, length, body.
    let mut at = 5 + 4 + 2 + 32;
    at += 1 + usize::from(record[at]);
    at += 2 + u16_at(at);
    at += 1 + usize::from(record[at]);
    let end = at + 2 + u16_at(at);
    at += 2;
    let mut offer = Offer {
        tls13: false,
        key_share: false,
    };
    while at < end {
        let (kind, body) = (u16_at(at), &record[at + 4..at + 4 + u16_at(at + 2)]);
        match kind {
            // key_share
            51 => offer.key_share = true,
            // supported_versions: a length byte, then versions of 2 bytes.
            43 => offer.tls13 = body[1..].chunks(2).any(|v| v == [3, 4]),
            _ => {}
        }
        at += 4 + body.len();
    }
    offer
}

/// A check from YAML, relative files in `dir`.
fn check(yaml: &str, dir: &Path) -> Arc<Check> {
    let text = format!(
        "services:\n  - address: 198.18.0.10:80\n    check: {yaml}\n    real_servers:\n      - address: 198.18.1.11:80\n"
    );
    let config = config::parse(&text, Path::new("test.yaml"), dir).expect("test check is valid");
    config.services[0].real_servers[0].checks[0].check.clone()
}

fn target(addr: SocketAddr) -> Target {
    Target {
        addr,
        source: None,
        through: None,
    }
}

/// One probe by a new prober (no TLS session yet).
async fn probe(
    check: &Arc<Check>,
    target: &Target,
    timeout: Duration,
) -> Result<Success, ProbeError> {
    Prober::new(check.clone(), *target)
        .probe(timeout)
        .await
        .result
}

const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn tcp_connects_or_is_refused() {
    let addr = server(Answer::Silence, None).await;
    let tcp = check("{type: tcp}", Path::new("."));
    probe(&tcp, &target(addr), TIMEOUT)
        .await
        .expect("listening");

    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed_addr = closed.local_addr().expect("address");
    drop(closed);
    let e = probe(&tcp, &target(closed_addr), TIMEOUT)
        .await
        .expect_err("refused");
    assert_eq!(e.reason(), "connect", "{e}");
    // The kernel's own error, asked for once the handshake failed.
    assert!(e.to_string().contains("refused"), "{e}");
    let http = check("{type: http, path: /}", Path::new("."));
    let e = probe(&http, &target(closed_addr), TIMEOUT)
        .await
        .expect_err("refused");
    assert_eq!(e.reason(), "connect", "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
}

#[tokio::test]
async fn tcp_binds_the_source_address() {
    let addr = server(Answer::Silence, None).await;
    let tcp = check("{type: tcp}", Path::new("."));
    let from = Target {
        addr,
        source: Some("127.0.0.2".parse().expect("address")),
        through: None,
    };
    probe(&tcp, &from, TIMEOUT).await.expect("from 127.0.0.2");
    let unusable = Target {
        addr,
        source: Some("198.18.200.1".parse().expect("address")),
        through: None,
    };
    let e = probe(&tcp, &unusable, TIMEOUT)
        .await
        .expect_err("not a local address");
    assert_eq!(e.reason(), "connect", "{e}");
}

/// An `http` check's request, made once for its real server: `Host` is
/// the server's address unless `host` is set, `Connection: close` unless
/// `keep_alive` is, the check's own headers beside the checker's or in
/// place of one of the same name, `Content-Length: 0` for a method that
/// carries a body; each probe writes its bytes.
#[test]
fn an_http_checks_request_is_made_once_with_its_headers() {
    let of = |yaml: &str| {
        let check = check(yaml, Path::new("."));
        let CheckKind::Http(http) = &check.kind else {
            panic!("{yaml} is not an http check");
        };
        let addr = "198.18.1.11:8080".parse().expect("address");
        http::Template::new(&target(addr), http).expect("a request")
    };
    // The request as a server reads it: method, path, and each header's
    // values by name.
    let read = |template: &http::Template| {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut fields);
        let bytes = template.bytes();
        assert_eq!(
            request.parse(bytes).expect("HTTP"),
            httparse::Status::Complete(bytes.len()),
            "one whole head"
        );
        assert_eq!(request.version, Some(1));
        let method = request.method.expect("method").to_owned();
        let path = request.path.expect("path").to_owned();
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|h| {
                let value = std::str::from_utf8(h.value).expect("text");
                (h.name.to_ascii_lowercase(), value.to_owned())
            })
            .collect();
        (method, path, headers)
    };
    let values = |headers: &[(String, String)], name: &str| -> Vec<String> {
        let named = headers.iter().filter(|(n, _)| n == name);
        named.map(|(_, v)| v.clone()).collect()
    };
    let agent = concat!("ipvs-checker/", env!("CARGO_PKG_VERSION"));
    let (method, path, headers) = read(&of("{type: http, path: \"/health?full=1\"}"));
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/health?full=1"));
    assert_eq!(values(&headers, "host"), ["198.18.1.11:8080"]);
    assert_eq!(values(&headers, "user-agent"), [agent]);
    assert!(values(&headers, "connection").is_empty(), "{headers:?}");
    assert_eq!(headers.len(), 2, "{headers:?}");
    let (method, _, headers) = read(&of("{type: http, method: HEAD, host: www.lab.test, keep_alive: 30s, headers: {X-Probe: one, User-Agent: lb}}"));
    assert_eq!(method, "HEAD");
    assert_eq!(values(&headers, "host"), ["www.lab.test"]);
    assert!(values(&headers, "connection").is_empty());
    assert_eq!(values(&headers, "x-probe"), ["one"]);
    assert_eq!(values(&headers, "user-agent"), ["lb"]);
    let (_, _, headers) = read(&of("{type: http, headers: {Connection: close}}"));
    assert_eq!(values(&headers, "connection"), ["close"]);
    let (method, _, headers) = read(&of("{type: http, method: POST}"));
    assert_eq!(method, "POST");
    assert_eq!(values(&headers, "content-length"), ["0"]);
}

#[tokio::test]
async fn http_judges_status_and_body() {
    let ok = server(Answer::Bytes(OK), None).await;
    let error = server(Answer::Bytes(ERROR), None).await;
    let plain = check("{type: http, path: /health}", Path::new("."));
    let success = probe(&plain, &target(ok), TIMEOUT).await.expect("200");
    assert_eq!(success.status, Some(200));
    let e = probe(&plain, &target(error), TIMEOUT)
        .await
        .expect_err("500");
    assert_eq!(
        (e.reason(), e.to_string()),
        ("status", "HTTP status 500 is not expected".into())
    );

    let tolerant = check("{type: http, expect_status: [\"500-503\"]}", Path::new("."));
    probe(&tolerant, &target(error), TIMEOUT)
        .await
        .expect("500 expected");

    let body = check("{type: http, body: \"^healthy\"}", Path::new("."));
    probe(&body, &target(ok), TIMEOUT)
        .await
        .expect("body matches");
    let wrong = check("{type: http, body: \"^ready\"}", Path::new("."));
    let e = probe(&wrong, &target(ok), TIMEOUT)
        .await
        .expect_err("body differs");
    assert_eq!(
        (e.reason(), e.to_string()),
        ("body", "body does not match /^ready/".into())
    );

    let not_http = server(Answer::Bytes(b"SSH-2.0-OpenSSH\r\n"), None).await;
    let e = probe(&plain, &target(not_http), TIMEOUT)
        .await
        .expect_err("not HTTP");
    assert_eq!(e.reason(), "http", "{e}");
}

#[tokio::test]
async fn a_silent_or_trickling_server_fails_at_the_timeout() {
    let http = check("{type: http, body: healthy}", Path::new("."));
    let timeout = Duration::from_millis(1500);
    for reply in [Answer::Silence, Answer::Trickle(OK)] {
        let addr = server(reply, None).await;
        let start = Instant::now();
        let e = probe(&http, &target(addr), timeout)
            .await
            .expect_err("too slow");
        let took = start.elapsed();
        assert_eq!(e.reason(), "timeout", "{e}");
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(300),
            "{took:?}"
        );
    }
}

/// A private CA and what it issues, written as PEM files in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = params.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
        Pki { dir, ca, ca_key }
    }

    /// A server config with a certificate for `names`, valid until
    /// `not_after` (a year); returns it and the not-after in Unix seconds.
    fn server(&self, names: &[&str], not_after: i32) -> (Arc<rustls::ServerConfig>, i64) {
        self.server_of(names, not_after, rustls::DEFAULT_VERSIONS)
    }

    /// [`Pki::server`] speaking only `versions`.
    fn server_of(
        &self,
        names: &[&str],
        not_after: i32,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Arc<rustls::ServerConfig>, i64) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
        let expiry = params.not_after.unix_timestamp();
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("issue");
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        (Arc::new(config), expiry)
    }

    /// [`Pki::server`] speaking TLS 1.3 only, sending `tickets` session
    /// tickets after each handshake.
    fn tls13_server(&self, names: &[&str], tickets: usize) -> (Arc<rustls::ServerConfig>, i64) {
        let (tls, expiry) = self.server_of(names, 2090, &[&rustls::version::TLS13]);
        let mut tls = rustls::ServerConfig::clone(&tls);
        tls.send_tls13_tickets = tickets;
        (Arc::new(tls), expiry)
    }
}

#[tokio::test]
async fn https_verifies_against_the_private_ca_by_server_name() {
    let pki = Pki::new("lab CA");
    let (tls, expiry) = pki.server(&["rs1.lab.test"], 2090);
    let addr = server(Answer::Bytes(OK), Some(tls)).await;
    let good = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    let success = probe(&good, &target(addr), TIMEOUT)
        .await
        .expect("verified");
    assert_eq!(
        success,
        Success {
            status: Some(200),
            cert_not_after: Some(expiry),
            handshake: Some(Handshake::Full),
            weight: None,
        }
    );

    // The Host header names the server when server_name is not set.
    let by_host = check(
        "{type: https, ca_file: ca.pem, host: \"rs1.lab.test:443\"}",
        pki.dir.path(),
    );
    probe(&by_host, &target(addr), TIMEOUT)
        .await
        .expect("verified by Host");

    let wrong_name = check(
        "{type: https, ca_file: ca.pem, server_name: rs2.lab.test}",
        pki.dir.path(),
    );
    let e = probe(&wrong_name, &target(addr), TIMEOUT)
        .await
        .expect_err("wrong name");
    assert_eq!(e.reason(), "tls_bad_name", "{e}");
    assert!(
        e.to_string()
            .starts_with("TLS: certificate not valid for rs2.lab.test: "),
        "{e}"
    );

    // By IP with no name at all: the certificate has no IP address in it.
    let by_ip = check("{type: https, ca_file: ca.pem}", pki.dir.path());
    let e = probe(&by_ip, &target(addr), TIMEOUT)
        .await
        .expect_err("IP not in cert");
    assert_eq!(e.reason(), "tls_bad_name", "{e}");

    let other = Pki::new("another CA");
    let wrong_ca = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        other.dir.path(),
    );
    let e = probe(&wrong_ca, &target(addr), TIMEOUT)
        .await
        .expect_err("wrong CA");
    assert_eq!(e.reason(), "tls_unknown_ca", "{e}");

    let insecure = check(
        "{type: https, insecure_skip_verify: true}",
        other.dir.path(),
    );
    probe(&insecure, &target(addr), TIMEOUT)
        .await
        .expect("verification off");
}

#[tokio::test]
async fn https_reports_an_expired_certificate() {
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.server(&["rs1.lab.test"], 2021);
    let addr = server(Answer::Bytes(OK), Some(tls)).await;
    let c = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    let e = probe(&c, &target(addr), TIMEOUT)
        .await
        .expect_err("expired");
    assert_eq!(e.reason(), "tls_expired", "{e}");
}

#[tokio::test]
async fn https_status_is_judged_after_the_handshake() {
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.server(&["rs1.lab.test"], 2090);
    let addr = server(Answer::Bytes(ERROR), Some(tls)).await;
    let c = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    let e = probe(&c, &target(addr), TIMEOUT).await.expect_err("500");
    assert_eq!(e.reason(), "status", "{e}");
}

#[tokio::test]
async fn phases_are_timed_apart() {
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.server(&["rs1.lab.test"], 2090);
    let plain = server(Answer::Bytes(OK), None).await;
    let secure = server(Answer::Bytes(OK), Some(tls)).await;
    let http = check("{type: http}", Path::new("."));
    let https = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    let tcp = check("{type: tcp}", Path::new("."));

    let outcome = Prober::new(tcp, target(plain)).probe(TIMEOUT).await;
    outcome.result.expect("tcp");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Connect]);

    let outcome = Prober::new(http.clone(), target(plain))
        .probe(TIMEOUT)
        .await;
    outcome.result.expect("http");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Connect, Phase::Response]);

    let outcome = Prober::new(https, target(secure)).probe(TIMEOUT).await;
    outcome.result.expect("https");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Connect, Phase::Tls, Phase::Response]);
    assert_eq!(
        outcome.phases.total(),
        outcome.phases.iter().map(|(_, d)| d).sum::<Duration>()
    );

    // Refused: only the connect phase, and it failed.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed_addr = closed.local_addr().expect("address");
    drop(closed);
    let outcome = Prober::new(http.clone(), target(closed_addr))
        .probe(TIMEOUT)
        .await;
    assert_eq!(outcome.result.expect_err("refused").reason(), "connect");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Connect]);

    // A silent server: the response phase runs until the timeout.
    let silent = server(Answer::Silence, None).await;
    let timeout = Duration::from_millis(700);
    let outcome = Prober::new(http, target(silent)).probe(timeout).await;
    assert_eq!(outcome.result.expect_err("silent").reason(), "timeout");
    let connect = outcome.phases.get(Phase::Connect).expect("connected");
    let response = outcome.phases.get(Phase::Response).expect("waited");
    assert!(connect < Duration::from_millis(100), "{connect:?}");
    assert!(
        connect + response >= timeout && response < timeout + Duration::from_millis(200),
        "{response:?}"
    );
    assert_eq!(outcome.phases.get(Phase::Tls), None);
}

#[tokio::test]
async fn https_resumes_sessions_and_makes_a_full_handshake_after_the_interval() {
    let pki = Pki::new("lab CA");
    let (first, first_expiry) = pki.server(&["rs1.lab.test"], 2090);
    let tls: Swappable = Arc::new(std::sync::Mutex::new(first.clone()));
    let addr = swappable_server(Answer::Bytes(OK), Some(tls.clone())).await;
    let c = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test, full_handshake_interval: 1m}",
        pki.dir.path(),
    );
    let mut prober = Prober::new(c, target(addr));
    let t0 = std::time::Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let handshake = |s: &Success| (s.handshake, s.cert_not_after);

    // The daemon asks before each probe whether it will be a full
    // handshake (those wait for their turn): each answer matches the
    // handshake made.
    assert!(prober.full_handshake_due(at(0)));
    let s = prober.probe_at(TIMEOUT, at(0)).await.result.expect("first");
    assert_eq!(handshake(&s), (Some(Handshake::Full), Some(first_expiry)));
    assert!(!prober.full_handshake_due(at(1)));
    assert!(prober.full_handshake_due(at(60)));
    let s = prober
        .probe_at(TIMEOUT, at(1))
        .await
        .result
        .expect("second");
    assert_eq!(handshake(&s), (Some(Handshake::Resumed), None));

    // The server gets a new certificate (same session cache): resumed
    // sessions do not show it, the full handshake after the interval does.
    let (renewed, renewed_expiry) = pki.server(&["rs1.lab.test"], 2091);
    let mut renewed = rustls::ServerConfig::clone(&renewed);
    renewed.session_storage = first.session_storage.clone();
    *tls.lock().expect("lock") = Arc::new(renewed);
    let s = prober
        .probe_at(TIMEOUT, at(30))
        .await
        .result
        .expect("resumed");
    assert_eq!(handshake(&s), (Some(Handshake::Resumed), None));
    let s = prober.probe_at(TIMEOUT, at(60)).await.result.expect("full");
    assert_eq!(handshake(&s), (Some(Handshake::Full), Some(renewed_expiry)));
    let s = prober
        .probe_at(TIMEOUT, at(61))
        .await
        .result
        .expect("resumed");
    assert_eq!(handshake(&s), (Some(Handshake::Resumed), None));

    // An expired certificate is found at the next full handshake...
    let (expired, _) = pki.server(&["rs1.lab.test"], 2021);
    let mut expired = rustls::ServerConfig::clone(&expired);
    expired.session_storage = first.session_storage.clone();
    *tls.lock().expect("lock") = Arc::new(expired);
    let s = prober
        .probe_at(TIMEOUT, at(90))
        .await
        .result
        .expect("resumed");
    assert_eq!(handshake(&s), (Some(Handshake::Resumed), None));
    let e = prober
        .probe_at(TIMEOUT, at(121))
        .await
        .result
        .expect_err("expired");
    assert_eq!(e.reason(), "tls_expired", "{e}");
    // ...and after a failure no session is resumed.
    assert!(prober.full_handshake_due(at(122)));
    let e = prober
        .probe_at(TIMEOUT, at(122))
        .await
        .result
        .expect_err("still expired");
    assert_eq!(e.reason(), "tls_expired", "{e}");
    *tls.lock().expect("lock") = first;
    let s = prober
        .probe_at(TIMEOUT, at(123))
        .await
        .result
        .expect("back");
    assert_eq!(handshake(&s), (Some(Handshake::Full), Some(first_expiry)));
}

#[tokio::test]
async fn a_tls12_session_is_resumed_without_a_key_share_and_tls13_is_offered_at_each_full_handshake(
) {
    let pki = Pki::new("lab CA");
    let (tls12, _) = pki.server_of(&["rs1.lab.test"], 2090, &[&rustls::version::TLS12]);
    let tls: Swappable = Arc::new(std::sync::Mutex::new(tls12));
    let hellos: Hellos = Arc::default();
    let addr = serve(Answer::Bytes(OK), Some(tls.clone()), Some(hellos.clone())).await;
    let c = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test, full_handshake_interval: 1m}",
        pki.dir.path(),
    );
    let mut prober = Prober::new(c, target(addr));
    let t0 = std::time::Instant::now();
    let mut probe_at = async |secs: u64| {
        let at = t0 + Duration::from_secs(secs);
        let s = prober.probe_at(TIMEOUT, at).await.result.expect("healthy");
        let hello = hellos.lock().expect("lock").drain(..).collect::<Vec<_>>();
        (s.handshake, hello)
    };
    let tls13 = vec![Offer {
        tls13: true,
        key_share: true,
    }];
    let tls12_only = vec![Offer {
        tls13: false,
        key_share: false,
    }];
    // The first handshake offers TLS 1.3 too; the server takes TLS 1.2,
    // whose session is resumed offering TLS 1.2 only.
    assert_eq!(probe_at(0).await, (Some(Handshake::Full), tls13.clone()));
    assert_eq!(
        probe_at(1).await,
        (Some(Handshake::Resumed), tls12_only.clone())
    );
    assert_eq!(
        probe_at(2).await,
        (Some(Handshake::Resumed), tls12_only.clone())
    );
    // A full handshake due offers every version again.
    assert_eq!(probe_at(60).await, (Some(Handshake::Full), tls13.clone()));
    assert_eq!(
        probe_at(61).await,
        (Some(Handshake::Resumed), tls12_only.clone())
    );
    // The server moves to TLS 1.3 only: it refuses the TLS 1.2-only offer,
    // and the same probe makes a full handshake offering both.
    *tls.lock().expect("lock") = pki
        .server_of(&["rs1.lab.test"], 2090, &[&rustls::version::TLS13])
        .0;
    assert_eq!(
        probe_at(62).await,
        (Some(Handshake::Full), [tls12_only, tls13.clone()].concat())
    );
    // A TLS 1.3 session is resumed with a key share: rustls resumes TLS
    // 1.3 with a key exchange only (psk_dhe_ke).
    assert_eq!(probe_at(63).await, (Some(Handshake::Resumed), tls13));
}

#[tokio::test]
async fn https_sessions_are_not_shared_between_real_servers() {
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.server(&["rs.lab.test"], 2090);
    let a = server(Answer::Bytes(OK), Some(tls.clone())).await;
    let b = server(Answer::Bytes(OK), Some(tls)).await;
    let c = check(
        "{type: https, ca_file: ca.pem, server_name: rs.lab.test}",
        pki.dir.path(),
    );
    let mut first = Prober::new(c.clone(), target(a));
    let mut second = Prober::new(c, target(b));
    let s = first.probe(TIMEOUT).await.result.expect("a");
    assert_eq!(s.handshake, Some(Handshake::Full));
    // Same name, same server configuration: still a full handshake for b.
    let s = second.probe(TIMEOUT).await.result.expect("b");
    assert_eq!(s.handshake, Some(Handshake::Full));
    let s = first.probe(TIMEOUT).await.result.expect("a again");
    assert_eq!(s.handshake, Some(Handshake::Resumed));
}

/// A TLS server answering its `n`th connection (from 0) as `reply(n)`
/// says; `None` for no TLS answer at all (the ClientHello left unread).
async fn tls_server_by_connection(
    tls: Arc<rustls::ServerConfig>,
    reply: fn(usize) -> Option<Answer>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                match reply(n) {
                    Some(reply) => {
                        if let Some(s) = accepted(tcp, Some(tls)).await {
                            answer(s, reply).await;
                        }
                    }
                    None => {
                        let _held = tcp;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    addr
}

/// A timeout after a resumed handshake keeps the session; one after a full
/// handshake does not: the certificate's expiry comes with a successful
/// probe, and the next one makes the full handshake again to give it.
#[tokio::test]
async fn https_keeps_its_session_across_a_timeout_unless_the_handshake_was_full() {
    let pki = Pki::new("lab CA");
    let (tls, expiry) = pki.server(&["rs1.lab.test"], 2090);
    // The first and fourth connections get no answer; the others the 200.
    let addr = tls_server_by_connection(tls, |n| {
        Some(if n == 0 || n == 3 {
            Answer::Silence
        } else {
            Answer::Bytes(OK)
        })
    })
    .await;
    let c = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    let mut prober = Prober::new(c, target(addr));
    let timeout = Duration::from_millis(500);
    let kind = |o: Outcome| o.result.map(|s| (s.handshake, s.cert_not_after));
    let e = kind(prober.probe(timeout).await).expect_err("silent");
    assert_eq!(e.reason(), "timeout");
    assert_eq!(
        kind(prober.probe(timeout).await).ok(),
        Some((Some(Handshake::Full), Some(expiry)))
    );
    assert_eq!(
        kind(prober.probe(timeout).await).ok(),
        Some((Some(Handshake::Resumed), None))
    );
    let e = kind(prober.probe(timeout).await).expect_err("silent");
    assert_eq!(e.reason(), "timeout");
    assert_eq!(
        kind(prober.probe(timeout).await).ok(),
        Some((Some(Handshake::Resumed), None))
    );
}

/// A TLS 1.3 ticket serves once, and the next comes after the
/// handshake: probes that time out spend the tickets, and then the full
/// handshake the next probe makes is due as one (it waits for its turn).
#[tokio::test]
async fn a_tls13_session_without_a_ticket_left_is_due_for_a_full_handshake() {
    let pki = Pki::new("lab CA");
    let (tls, expiry) = pki.tls13_server(&["rs1.lab.test"], 2);
    // The second and third connections get no TLS answer at all.
    let addr =
        tls_server_by_connection(tls, |n| (n != 1 && n != 2).then_some(Answer::Bytes(OK))).await;
    let c = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test, full_handshake_interval: 1h}",
        pki.dir.path(),
    );
    let mut prober = Prober::new(c, target(addr));
    let timeout = Duration::from_millis(500);
    let t0 = std::time::Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let kind = |o: Outcome| o.result.map(|s| (s.handshake, s.cert_not_after));
    assert!(prober.full_handshake_due(at(0)));
    assert_eq!(
        kind(prober.probe_at(timeout, at(0)).await).ok(),
        Some((Some(Handshake::Full), Some(expiry)))
    );
    // Two tickets: the first silent probe leaves one.
    assert!(!prober.full_handshake_due(at(1)));
    let e = kind(prober.probe_at(timeout, at(1)).await).expect_err("silent");
    assert_eq!(e.reason(), "timeout");
    assert!(!prober.full_handshake_due(at(2)));
    let e = kind(prober.probe_at(timeout, at(2)).await).expect_err("silent");
    assert_eq!(e.reason(), "timeout");
    // None left: due, and the probe makes it.
    assert!(prober.full_handshake_due(at(3)));
    assert_eq!(
        kind(prober.probe_at(timeout, at(3)).await).ok(),
        Some((Some(Handshake::Full), Some(expiry)))
    );
    assert!(!prober.full_handshake_due(at(4)));
    assert_eq!(
        kind(prober.probe_at(timeout, at(4)).await).ok(),
        Some((Some(Handshake::Resumed), None))
    );
}

/// A TLS 1.3 server that sends no ticket: every probe over a new
/// connection is a full handshake, due as one; a kept connection
/// (`keep_alive`) needs none until it is that old.
#[tokio::test]
async fn a_tls13_server_without_tickets_is_due_for_a_full_handshake_unless_a_connection_is_kept() {
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.tls13_server(&["rs1.lab.test"], 0);
    let t0 = std::time::Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);

    let addr = server(Answer::Bytes(OK), Some(tls.clone())).await;
    let mut each = Prober::new(
        check(
            "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
            pki.dir.path(),
        ),
        target(addr),
    );
    for secs in 0..3 {
        assert!(each.full_handshake_due(at(secs)), "at {secs} s");
        let s = each.probe_at(TIMEOUT, at(secs)).await.result.expect("full");
        assert_eq!(s.handshake, Some(Handshake::Full), "at {secs} s");
    }

    let server = KeptServer::start(Some(tls), usize::MAX).await;
    let mut kept = Prober::new(
        check(
            "{type: https, ca_file: ca.pem, server_name: rs1.lab.test, keep_alive: 10s}",
            pki.dir.path(),
        ),
        target(server.addr),
    );
    assert!(kept.full_handshake_due(at(0)));
    let s = kept.probe_at(TIMEOUT, at(0)).await.result.expect("full");
    assert_eq!(s.handshake, Some(Handshake::Full));
    for secs in [1, 2, 9] {
        assert!(!kept.full_handshake_due(at(secs)), "at {secs} s");
        let s = kept.probe_at(TIMEOUT, at(secs)).await.result.expect("kept");
        assert_eq!(s.handshake, None, "at {secs} s");
    }
    assert_eq!(server.counts(), (1, 4));
    // 10 s old: a new connection, and with no ticket a full handshake.
    assert!(kept.full_handshake_due(at(10)));
    let s = kept.probe_at(TIMEOUT, at(10)).await.result.expect("full");
    assert_eq!(s.handshake, Some(Handshake::Full));
    assert_eq!(server.counts(), (2, 5));
}

/// A probe whose first bytes are the checker's sends its handshake's last
/// ACK with them: the server's end of the connection has received two
/// segments when the first bytes are there (the SYN, then the ACK with
/// them), not three. A `tcp` check, which sends nothing, acknowledges at
/// once, or the server would not see the connection made.
#[tokio::test]
async fn the_handshakes_last_ack_goes_with_the_checkers_first_bytes() {
    use std::os::fd::AsFd;
    let pki = Pki::new("lab CA");
    for (yaml, sends) in [
        ("{type: http}", true),
        (
            "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
            true,
        ),
        ("{type: dns, name: www.lab.test, transport: tcp}", true),
        ("{type: tcp}", false),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut prober = Prober::new(check(yaml, pki.dir.path()), target(addr));
        let probe = tokio::spawn(async move { prober.probe(TIMEOUT).await });
        // A `tcp` check resets its connection as soon as it is made: had
        // it kept back its ACK, the server would have nothing to accept.
        let (tcp, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("a connection made")
            .expect("accept");
        if sends {
            tcp.peek(&mut [0u8; 1]).await.expect("first bytes");
            let segments = crate::prober::watch::segments_received(&tcp.as_fd());
            assert_eq!(segments, Some(2), "{yaml}");
        }
        drop(tcp);
        let _ = probe.await;
    }
}

/// What the server sees after its answer: `true` for a reset, `false`
/// for an orderly close (FIN).
async fn closed_with_reset(tls: Option<Arc<rustls::ServerConfig>>, check: &Arc<Check>) -> bool {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut stream = accepted(tcp, tls).await.expect("handshake");
        read_head(&mut stream).await;
        stream.write_all(OK).await.expect("answer");
        stream.flush().await.expect("flush");
        let mut rest = [0u8; 64];
        loop {
            match stream.read(&mut rest).await {
                Ok(0) => return false,
                Ok(_) => continue,
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                    return true;
                }
            }
        }
    });
    probe(check, &target(addr), TIMEOUT).await.expect("healthy");
    server.await.expect("server")
}

#[tokio::test]
async fn connections_are_closed_with_a_reset_after_the_answer() {
    let http = check("{type: http, body: healthy}", Path::new("."));
    assert!(closed_with_reset(None, &http).await, "HTTP");
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.server(&["rs1.lab.test"], 2090);
    let https = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    assert!(closed_with_reset(Some(tls), &https).await, "HTTPS");

    // A TCP check resets right after the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let tcp = check("{type: tcp}", Path::new("."));
    probe(&tcp, &target(addr), TIMEOUT)
        .await
        .expect("listening");
    let (mut accepted, _) = listener.accept().await.expect("accept");
    let e = accepted.read(&mut [0u8; 8]).await.expect_err("reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
}

const OK_KEPT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\n";

/// A probe's request does not ask the server to close, and the probe
/// never waits for a close: the answer is judged as far as its framing
/// (a length, or chunks) says, on a connection the server keeps open,
/// over TCP and over TLS. Waiting for the close would be a timeout.
#[tokio::test]
async fn an_answer_is_judged_by_its_framing_on_a_connection_the_server_keeps_open() {
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nheal\r\n4\r\nthy\n\r\n0\r\n\r\n";
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.server(&["rs1.lab.test"], 2090);
    let http = check("{type: http, body: healthy}", Path::new("."));
    let https = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test, body: healthy}",
        pki.dir.path(),
    );
    for bytes in [OK_KEPT, CHUNKED] {
        let addr = server(Answer::Kept(bytes), None).await;
        probe(&http, &target(addr), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("HTTP, {:?}: {e}", String::from_utf8_lossy(bytes)));
        let addr = server(Answer::Kept(bytes), Some(tls.clone())).await;
        probe(&https, &target(addr), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("HTTPS, {:?}: {e}", String::from_utf8_lossy(bytes)));
    }
}

/// A keep-alive HTTP server on 127.0.0.1 (over TLS when given): answers
/// each request of a connection with `OK_KEPT`, and closes the connection
/// after `per_connection` requests; counts connections and requests.
/// Dropping it stops it, open connections included.
struct KeptServer {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl KeptServer {
    async fn start(tls: Option<Arc<rustls::ServerConfig>>, per_connection: usize) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            let mut open = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (tls, r) = (tls.clone(), r.clone());
                open.spawn(async move {
                    let Some(mut stream) = accepted(tcp, tls).await else {
                        return;
                    };
                    for _ in 0..per_connection {
                        if !read_head(&mut stream).await {
                            return;
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(OK_KEPT).await.is_err() || stream.flush().await.is_err()
                        {
                            return;
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        KeptServer {
            addr,
            connections,
            requests,
            task,
        }
    }

    /// Connections accepted and requests answered so far.
    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        (
            self.connections.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
        )
    }
}

impl Drop for KeptServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn keep_alive_sends_the_probes_over_one_connection_until_it_is_that_old() {
    let server = KeptServer::start(None, usize::MAX).await;
    let mut prober = Prober::new(
        check(
            "{type: http, body: healthy, keep_alive: 10s}",
            Path::new("."),
        ),
        target(server.addr),
    );
    let t0 = std::time::Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    for s in [0, 1, 2, 9] {
        let outcome = prober.probe_at(TIMEOUT, at(s)).await;
        outcome.result.expect("healthy");
        // Only the first probe made a connection.
        assert_eq!(
            outcome.phases.get(Phase::Connect).is_some(),
            s == 0,
            "at {s} s"
        );
        assert!(outcome.phases.get(Phase::Response).is_some());
    }
    assert_eq!(server.counts(), (1, 4));
    // 10 s old: a new connection.
    prober
        .probe_at(TIMEOUT, at(10))
        .await
        .result
        .expect("healthy");
    prober
        .probe_at(TIMEOUT, at(11))
        .await
        .result
        .expect("healthy");
    assert_eq!(server.counts(), (2, 6));

    // Without keep_alive, a connection per probe, each asked to close.
    let mut each = Prober::new(
        check("{type: http, body: healthy}", Path::new(".")),
        target(server.addr),
    );
    for s in 0..3 {
        each.probe_at(TIMEOUT, at(s)).await.result.expect("healthy");
    }
    assert_eq!(server.counts(), (5, 9));
}

#[tokio::test]
async fn keep_alive_goes_on_over_a_new_connection_when_the_server_closed_the_kept_one() {
    // The server closes each connection after one answer, without saying
    // so (no `Connection: close`): the next probe finds it closed, and
    // succeeds over a new one.
    let server = KeptServer::start(None, 1).await;
    let mut prober = Prober::new(
        check("{type: http, keep_alive: 1m}", Path::new(".")),
        target(server.addr),
    );
    for _ in 0..3 {
        prober.probe(TIMEOUT).await.result.expect("healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.counts(), (3, 3));
    // The close not yet seen when the request goes: still healthy.
    prober.probe(TIMEOUT).await.result.expect("healthy");
    prober.probe(TIMEOUT).await.result.expect("healthy");
    assert_eq!(server.counts(), (5, 5));
}

#[tokio::test]
async fn keep_alive_sees_a_stopped_server_at_the_next_probe() {
    let server = KeptServer::start(None, usize::MAX).await;
    let addr = server.addr;
    let mut prober = Prober::new(
        check("{type: http, keep_alive: 1m}", Path::new(".")),
        target(addr),
    );
    prober.probe(TIMEOUT).await.result.expect("healthy");
    prober.probe(TIMEOUT).await.result.expect("healthy");
    assert_eq!(server.counts(), (1, 2));
    // The server stops: its listener and the kept connection close.
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = prober.probe(TIMEOUT).await.result.expect_err("stopped");
    assert_eq!(e.reason(), "connect", "{e}");

    // A failed answer ends the kept connection: the next probe connects.
    let server = KeptServer::start(None, usize::MAX).await;
    let mut strict = Prober::new(
        check("{type: http, body: sick, keep_alive: 1m}", Path::new(".")),
        target(server.addr),
    );
    for _ in 0..2 {
        let e = strict.probe(TIMEOUT).await.result.expect_err("body");
        assert_eq!(e.reason(), "body", "{e}");
    }
    assert_eq!(server.counts(), (2, 2));
}

#[tokio::test]
async fn https_keep_alive_makes_one_handshake_and_a_new_one_when_a_full_handshake_is_due() {
    let pki = Pki::new("lab CA");
    let (tls, expiry) = pki.server(&["rs1.lab.test"], 2090);
    let server = KeptServer::start(Some(tls), usize::MAX).await;
    let mut prober = Prober::new(
        check(
            "{type: https, ca_file: ca.pem, server_name: rs1.lab.test, keep_alive: 10m, full_handshake_interval: 1m}",
            pki.dir.path(),
        ),
        target(server.addr),
    );
    let t0 = std::time::Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let first = prober.probe_at(TIMEOUT, at(0)).await;
    let s = first.result.expect("verified");
    assert_eq!(
        (s.handshake, s.cert_not_after),
        (Some(Handshake::Full), Some(expiry))
    );
    assert!(first.phases.get(Phase::Tls).is_some());
    for secs in [1, 2, 59] {
        let o = prober.probe_at(TIMEOUT, at(secs)).await;
        let s = o.result.expect("kept");
        assert_eq!(s.handshake, None, "no handshake at {secs} s");
        assert_eq!(
            (o.phases.get(Phase::Connect), o.phases.get(Phase::Tls)),
            (None, None)
        );
    }
    assert_eq!(server.counts(), (1, 4));
    // The full handshake due ends the kept connection, although younger
    // than keep_alive: the certificate is verified again.
    let s = prober
        .probe_at(TIMEOUT, at(60))
        .await
        .result
        .expect("verified");
    assert_eq!(
        (s.handshake, s.cert_not_after),
        (Some(Handshake::Full), Some(expiry))
    );
    assert_eq!(server.counts(), (2, 5));
}

/// An HTTPS server on 127.0.0.1 that counts the connections it accepts.
async fn counting_server(
    tls: Arc<rustls::ServerConfig>,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepts.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let tls = tls.clone();
            tokio::spawn(async move {
                if let Some(stream) = accepted(tcp, Some(tls)).await {
                    answer(stream, Answer::Bytes(OK)).await
                }
            });
        }
    });
    (addr, accepts)
}

#[tokio::test]
async fn a_refusing_server_is_found_by_the_connection_made_ahead() {
    let pki = Pki::new("lab CA");
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let https = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    let mut prober = Prober::new(https, target(addr));
    assert!(prober.full_handshake_due(Instant::now()));
    let outcome = prober
        .connect_ahead(TIMEOUT)
        .await
        .expect("the probe ends at the connect");
    let e = outcome.result.expect_err("refused");
    assert_eq!(e.reason(), "connect", "{e}");
    assert!(outcome.phases.get(Phase::Connect).is_some());
}

#[tokio::test]
async fn a_probe_goes_on_over_the_connection_made_ahead_unless_it_waited_too_long() {
    let pki = Pki::new("lab CA");
    let (tls, _) = pki.server(&["rs1.lab.test"], 2090);
    let (addr, accepts) = counting_server(tls).await;
    let https = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        pki.dir.path(),
    );
    let mut prober = Prober::new(https.clone(), target(addr));
    assert!(prober.connect_ahead(TIMEOUT).await.is_none(), "connected");
    let outcome = prober.probe(TIMEOUT).await;
    let success = outcome
        .result
        .expect("verified over the connection made ahead");
    assert_eq!(success.handshake, Some(Handshake::Full));
    assert!(outcome.phases.get(Phase::Connect).is_some());
    assert!(outcome.phases.get(Phase::Tls).is_some());
    assert_eq!(accepts.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A turn that came later than the timeout: a new connection.
    let mut prober = Prober::new(https, target(addr));
    assert!(prober.connect_ahead(TIMEOUT).await.is_none(), "connected");
    prober
        .probe_at(TIMEOUT, Instant::now() + TIMEOUT)
        .await
        .result
        .expect("verified over a new connection");
    assert_eq!(accepts.load(std::sync::atomic::Ordering::SeqCst), 3);
}

mod body_md5;
mod checks;
mod dns;
mod flights;
mod framing;
mod icmp;
mod kept_socket;
mod late;
mod reasons;
mod udp;

#[tokio::test]
async fn through_the_vip_the_socket_carries_the_mark_from_the_address_toward_the_real_server() {
    use crate::config::Through;
    let addr = server(Answer::Silence, None).await;
    let through = Through {
        real_server: addr.ip(),
        forward: ipvs::ForwardMethod::DirectRoute,
        mark: 0x4950_0000,
    };
    // The route to 127.0.0.1 goes from 127.0.0.1.
    let vip: std::net::IpAddr = "198.18.0.10".parse().expect("address");
    assert_eq!(
        super::tcp::source_toward(through, vip).expect("a route"),
        addr.ip()
    );
    let e = super::tcp::source_toward(through, addr.ip()).expect_err("the VIP itself");
    assert_eq!(
        e.to_string(),
        "the route to real server 127.0.0.1 has the VIP 127.0.0.1 as its source: set source_address to the director's own address toward it"
    );
    // Unprivileged, SO_MARK is refused, and the error says what it needs.
    let tcp = check("{type: tcp}", Path::new("."));
    let marked = Target {
        addr,
        source: None,
        through: Some(through),
    };
    let e = probe(&tcp, &marked, TIMEOUT).await.expect_err("no source");
    if e.to_string().contains("SO_MARK") {
        assert_eq!(
            e.to_string(),
            "connect: setting the probe service's mark (SO_MARK) needs CAP_NET_ADMIN: Operation not permitted (os error 1)"
        );
        return;
    }
    // Privileged: the source the route gives is the "VIP" here, refused
    // rather than left to time out; with source_address set, and no
    // probe service for the mark, the connection goes where its address
    // says, the listener.
    assert_eq!(e.reason(), "connect", "{e}");
    assert!(
        e.to_string().contains("as its source: set source_address"),
        "{e}"
    );
    let from = Target {
        source: Some(addr.ip()),
        ..marked
    };
    probe(&tcp, &from, TIMEOUT)
        .await
        .expect("marked, from 127.0.0.1");
}

/// A probe's future is as large as that of its largest check type, for
/// every check type alike: the large ones (TLS state, a program's
/// handling, kilobytes each) are boxed, so that a TCP or DNS probe, and
/// every real server's task while one is in flight, stays small. Unboxed,
/// exec's made every probe's 17 KB in a release build, 35 KB in a test
/// build (6 KB boxed).
#[test]
fn a_probes_future_stays_small_whatever_the_largest_check_type() {
    let dir = tempfile::tempdir().expect("dir");
    for yaml in ["{type: tcp}", "{type: dns, name: www.lab.test}"] {
        let mut prober = Prober::new(
            check(yaml, dir.path()),
            target(SocketAddr::from(([127, 0, 0, 1], 9))),
        );
        let future = prober.probe(Duration::from_secs(1));
        let size = std::mem::size_of_val(&future);
        assert!(size <= 8192, "{yaml}: a probe's future of {size} bytes");
    }
}
