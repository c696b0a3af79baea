//! The server against real clients on 127.0.0.1, with certificates made
//! here: TLS, mutual TLS, basic auth, slow clients, plain HTTP to a TLS
//! port, graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::{Limits, Server, WebConfig};

/// A CA and certificates it signed, written to a fresh folder.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("ipvs-web-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut ca_params = CertificateParams::new(vec![]).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("key");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let server_key = KeyPair::generate().expect("key");
        let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params")
            .signed_by(&server_key, &ca, &ca_key)
            .expect("server cert");
        let client_key = KeyPair::generate().expect("key");
        let client = CertificateParams::new(vec!["prometheus".into()])
            .expect("params")
            .signed_by(&client_key, &ca, &ca_key)
            .expect("client cert");
        std::fs::write(dir.join("ca.crt"), ca.pem()).expect("write");
        std::fs::write(dir.join("server.crt"), server.pem()).expect("write");
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).expect("write");
        Pki {
            dir,
            ca_pem: ca.pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// A web config in the folder, relative paths and all.
    fn config(&self, yaml: &str) -> WebConfig {
        let path = self.dir.join("web.yml");
        std::fs::write(&path, yaml).expect("write");
        WebConfig::load(&path).expect("valid config")
    }

    fn client(&self, with_cert: bool) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(ca.expect("pem")).expect("root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = if with_cert {
            let certs = CertificateDer::pem_slice_iter(self.client_cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("pem");
            let key = PrivateKeyDer::from_pem_slice(self.client_key_pem.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn hello(_request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"hello\n")))
}

/// Starts a server on 127.0.0.1; the sender stops it, the handle ends
/// when it has stopped.
async fn start(
    config: WebConfig,
    limits: Limits,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    start_serving(config, limits, hello).await
}

/// Starts a server with `handler` on 127.0.0.1.
async fn start_serving<H, F, B>(
    config: WebConfig,
    limits: Limits,
    handler: H,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>)
where
    H: Fn(Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let server = Server::bind("127.0.0.1:0".parse().expect("addr"), &config, limits)
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(handler, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

/// Sends one GET and returns the whole answer as text.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| {
            use base64::Engine;
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(a)
            )
        })
        .unwrap_or_default();
    let request = format!("GET / HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn tls_yaml(extra: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
}

#[tokio::test]
async fn tls_and_basic_auth() {
    let pki = Pki::new("auth");
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let config = pki.config(&format!(
        "{}basic_auth_users:\n  prometheus: {hash}\n",
        tls_yaml("")
    ));
    let (addr, stop, task) = start(config, Limits::default()).await;
    let connector = pki.client(false);
    let connect = || async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        connector
            .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
            .await
            .expect("TLS handshake")
    };

    let answer = get(connect().await, Some("prometheus:s3cret")).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello\n"), "{answer}");

    for credentials in [Some("prometheus:wrong"), Some("nobody:s3cret"), None] {
        let answer = get(connect().await, credentials).await;
        assert!(
            answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{credentials:?}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("www-authenticate: basic realm=\"ipvs\", charset=\"utf-8\"\r\n"),
            "{answer}"
        );
    }

    // Plain HTTP to the TLS port: no HTTP answer, the connection closes
    // promptly, and the server goes on serving TLS.
    let started = Instant::now();
    let plain = TcpStream::connect(addr).await.expect("connect");
    let answer = tokio::time::timeout(Duration::from_secs(5), get(plain, None))
        .await
        .expect("closed promptly");
    assert!(!answer.contains("HTTP/1.1"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let answer = get(connect().await, Some("prometheus:s3cret")).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    stop.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stopped")
        .expect("no panic");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new("mtls");
    let config = pki.config(&tls_yaml(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n",
    ));
    let (addr, stop, _task) = start(config, Limits::default()).await;
    let name = || ServerName::try_from("127.0.0.1").expect("name");

    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = pki.client(true).connect(name(), tcp).await.expect("mTLS");
    let answer = get(tls, None).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    // Without a certificate, TLS 1.3 reports the refusal on first read.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let refused = match pki.client(false).connect(name(), tcp).await {
        Err(_) => true,
        Ok(tls) => !get(tls, None).await.contains("HTTP/1.1 200"),
    };
    assert!(refused, "a client without a certificate was served");
    let _ = stop.send(());
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off() {
    let limits = Limits {
        header_read: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, stop, _task) = start(WebConfig::plain(), limits).await;

    // Half a request head, then nothing.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: te")
        .await
        .expect("write");
    // Nothing at all.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    for stream in [&mut slow, &mut silent] {
        let started = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "connection still open after 5 s");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    // A normal client still gets its answer.
    let answer = get(TcpStream::connect(addr).await.expect("connect"), None).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let _ = stop.send(());
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let (addr, stop, task) = start(WebConfig::plain(), Limits::default()).await;
    // An idle keep-alive connection does not hold the shutdown up.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));

    stop.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stopped within 5 s")
        .expect("no panic");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[test]
fn listen_addresses_follow_the_exporters_convention() {
    let all = crate::listen_addresses(":10310").expect(":PORT");
    assert_eq!(
        all,
        vec![
            "[::]:10310".parse().expect("address"),
            "0.0.0.0:10310".parse().expect("address")
        ]
    );
    assert_eq!(
        crate::listen_addresses("[::1]:80").expect("IPv6"),
        vec!["[::1]:80".parse::<SocketAddr>().expect("address")]
    );
    let error = crate::listen_addresses(":http").expect_err("bad port");
    assert_eq!(
        error.to_string(),
        "--web.listen-address \":http\": invalid port"
    );
    let error = crate::listen_addresses("127.0.0.1").expect_err("no port");
    assert_eq!(
        error.to_string(),
        "--web.listen-address \"127.0.0.1\": not HOST:PORT"
    );
}

/// The async lookup reads a value as the blocking one does.
#[tokio::test]
async fn resolve_listen_address_is_listen_addresses_without_blocking() {
    for text in [":10310", "[::1]:80", "127.0.0.1:9", "localhost:10310"] {
        assert_eq!(
            crate::resolve_listen_address(text).await.expect(text),
            crate::listen_addresses(text).expect(text),
            "{text}"
        );
    }
    for text in [":http", "127.0.0.1", "no port"] {
        assert_eq!(
            crate::resolve_listen_address(text)
                .await
                .map_err(|e| e.to_string()),
            crate::listen_addresses(text).map_err(|e| e.to_string()),
            "{text}"
        );
    }
}

#[tokio::test]
async fn bind_listen_address_takes_the_first_that_binds_and_names_a_failure() {
    let web = WebConfig::plain();
    let server = Server::bind_listen_address("127.0.0.1:0", &web, Limits::default())
        .await
        .expect("bind");
    let taken = server.local_addr().expect("address");
    let error = Server::bind_listen_address(&taken.to_string(), &web, Limits::default())
        .await
        .expect_err("taken");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot listen on {taken}: ")),
        "{error}"
    );
    let error = Server::bind_first(&[], &web, Limits::default())
        .await
        .expect_err("nothing");
    assert_eq!(error.to_string(), "no address to listen on");
}

/// A streamed page: `size` bytes of a known pattern, written in small
/// writes on a blocking thread; `stop_at` drops the writer there instead
/// of finishing.
fn streamed_page(size: usize, stop_at: Option<usize>) -> Response<crate::stream::StreamedBody> {
    use std::io::Write;
    let (mut writer, body) = crate::stream::channel(4096, 2, Duration::from_secs(30));
    tokio::task::spawn_blocking(move || {
        let end = stop_at.unwrap_or(size);
        for offset in (0..end).step_by(100) {
            let line: Vec<u8> = (offset..(offset + 100).min(end))
                .map(|i| b'a' + (i % 26) as u8)
                .collect();
            if writer.write_all(&line).is_err() {
                return;
            }
        }
        if stop_at.is_none() {
            writer.finish().expect("finish");
        }
    });
    Response::new(body)
}

/// The body of a chunked answer, and whether its last chunk came.
fn dechunk(answer: &[u8]) -> (Vec<u8>, bool) {
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    let mut rest = &answer[head_end..];
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).expect("size"), 16)
            .expect("hex size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(rest);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

async fn get_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer
}

#[tokio::test]
async fn a_streamed_page_arrives_whole_in_pieces() {
    let size = 1_000_000;
    let config = WebConfig::plain();
    let (addr, stop, task) = start_serving(config, Limits::default(), move |_request| async move {
        streamed_page(size, None)
    })
    .await;
    let answer = get_bytes(addr).await;
    let head = String::from_utf8_lossy(&answer[..200]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    let (body, complete) = dechunk(&answer);
    assert!(complete, "the last chunk came");
    let expected: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(body.len(), expected.len());
    assert!(body == expected, "the bytes as written");
    stop.send(()).expect("stop");
    task.await.expect("no panic");
}

#[tokio::test]
async fn a_streamed_page_whose_writer_stops_early_is_cut_not_completed() {
    let config = WebConfig::plain();
    let (addr, stop, task) = start_serving(config, Limits::default(), |_request| async {
        streamed_page(1_000_000, Some(300_000))
    })
    .await;
    let answer = tokio::time::timeout(Duration::from_secs(10), get_bytes(addr))
        .await
        .expect("the connection is closed");
    let (body, complete) = dechunk(&answer);
    assert!(!complete, "no last chunk: the client sees a broken answer");
    assert!(body.len() <= 300_000, "{} bytes", body.len());
    stop.send(()).expect("stop");
    task.await.expect("no panic");
}

#[test]
fn a_writer_whose_body_is_gone_fails_with_broken_pipe() {
    use std::io::Write;
    let (mut writer, body) = crate::stream::channel(16, 1, Duration::from_secs(1));
    drop(body);
    let error = writer.write_all(&[0; 64]).expect_err("nobody reads");
    assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(error.to_string(), "the client went away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_times_the_writer_out() {
    use std::io::Write;
    let (report, reported) = std::sync::mpsc::channel::<std::io::Error>();
    let report = Arc::new(std::sync::Mutex::new(report));
    let config = WebConfig::plain();
    let (addr, stop, task) = start_serving(config, Limits::default(), move |_request| {
        let report = Arc::clone(&report);
        async move {
            let (mut writer, body) =
                crate::stream::channel(64 * 1024, 2, Duration::from_millis(300));
            tokio::task::spawn_blocking(move || {
                // Far more than the sockets' buffers hold.
                let piece = vec![b'x'; 64 * 1024];
                for _ in 0..4096 {
                    if let Err(error) = writer.write_all(&piece) {
                        let _ = report.lock().map(|r| r.send(error));
                        return;
                    }
                }
            });
            Response::new(body)
        }
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    // Read nothing: the server's writer must give up on its own.
    let error = tokio::task::spawn_blocking(move || reported.recv_timeout(Duration::from_secs(20)))
        .await
        .expect("join")
        .expect("the writer gave up");
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
    assert_eq!(error.to_string(), "the client read nothing for 300ms");
    drop(stream);
    stop.send(()).expect("stop");
    task.await.expect("no panic");
}

/// With `limits` allowing two connections at once, a third is answered
/// only after one of the first two closes.
async fn a_third_connection_waits_until_one_closes(limits: Limits) {
    let (addr, stop, _task) = start(WebConfig::plain(), limits).await;
    let first = TcpStream::connect(addr).await.expect("connect");
    let _second = TcpStream::connect(addr).await.expect("connect");
    // Both taken by the server: one more answer shows it accepted them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third =
        tokio::spawn(
            async move { get(TcpStream::connect(addr).await.expect("connect"), None).await },
        );
    // Not answered while two connections are open (a margin, not a
    // measure: the answer comes only after `first` closes below).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served past the limit");
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a connection closed")
        .expect("join");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let _ = stop.send(());
}

#[tokio::test]
async fn past_max_connections_new_ones_wait_until_one_closes() {
    a_third_connection_waits_until_one_closes(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
}

#[tokio::test]
async fn connections_take_at_most_half_the_open_files_limit() {
    // --web.max-connections above half of 4 open files: 2 at once.
    a_third_connection_waits_until_one_closes(Limits {
        max_connections: 512,
        open_files: Some(4),
        ..Limits::default()
    })
    .await;
}

#[tokio::test]
async fn a_huge_request_head_is_refused_and_the_server_goes_on() {
    let (addr, stop, _task) = start(WebConfig::plain(), Limits::default()).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Filler: {}\r\n\r\n",
        "x".repeat(1 << 20)
    );
    // The server may close before the whole head is written.
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{answer}"
    );
    let answer = get(TcpStream::connect(addr).await.expect("connect"), None).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let _ = stop.send(());
}

#[test]
fn gzip_is_sent_when_the_scraper_accepts_it() {
    use crate::scrape::accepts_gzip;
    // Prometheus' own header.
    assert!(accepts_gzip(Some("gzip")));
    assert!(accepts_gzip(Some("deflate, GZIP;q=0.5, br")));
    assert!(accepts_gzip(Some("x-gzip")));
    assert!(!accepts_gzip(Some("gzip;q=0")));
    assert!(!accepts_gzip(Some("gzip; q=0.0")));
    assert!(!accepts_gzip(Some("gzip;q=zero")));
    assert!(!accepts_gzip(Some("identity, br")));
    assert!(!accepts_gzip(Some("gzipped")));
    assert!(!accepts_gzip(None));
}

/// In the background, scrapes are encoded one at a time; those that
/// waited meanwhile are answered together by one encoding made after they
/// came, each whole, but only with others of the same format and
/// encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_background_scrapes_that_waited_share_one_encoding() {
    use std::io::Read as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use http_body_util::BodyExt;

    let background = crate::scrape::Background::start("scrapes").expect("thread");
    let encoding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let encoded = Arc::new(Mutex::new(Vec::new()));
    let (started, first_started) = std::sync::mpsc::channel();
    let started = Mutex::new(Some(started));
    let scrape = |name: &'static str, gzip: bool| {
        let (encoding, most, encoded) = (encoding.clone(), most.clone(), encoded.clone());
        let started = started.lock().expect("lock").take();
        let mut headers = hyper::HeaderMap::new();
        if gzip {
            headers.insert(
                hyper::header::ACCEPT_ENCODING,
                "gzip".parse().expect("header"),
            );
        }
        let encode = move |_, out: &mut dyn std::io::Write| {
            encoded.lock().expect("lock").push(name);
            let now = encoding.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            if let Some(started) = started {
                let _ = started.send(());
            }
            std::thread::sleep(Duration::from_millis(300));
            encoding.fetch_sub(1, Ordering::SeqCst);
            writeln!(out, "scrape {name}")
        };
        (headers, encode)
    };
    let body = |response: hyper::Response<crate::scrape::Page>| async move {
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
    };
    let (headers, encode) = scrape("a", false);
    let a = crate::scrape::response(&headers, Some(&background), encode).await;
    // While a is encoded, b, c (plain) and d (gzip) come.
    tokio::task::spawn_blocking(move || first_started.recv())
        .await
        .expect("join")
        .expect("a started");
    let mut waiting = Vec::new();
    for (name, gzip) in [("b", false), ("c", false), ("d", true)] {
        let (headers, encode) = scrape(name, gzip);
        waiting.push(crate::scrape::response(&headers, Some(&background), encode).await);
    }
    assert_eq!(body(a).await, "scrape a\n");
    let mut bodies = Vec::new();
    for response in waiting {
        bodies.push(body(response).await);
    }
    assert_eq!(bodies[0], "scrape b\n");
    assert_eq!(bodies[1], "scrape b\n", "c shares b's encoding");
    let mut d = String::new();
    flate2::read::GzDecoder::new(&bodies[2][..])
        .read_to_string(&mut d)
        .expect("gzip");
    assert_eq!(d, "scrape d\n", "d is gzipped: an encoding of its own");
    assert_eq!(most.load(Ordering::SeqCst), 1, "one at a time");
    assert_eq!(*encoded.lock().expect("lock"), ["a", "b", "d"]);
}
