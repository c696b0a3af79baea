//! The `server_answers` target: the checker's probers against a peer on
//! loopback that answers with the fuzzer's bytes. The first byte picks
//! the check (HTTP with a body regex or digest, HTTPS, the conversation
//! presets, a conversation over TLS, DNS over UDP and TCP, UDP with a
//! reply regex); the rest is what the peer writes, as a whole stream over
//! TCP or as one datagram over UDP. A probe must end within its timeout
//! with a pass or a failure, whatever the answer.
//!
//! The probers are the daemon's own (`ProberSet`), made anew for each
//! input from a config the checker's loader read, so nothing a probe keeps
//! (a TLS session, a DNS socket) carries over to the next input.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use ipvs_checker::config::RealServer;
use ipvs_checker::prober::set::ProberSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Each probe's timeout: the peer is on loopback and answers at once,
/// and a probe that waits for more than the peer sends (a UDP reply that
/// does not match, a DNS answer to another question) lasts it all, so it
/// sets how many inputs a second the fuzzer tries.
const TIMEOUT: Duration = Duration::from_millis(10);

/// The checks, in the order the first byte picks them (modulo their
/// number): a YAML `check:` each, and how the peer answers it.
const CHECKS: &[(&str, Transport)] = &[
    (
        r#"{type: http, path: /health, expect_status: [200, "300-399"], body: "(?i)ok"}"#,
        Transport::Tcp,
    ),
    (
        r#"{type: http, body_md5: eff5bc1ef8ec9d03e640fc4370f5eacd}"#,
        Transport::Tcp,
    ),
    (
        r#"{type: https, insecure_skip_verify: true, body: ok}"#,
        Transport::Tcp,
    ),
    (r#"{type: tcp, preset: smtp}"#, Transport::Banner),
    (r#"{type: tcp, preset: mysql}"#, Transport::Banner),
    (
        r#"{type: tcp, steps: [{send: "PING\r\n"}, {expect: "^\\+PONG\r\n"}, {send_hex: "0d 0a"}, {expect: "(?-u)\\xff"}]}"#,
        Transport::Tcp,
    ),
    (
        r#"{type: tcp, preset: imap, tls: true, insecure_skip_verify: true}"#,
        Transport::Tcp,
    ),
    (
        r#"{type: dns, name: www.example.test, answer: "^198\\.18\\.", answer_address: 198.18.1.80}"#,
        Transport::Dns,
    ),
    (
        r#"{type: dns, name: www.example.test, query_type: SOA, transport: tcp, expect_rcode: NXDOMAIN}"#,
        Transport::DnsTcp,
    ),
    (
        r#"{type: udp, payload_hex: "ff ff ff ff 54", expect: "(?-u)^\\xff\\xff\\xff\\xffI"}"#,
        Transport::Udp,
    ),
];

/// How the peer answers a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Accepts one connection, reads what the prober sends first (a
    /// request, a TLS hello) and writes the bytes.
    Tcp,
    /// Accepts one connection and writes the bytes at once (a greeting).
    Banner,
    /// Answers one datagram with the bytes.
    Udp,
    /// As `Udp`, the first two bytes made the query's id, so that the
    /// answer is taken for the query's and its other bytes are read.
    Dns,
    /// As `Tcp`, the bytes after the length made the query's id.
    DnsTcp,
}

/// The peer, the runtime the probes run on, and each check's real server.
struct Harness {
    runtime: tokio::runtime::Runtime,
    tcp: TcpListener,
    udp: UdpSocket,
    servers: Vec<(ipvs::ServiceKey, RealServer, Transport)>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (tcp, udp) = runtime.block_on(async {
            // The same port for both, so that one real server address
            // serves every check.
            loop {
                let tcp = TcpListener::bind("127.0.0.1:0").await.expect("a port");
                let port = tcp.local_addr().expect("bound").port();
                if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)).await {
                    break (tcp, udp);
                }
            }
        });
        let addr = tcp.local_addr().expect("bound");
        let config = config_text(addr);
        let dir = Path::new(crate::NO_DIR);
        let config = ipvs_checker::config::parse(&config, &dir.join("answers.yml"), dir)
            .unwrap_or_else(|e| panic!("the target's own config: {e}"));
        let servers = config
            .services
            .iter()
            .zip(CHECKS)
            .map(|(service, (_, transport))| {
                let rs = service.real_servers[0].clone();
                (service.key, rs, *transport)
            })
            .collect();
        Harness {
            runtime,
            tcp,
            udp,
            servers,
        }
    })
}

/// A service per check, each with the one real server at `addr`.
fn config_text(addr: SocketAddr) -> String {
    let mut text = String::from("mode: weights\nservices:\n");
    for (i, (check, transport)) in CHECKS.iter().enumerate() {
        let protocol = match transport {
            Transport::Tcp | Transport::Banner | Transport::DnsTcp => "tcp",
            Transport::Udp | Transport::Dns => "udp",
        };
        text.push_str(&format!(
            "  - {{protocol: {protocol}, address: \"198.18.0.10:{}\", timeout: {}ms, check: {check}, real_servers: [{{address: \"{addr}\"}}]}}\n",
            i + 1,
            TIMEOUT.as_millis()
        ));
    }
    text
}

/// Probes with the check the first byte picks, the peer answering with
/// the rest.
pub fn server_answers(data: &[u8]) {
    let _ = probe(data, TIMEOUT);
}

/// The probe's result for `data` within `timeout`: `Ok` if it passed,
/// else its failure's reason and message; `None` for no input.
fn probe(data: &[u8], timeout: Duration) -> Option<Result<(), (&'static str, String)>> {
    let (pick, answer) = data.split_first()?;
    let harness = harness();
    let (service, rs, transport) = &harness.servers[usize::from(*pick) % harness.servers.len()];
    Some(harness.runtime.block_on(async {
        let mut prober = ProberSet::new(&rs.checks, rs.source, service);
        let peer = async {
            match transport {
                Transport::Tcp | Transport::Banner | Transport::DnsTcp => {
                    serve_tcp(&harness.tcp, answer, *transport).await;
                }
                Transport::Udp => serve_udp(&harness.udp, answer, false).await,
                Transport::Dns => serve_udp(&harness.udp, answer, true).await,
            }
        };
        // The peer gives up a while after the probe's timeout: a probe
        // that connected nowhere, or a prober that stopped reading.
        let peer = tokio::time::timeout(timeout * 4, peer);
        let (_, outcome) = tokio::join!(peer, prober.probe(timeout));
        outcome
            .outcome
            .result
            .map(|_| ())
            .map_err(|e| (e.reason(), e.to_string()))
    }))
}

/// Accepts one connection and writes `answer`: at once for a `Banner`,
/// else after the prober's first bytes (for `DnsTcp`, the query's id put
/// in the answer's bytes 2 and 3, after its length); then ends its side
/// and reads what the prober sends until it closes (so the close does not
/// reset the connection before the prober has read the answer).
async fn serve_tcp(listener: &TcpListener, answer: &[u8], transport: Transport) {
    let Ok((mut stream, _)) = listener.accept().await else {
        return;
    };
    let mut answer = answer.to_vec();
    let mut sink = [0u8; 4096];
    match transport {
        Transport::DnsTcp => {
            let mut query = [0u8; 4];
            if stream.read_exact(&mut query).await.is_err() {
                return;
            }
            if let Some(id) = answer.get_mut(2..4) {
                id.copy_from_slice(&query[2..4]);
            }
        }
        Transport::Tcp if !matches!(stream.read(&mut sink).await, Ok(1..)) => return,
        _ => {}
    }
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
    while let Ok(1..) = stream.read(&mut sink).await {}
}

/// Answers the first datagram with `answer`, its first two bytes made the
/// query's if `with_id`.
async fn serve_udp(socket: &UdpSocket, answer: &[u8], with_id: bool) {
    let mut query = [0u8; 2048];
    let Ok((n, from)) = socket.recv_from(&mut query).await else {
        return;
    };
    let mut reply = answer.to_vec();
    if with_id && n >= 2 && reply.len() >= 2 {
        reply[..2].copy_from_slice(&query[..2]);
    }
    let _ = socket.send_to(&reply, from).await;
}

/// The seeds: what real servers answer each check, with its pick.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let http = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nServer: nginx/1.22.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec();
    let mut seeds = vec![
        ("http-200", 0, http("200 OK", "ok\n")),
        ("http-503", 0, http("503 Service Unavailable", "down\n")),
        ("http-chunked", 0, chunked),
        ("http-md5", 1, http("200 OK", "ok\n")),
        (
            "https-alert",
            2,
            // A TLS record: a fatal handshake_failure alert.
            vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
        ),
        (
            "smtp",
            3,
            b"220 mail.example.test ESMTP\r\n250-mail.example.test\r\n250 PIPELINING\r\n221 2.0.0 Bye\r\n"
                .to_vec(),
        ),
        (
            "mysql-greeting",
            4,
            b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00\xff\xf7\x08\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00ijklmnopqrst\x00mysql_native_password\x00"
                .to_vec(),
        ),
        ("redis", 5, b"+PONG\r\n\xff".to_vec()),
        (
            "imaps-alert",
            6,
            vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
        ),
        ("dns-a", 7, dns_answer(1, &[198, 18, 1, 80])),
        ("dns-tcp-nxdomain", 8, {
            let mut message = dns_answer(6, &[]);
            message[3] = 0x83;
            let mut framed = u16::try_from(message.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes()
                .to_vec();
            framed.extend(message);
            framed
        }),
        (
            "udp-a2s-info",
            9,
            b"\xff\xff\xff\xffI\x11lab server\x00".to_vec(),
        ),
    ];
    seeds.sort_by(|a, b| a.0.cmp(b.0));
    seeds
        .into_iter()
        .map(|(name, pick, answer)| {
            let mut bytes = vec![pick];
            bytes.extend(answer);
            (format!("server_answers/{name}"), bytes)
        })
        .collect()
}

/// A DNS answer to `www.example.test` of type `qtype` (id 0, patched by
/// the peer), with one A record holding `address` if it has 4 bytes.
fn dns_answer(qtype: u8, address: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    let answers = u8::from(address.len() == 4);
    m[7] = answers;
    for label in ["www", "example", "test"] {
        m.push(label.len() as u8);
        m.extend(label.as_bytes());
    }
    m.extend([0, 0, qtype, 0, 1]);
    if answers == 1 {
        // The name as a pointer to the question's, type A, class IN,
        // TTL 300, 4 bytes of data.
        m.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4]);
        m.extend(address);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each seed is what a healthy server of its check answers, but the
    /// HTTP 503 and the TLS alerts: the probers take them as such, so the
    /// fuzzer starts from answers that reach every check's judgement.
    #[test]
    fn each_seed_passes_or_fails_as_a_real_server_answering_it_would() {
        for (name, bytes) in seeds() {
            // A timeout of its own: a host busy with other tests must not
            // make a seed's answer late.
            let result = probe(&bytes, Duration::from_secs(2)).expect("an input");
            let reason = result.as_ref().err().map(|(reason, _)| *reason);
            let expected = match name.as_str() {
                "server_answers/http-503" => Some("status"),
                "server_answers/https-alert" | "server_answers/imaps-alert" => Some("tls"),
                _ => None,
            };
            assert_eq!(reason, expected, "{name}: {result:?}");
        }
    }
}
