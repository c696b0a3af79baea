//! The `udp` check against UDP servers on 127.0.0.1: a reply that
//! matches or not, silence, and a closed port in both modes.

use tokio::net::UdpSocket;

use super::*;

/// A UDP server that answers each datagram with `reply`, or drops it
/// (`None`).
async fn udp_server(reply: Option<&'static [u8]>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = socket.recv_from(&mut buf).await {
            if let Some(reply) = reply {
                let _ = socket.send_to(reply, from).await;
            }
        }
    });
    addr
}

fn closed_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn fails(result: Result<Success, ProbeError>) -> (&'static str, String) {
    let e = result.expect_err("the probe fails");
    (e.reason(), e.to_string())
}

#[tokio::test]
async fn udp_with_expect_judges_the_reply() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check(
        "{type: udp, payload_hex: 'ff ff ff ff 54 53 6f 75 72 63 65', expect: '(?-u)^\\xff\\xff\\xff\\xffI'}",
        dir.path(),
    );
    let good = udp_server(Some(b"\xff\xff\xff\xffI\x11game")).await;
    let outcome = Prober::new(c.clone(), target(good)).probe(TIMEOUT).await;
    outcome.result.expect("the reply matches");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Response]);
    let wrong = udp_server(Some(b"go away")).await;
    let (reason, message) = fails(probe(&c, &target(wrong), Duration::from_millis(300)).await);
    assert_eq!(reason, "expect");
    assert!(message.contains("7 bytes: \"go away\""), "{message}");
    let silent = udp_server(None).await;
    assert_eq!(
        fails(probe(&c, &target(silent), Duration::from_millis(300)).await).0,
        "timeout"
    );
    assert_eq!(
        fails(probe(&c, &target(closed_udp_port()), TIMEOUT).await).0,
        "connect"
    );
}

#[tokio::test]
async fn udp_without_expect_passes_on_silence_and_fails_on_port_unreachable() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: udp, payload: \"ping\\n\"}", dir.path());
    let silent = udp_server(None).await;
    probe(&c, &target(silent), Duration::from_millis(300))
        .await
        .expect("no port unreachable within the timeout");
    let answering = udp_server(Some(b"pong")).await;
    probe(&c, &target(answering), TIMEOUT)
        .await
        .expect("any reply");
    let (reason, _) = fails(probe(&c, &target(closed_udp_port()), TIMEOUT).await);
    assert_eq!(reason, "connect");
}
