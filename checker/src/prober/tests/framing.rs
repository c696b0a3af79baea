//! The answer's framing, as `http` reads it (`prober::http::answer`):
//! bodies ended by the connection's close, by their length or by a last
//! chunk (with extensions and trailer fields), interim 1xx answers, a
//! HEAD request's answer, heads and chunks split over many reads, and
//! answers cut short or malformed, against servers on 127.0.0.1.

use super::*;

/// A server on 127.0.0.1 that reads each request's head and writes
/// `pieces` apart (a pause between two), then closes the connection, or
/// holds it open if `hold`.
async fn in_pieces(pieces: &'static [&'static [u8]], hold: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut tcp).await;
                for piece in pieces {
                    tcp.write_all(piece).await.expect("write");
                    tcp.flush().await.expect("flush");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if hold {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn bodies_are_read_by_their_framing() {
    let healthy = check("{type: http, body: \"^healthy\\n$\"}", Path::new("."));
    let answers: &[(&str, &'static [&'static [u8]])] = &[
        (
            "ended by the close",
            &[b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nheal", b"thy\n"],
        ),
        (
            "a length, the head in pieces",
            &[b"HTTP/1.1 200 O", b"K\r\nContent-Le", b"ngth: 8\r\n\r", b"\nhealthy\n"],
        ),
        (
            "chunks, with an extension and trailer fields, in pieces",
            &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nheal\r",
                b"\n",
                b"4\r\nthy\n\r\n0\r\nX-Trailer: 1\r\n",
                b"\r\n",
            ],
        ),
        (
            "after an interim 100",
            &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\n"],
        ),
        (
            "HTTP/1.0",
            &[b"HTTP/1.0 200 OK\r\n\r\nhealthy\n"],
        ),
    ];
    for (what, pieces) in answers {
        let addr = in_pieces(pieces, false).await;
        let success = probe(&healthy, &target(addr), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(success.status, Some(200), "{what}");
    }
}

#[tokio::test]
async fn answers_cut_short_or_malformed_fail_as_http() {
    let healthy = check("{type: http, body: healthy}", Path::new("."));
    let answers: &[(&str, &'static [&'static [u8]])] = &[
        ("no answer", &[]),
        ("a head cut short", &[b"HTTP/1.1 200 OK\r\nContent-Le"]),
        ("a body shorter than its length", &[b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhealthy\n"]),
        ("a chunk cut short", &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhealthy\n"]),
        ("a chunk size not in hex", &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhealthy\n\r\n0\r\n\r\n"]),
        ("a chunk longer than its size", &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhealthy\n\r\n0\r\n\r\n"]),
        ("two lengths", &[b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Length: 9\r\n\r\nhealthy\n"]),
        ("a length not a number", &[b"HTTP/1.1 200 OK\r\nContent-Length: -8\r\n\r\nhealthy\n"]),
    ];
    for (what, pieces) in answers {
        let addr = in_pieces(pieces, false).await;
        let e = probe(&healthy, &target(addr), TIMEOUT)
            .await
            .expect_err(what);
        assert_eq!(e.reason(), "http", "{what}: {e}");
    }
}

/// A HEAD request's answer has a length and no body: a kept connection
/// is ready for the next probe at once, not after waiting for the body
/// the length speaks of. A status-only check does not wait for a body
/// the server holds back either.
#[tokio::test]
async fn an_answer_without_a_body_ends_at_its_head() {
    let head = check(
        "{type: http, method: HEAD, keep_alive: 30s}",
        Path::new("."),
    );
    let addr = in_pieces(&[b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"], true).await;
    let mut prober = Prober::new(head, target(addr));
    let probed = prober.probe(TIMEOUT).await;
    let success = probed.result.expect("HEAD answered");
    assert_eq!(success.status, Some(200));
    let plain = check("{type: http}", Path::new("."));
    let addr = in_pieces(&[b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nheal"], true).await;
    probe(&plain, &target(addr), TIMEOUT)
        .await
        .expect("the status is enough");
}
