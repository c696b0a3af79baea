//! A prober's socket kept between its probes (see
//! [`crate::prober::tcp::Idle`]): each probe is still a new connection,
//! from a new port, reset at its end; only the socket is the same.

use std::net::SocketAddr;

use super::*;

/// How a connection the test server accepted went: its peer's port and
/// whether it ended with a reset.
type Seen = (u16, bool);

/// A server on 127.0.0.1 that answers each request with `answer` (or says
/// nothing), then reads until the connection ends, and sends what it saw
/// of each connection.
async fn watching_server(
    answer: Option<&'static [u8]>,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, peer)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                read_head(&mut tcp).await;
                if let Some(answer) = answer {
                    let _ = tcp.write_all(answer).await;
                }
                let mut rest = [0u8; 64];
                let reset = loop {
                    match tcp.read(&mut rest).await {
                        Ok(0) => break false,
                        Ok(_) => continue,
                        Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
                    }
                };
                let _ = tx.send((peer.port(), reset));
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn each_probe_is_a_new_connection_made_from_the_socket_the_last_one_left() {
    let (addr, mut seen) = watching_server(Some(OK_KEPT)).await;
    let http = check("{type: http, body: healthy}", Path::new("."));
    let mut prober = Prober::new(http, target(addr));
    let mut ports = Vec::new();
    let mut kept = None;
    for i in 0..3 {
        prober.probe(TIMEOUT).await.result.expect("healthy");
        let (port, reset) = seen.recv().await.expect("a connection");
        assert!(reset, "probe {i} ended with a reset");
        ports.push(port);
        let fd = prober.watch.idle().kept_fd();
        assert!(fd.is_some(), "probe {i} left its socket");
        if i > 0 {
            assert_eq!(fd, kept, "probe {i} was made from the socket kept");
        }
        kept = fd;
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "a new port each probe: {ports:?}");
}

#[tokio::test]
async fn a_refused_or_timed_out_probe_leaves_its_socket_for_the_next() {
    // Refused: the port is closed, then listened on again.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let http = check("{type: http, body: healthy}", Path::new("."));
    let mut prober = Prober::new(http.clone(), target(addr));
    let e = prober.probe(TIMEOUT).await.result.expect_err("refused");
    assert_eq!(e.reason(), "connect", "{e}");
    let kept = prober.watch.idle().kept_fd();
    assert!(kept.is_some(), "a refused probe leaves its socket");
    let listener = TcpListener::bind(addr).await.expect("bind again");
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        read_head(&mut tcp).await;
        tcp.write_all(OK_KEPT).await.expect("answer");
        let _ = tcp.read(&mut [0u8; 8]).await;
    });
    prober.probe(TIMEOUT).await.result.expect("healthy");
    server.await.expect("server");
    assert_eq!(prober.watch.idle().kept_fd(), kept, "the same socket");

    // Timed out: the server says nothing; it sees the reset, and the next
    // probe (of a `tcp` check asking whether it refuses) goes from the
    // same socket.
    let (addr, mut seen) = watching_server(None).await;
    let mut prober = Prober::new(http, target(addr));
    let e = prober
        .probe(Duration::from_millis(300))
        .await
        .result
        .expect_err("silent");
    assert_eq!(e.reason(), "timeout", "{e}");
    let (_, reset) = seen.recv().await.expect("a connection");
    assert!(reset, "the timed-out connection was reset");
    let kept = prober.watch.idle().kept_fd();
    assert!(kept.is_some(), "a timed-out probe leaves its socket");
    assert!(prober.refuses(TIMEOUT).await.is_none(), "it accepts");
    seen.recv().await.expect("a connection");
    assert_eq!(prober.watch.idle().kept_fd(), kept, "the same socket");
}
