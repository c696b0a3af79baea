//! How many writes an `https` probe's client makes, counted as segments
//! with data by a TCP relay between it and the server (on loopback, with
//! Nagle off, a small write is a segment): the handshake's last flight
//! leaves with the request when the server's Finished came first (TLS
//! 1.3, a resumed TLS 1.2 session), and a flight that waits for an
//! answer still goes before the wait (a full TLS 1.2 handshake).

use std::future::Future;
use std::os::fd::AsFd;
use std::task::Poll;

use tokio::net::TcpStream;

use crate::prober::watch::data_segments_received;

use super::*;

/// The segments with data each connection's client sent, in the order
/// the connections ended.
type Writes = Arc<std::sync::Mutex<Vec<u32>>>;

/// A relay on 127.0.0.1 in front of `server`, counting in `writes` the
/// segments with data of each client.
async fn relay(server: SocketAddr, writes: Writes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let writes = writes.clone();
            tokio::spawn(async move {
                let upstream = TcpStream::connect(server).await.expect("server");
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = upstream.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                });
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let client: &TcpStream = from_client.as_ref();
                let segments = data_segments_received(&client.as_fd()).expect("TCP_INFO");
                writes.lock().expect("lock").push(segments);
            });
        }
    });
    addr
}

/// The handshake one probe at `secs` past `t0` made, and how many writes
/// its client made.
async fn one_probe(
    prober: &mut Prober,
    writes: &Writes,
    t0: std::time::Instant,
    secs: u64,
) -> (Option<Handshake>, u32) {
    let at = t0 + Duration::from_secs(secs);
    let s = prober.probe_at(TIMEOUT, at).await.result.expect("healthy");
    // The relay sees the connection end once the client's reset came.
    let start = Instant::now();
    loop {
        if let Some(n) = writes.lock().expect("lock").pop() {
            return (s.handshake, n);
        }
        assert!(start.elapsed() < TIMEOUT, "the relay saw no end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_last_handshake_flight_goes_with_the_request_when_the_servers_finished_came_first() {
    let pki = Pki::new("lab CA");
    let check = check(
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test, full_handshake_interval: 1m}",
        pki.dir.path(),
    );
    for (version, full, resumed) in [
        // ClientHello; then Finished with the request. Resumed with a
        // pre-shared key, the same.
        (&rustls::version::TLS13, 2, 2),
        // ClientHello; the key exchange and Finished, which the server
        // answers; then the request. Resumed, the server's Finished first:
        // ClientHello; Finished with the request.
        (&rustls::version::TLS12, 3, 2),
    ] {
        let (tls, _) = pki.server_of(&["rs1.lab.test"], 2090, &[version]);
        let server = server(Answer::Bytes(OK), Some(tls)).await;
        let writes = Writes::default();
        let addr = relay(server, writes.clone()).await;
        let mut prober = Prober::new(check.clone(), target(addr));
        let t0 = std::time::Instant::now();
        let what = format!("{version:?}");
        assert_eq!(
            one_probe(&mut prober, &writes, t0, 0).await,
            (Some(Handshake::Full), full),
            "{what}, full handshake"
        );
        for secs in [1, 2] {
            assert_eq!(
                one_probe(&mut prober, &writes, t0, secs).await,
                (Some(Handshake::Resumed), resumed),
                "{what}, resumed"
            );
        }
    }
}

/// What the checker says first (an HTTP request, a ClientHello, a DNS
/// query) is sent by its thread's set as the connection is made: the
/// server gets it with the probe polled once, to connect, and not again.
#[tokio::test]
async fn the_first_flight_goes_as_the_connection_is_made_without_the_probe_polled_again() {
    let pki = Pki::new("lab CA");
    for yaml in [
        "{type: http}",
        "{type: https, ca_file: ca.pem, server_name: rs1.lab.test}",
        "{type: dns, name: www.lab.test, transport: tcp}",
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut prober = Prober::new(check(yaml, pki.dir.path()), target(addr));
        let mut probe = std::pin::pin!(prober.probe(TIMEOUT));
        let first_poll = std::future::poll_fn(|cx| Poll::Ready(probe.as_mut().poll(cx))).await;
        assert!(first_poll.is_pending(), "{yaml}");
        let (tcp, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("a connection made")
            .expect("accept");
        let peeked = tokio::time::timeout(TIMEOUT, tcp.peek(&mut [0u8; 1])).await;
        assert!(
            matches!(peeked, Ok(Ok(1))),
            "{yaml}: the first bytes, sent with the probe not polled again: {peeked:?}"
        );
    }
}
