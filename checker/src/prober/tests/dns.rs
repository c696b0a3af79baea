//! The `dns` check against DNS servers on 127.0.0.1 made here with
//! hickory-proto: answers good and wrong, rcodes (an extended one in an
//! EDNS record among them), a closed port, a server that drops the
//! queries, answers cut short, and stray answers before the real one.

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata, RData, Record, RecordType};
use tokio::net::UdpSocket;

use super::*;

/// How a test DNS server answers.
#[derive(Clone, Copy)]
enum Answers {
    /// `name A address`, NOERROR.
    A(std::net::Ipv4Addr),
    /// This rcode, no records.
    Rcode(ResponseCode),
    /// Nothing: the query is dropped.
    Drop,
    /// First an answer with another id, then the right one.
    StrayFirst(std::net::Ipv4Addr),
    /// This rcode, its high bits in an EDNS record (BADVERS is 16:
    /// NOERROR in the header's four bits).
    Extended(ResponseCode),
    /// `name A address`, the datagram cut within the record.
    CutShort(std::net::Ipv4Addr),
}

fn response(query: &Message, answers: Answers) -> Message {
    let mut answer = Message::new();
    answer
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .add_queries(query.queries().to_vec());
    match answers {
        Answers::A(ip) | Answers::StrayFirst(ip) | Answers::CutShort(ip) => {
            let name = query.queries()[0].name().clone();
            answer.add_answer(Record::from_rdata(name, 60, RData::A(rdata::A(ip))));
        }
        Answers::Rcode(rcode) => {
            answer.set_response_code(rcode);
        }
        Answers::Extended(rcode) => {
            answer.set_response_code(rcode).set_edns(Edns::new());
        }
        Answers::Drop => {}
    }
    answer
}

async fn udp_server(answers: Answers) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if matches!(answers, Answers::Drop) {
                continue;
            }
            if matches!(answers, Answers::StrayFirst(_)) {
                let mut stray = response(&query, answers);
                stray.set_id(query.id().wrapping_add(1));
                let _ = socket.send_to(&stray.to_vec().expect("encode"), from).await;
            }
            let mut answer = response(&query, answers).to_vec().expect("encode");
            if matches!(answers, Answers::CutShort(_)) {
                answer.truncate(answer.len() - 3);
            }
            let _ = socket.send_to(&answer, from).await;
        }
    });
    addr
}

async fn tcp_server(answers: Answers) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut length = [0u8; 2];
                if tcp.read_exact(&mut length).await.is_err() {
                    return;
                }
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
                if tcp.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Ok(query) = Message::from_vec(&query) else {
                    return;
                };
                let answer = response(&query, answers).to_vec().expect("encode");
                let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&answer);
                let _ = tcp.write_all(&framed).await;
            });
        }
    });
    addr
}

fn why(result: Result<Success, ProbeError>) -> (&'static str, String) {
    let e = result.expect_err("the probe fails");
    (e.reason(), e.to_string())
}

const RS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 1, 11);

#[tokio::test]
async fn dns_over_udp_judges_rcode_and_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let good = udp_server(Answers::A(RS)).await;
    let plain = check("{type: dns, name: www.lab.test}", dir.path());
    let outcome = Prober::new(plain.clone(), target(good))
        .probe(TIMEOUT)
        .await;
    outcome.result.expect("NOERROR");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Response]);
    let address = check(
        "{type: dns, name: www.lab.test, answer_address: 198.18.1.11, answer: '^198\\.18\\.'}",
        dir.path(),
    );
    probe(&address, &target(good), TIMEOUT)
        .await
        .expect("its address");

    let other = check(
        "{type: dns, name: www.lab.test, answer_address: 198.18.1.12}",
        dir.path(),
    );
    let (reason, message) = why(probe(&other, &target(good), TIMEOUT).await);
    assert_eq!(reason, "dns_answer");
    assert_eq!(
        message,
        "DNS answer: no answer record holds 198.18.1.12 (answers: A 198.18.1.11)"
    );
    let regex = check(
        "{type: dns, name: www.lab.test, answer: '^10\\.'}",
        dir.path(),
    );
    assert_eq!(
        why(probe(&regex, &target(good), TIMEOUT).await).0,
        "dns_answer"
    );

    let nxdomain = udp_server(Answers::Rcode(ResponseCode::NXDomain)).await;
    let (reason, message) = why(probe(&plain, &target(nxdomain), TIMEOUT).await);
    assert_eq!(reason, "dns_rcode");
    assert_eq!(message, "DNS rcode NXDOMAIN, expected NOERROR");
    let want_nx = check(
        "{type: dns, name: gone.lab.test, expect_rcode: nxdomain}",
        dir.path(),
    );
    probe(&want_nx, &target(nxdomain), TIMEOUT)
        .await
        .expect("NXDOMAIN expected");
    let servfail = udp_server(Answers::Rcode(ResponseCode::ServFail)).await;
    assert_eq!(
        why(probe(&plain, &target(servfail), TIMEOUT).await).0,
        "dns_rcode"
    );
}

#[tokio::test]
async fn dns_reads_an_extended_rcode_and_the_records_it_matches_on() {
    let dir = tempfile::tempdir().expect("dir");
    let plain = check("{type: dns, name: www.lab.test}", dir.path());
    // NOERROR in the header, BADVERS with the EDNS record's high bits.
    let badvers = udp_server(Answers::Extended(ResponseCode::BADVERS)).await;
    let (reason, message) = why(probe(&plain, &target(badvers), TIMEOUT).await);
    assert_eq!(reason, "dns_rcode");
    assert_eq!(message, "DNS rcode 16, expected NOERROR");
    let edns_noerror = udp_server(Answers::Extended(ResponseCode::NoError)).await;
    probe(&plain, &target(edns_noerror), TIMEOUT)
        .await
        .expect("NOERROR, with an EDNS record");
    // Cut within its record: a check on the rcode alone passes (the
    // records are not read), one on the records fails on them.
    let cut = udp_server(Answers::CutShort(RS)).await;
    probe(&plain, &target(cut), TIMEOUT)
        .await
        .expect("the rcode alone");
    let address = check(
        "{type: dns, name: www.lab.test, answer_address: 198.18.1.11}",
        dir.path(),
    );
    let (reason, message) = why(probe(&address, &target(cut), TIMEOUT).await);
    assert_eq!(reason, "dns", "{message}");
    assert!(
        message.starts_with("DNS: a malformed answer: "),
        "{message}"
    );
}

#[tokio::test]
async fn dns_over_udp_fails_on_a_closed_port_and_dropped_queries() {
    let dir = tempfile::tempdir().expect("dir");
    let plain = check("{type: dns, name: www.lab.test}", dir.path());
    // A port nobody listens on: the ICMP port unreachable is `connect`.
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    let (reason, message) = why(probe(&plain, &target(closed), TIMEOUT).await);
    assert_eq!(reason, "connect", "{message}");
    let dropping = udp_server(Answers::Drop).await;
    let (reason, _) = why(probe(&plain, &target(dropping), Duration::from_millis(300)).await);
    assert_eq!(reason, "timeout");
}

#[tokio::test]
async fn dns_skips_an_answer_to_another_query() {
    let dir = tempfile::tempdir().expect("dir");
    let plain = check(
        "{type: dns, name: www.lab.test, answer_address: 198.18.1.11}",
        dir.path(),
    );
    let stray = udp_server(Answers::StrayFirst(RS)).await;
    probe(&plain, &target(stray), TIMEOUT)
        .await
        .expect("the right answer");
}

#[tokio::test]
async fn dns_over_tcp() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check(
        "{type: dns, name: www.lab.test, transport: tcp, answer_address: 198.18.1.11}",
        dir.path(),
    );
    let good = tcp_server(Answers::A(RS)).await;
    let outcome = Prober::new(c.clone(), target(good)).probe(TIMEOUT).await;
    outcome.result.expect("over TCP");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Connect, Phase::Response]);
    let refused = tcp_server(Answers::Rcode(ResponseCode::Refused)).await;
    assert_eq!(
        why(probe(&c, &target(refused), TIMEOUT).await).1,
        "DNS rcode REFUSED, expected NOERROR"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    assert_eq!(why(probe(&c, &target(closed), TIMEOUT).await).0, "connect");
}

/// A UDP DNS server that answers each query with `A RS`, after the
/// answer to the query before it once more as SERVFAIL (a late answer to
/// the last probe, with its id and question, that would fail this one if
/// taken for its answer), and again as SERVFAIL 30 ms after (a stale
/// datagram left on the prober's socket before its next query). Each
/// query's source port goes to the channel. On 127.0.0.1:`port` (0: any).
async fn replaying_server(
    port: u16,
    ports: tokio::sync::mpsc::UnboundedSender<u16>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind(("127.0.0.1", port)).await.expect("bind");
    let socket = std::sync::Arc::new(socket);
    let addr = socket.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut last: Option<Message> = None;
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let _ = ports.send(from.port());
            let stale = |q: &Message| {
                response(q, Answers::Rcode(ResponseCode::ServFail))
                    .to_vec()
                    .expect("encode")
            };
            if let Some(before) = &last {
                let _ = socket.send_to(&stale(before), from).await;
            }
            let answer = response(&query, Answers::A(RS)).to_vec().expect("encode");
            let _ = socket.send_to(&answer, from).await;
            let (again, socket) = (stale(&query), socket.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = socket.send_to(&again, from).await;
            });
            last = Some(query);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn dns_over_udp_keeps_its_socket_and_skips_late_answers_on_it() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check(
        "{type: dns, name: www.lab.test, answer_address: 198.18.1.11}",
        dir.path(),
    );
    let (ports, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (addr, _server) = replaying_server(0, ports).await;
    let mut prober = Prober::new(c, target(addr));
    for _ in 0..3 {
        prober
            .probe(TIMEOUT)
            .await
            .result
            .expect("the right answer");
        // The late copy of this answer waits on the socket for the next.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = seen.recv().await.expect("a query");
    for _ in 0..2 {
        assert_eq!(seen.recv().await, Some(first), "the same socket");
    }
}

#[tokio::test]
async fn dns_over_udp_on_a_kept_socket_still_fails_on_a_closed_port_then_opens_another() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: dns, name: www.lab.test}", dir.path());
    let (ports, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (addr, server) = replaying_server(0, ports.clone()).await;
    let mut prober = Prober::new(c, target(addr));
    prober.probe(TIMEOUT).await.result.expect("answered");
    let first = seen.recv().await.expect("a query");
    server.abort();
    let _ = server.await;
    // Its last late copy (30 ms) sent, the socket is closed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Nobody on the port now: the ICMP port unreachable on the kept
    // socket fails the probe as on a new one.
    let (reason, message) = why(prober.probe(TIMEOUT).await.result);
    assert_eq!(reason, "connect", "{message}");
    // The port served again: the next probe passes, on a socket of its own.
    let (_, _server) = replaying_server(addr.port(), ports).await;
    prober.probe(TIMEOUT).await.result.expect("answered again");
    assert_ne!(seen.recv().await, Some(first), "a new socket");
}

#[tokio::test]
async fn dns_over_udp_skips_a_copy_that_came_with_the_answer_and_still_sees_the_server_go_silent() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: dns, name: www.lab.test}", dir.path());
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let (ports, mut seen) = tokio::sync::mpsc::unbounded_channel();
    // The first two queries answered twice at once, the others never (the
    // port still open: no ICMP error).
    let _server = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut answered = 0;
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = ports.send(from.port());
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if answered < 2 {
                answered += 1;
                let answer = response(&query, Answers::A(RS)).to_vec().expect("encode");
                let _ = socket.send_to(&answer, from).await;
                let _ = socket.send_to(&answer, from).await;
            }
        }
    });
    let timeout = Duration::from_millis(300);
    let mut prober = Prober::new(c, target(addr));
    for _ in 0..2 {
        prober.probe(timeout).await.result.expect("answered");
    }
    let first = seen.recv().await.expect("a query");
    assert_eq!(seen.recv().await, Some(first), "the same socket");
    // The copy of the last answer may still wait unread on the socket: its
    // probe's timeout may then be taken as the checker's, but never the
    // next one's, on a new socket.
    let (reason, message) = why(prober.probe(timeout).await.result);
    assert_eq!(reason, "timeout", "{message}");
    let silent = prober.probe(timeout).await;
    assert_eq!(why(silent.result).0, "timeout");
    assert_eq!(silent.timed_out_on, Some(Side::Server));
}

/// An answer is known as the query's by its question: the name's letters
/// in any case, its type and class exactly (a type whose bytes differ
/// only as a letter's case would is another type).
#[test]
fn an_answer_is_the_querys_by_its_question_the_names_case_aside() {
    let dir = tempfile::tempdir().expect("dir");
    let answer = |name: &str, query_type: RecordType| {
        let mut answer = Message::new();
        answer
            .set_id(7)
            .set_message_type(MessageType::Response)
            .add_query(hickory_proto::op::Query::query(
                name.parse().expect("name"),
                query_type,
            ));
        answer.to_vec().expect("encode")
    };
    let judged = |yaml: &str, bytes: &[u8]| {
        let check = check(yaml, dir.path());
        let CheckKind::Dns(dns) = &check.kind else {
            panic!("not a dns check: {yaml}");
        };
        crate::prober::dns::judge(dns, 7, bytes).map(|r| r.is_ok())
    };
    let a = "{type: dns, name: www.lab.test}";
    assert_eq!(
        judged(a, &answer("www.lab.test.", RecordType::A)),
        Some(true)
    );
    assert_eq!(
        judged(a, &answer("WWW.Lab.TEST.", RecordType::A)),
        Some(true)
    );
    assert_eq!(judged(a, &answer("www.lab.tesu.", RecordType::A)), None);
    assert_eq!(judged(a, &answer("www.lab.test.", RecordType::AAAA)), None);
    // HTTPS is type 65 (0x41, 'A'), 97 is 0x61 ('a').
    let https = "{type: dns, name: www.lab.test, query_type: HTTPS}";
    assert_eq!(
        judged(https, &answer("www.lab.test.", RecordType::HTTPS)),
        Some(true)
    );
    assert_eq!(
        judged(https, &answer("www.lab.test.", RecordType::Unknown(97))),
        None
    );
}
